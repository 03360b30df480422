"""The repository's otel-config.yaml: it loads with every component, env overrides apply."""

from __future__ import annotations

import os

import pytest

from sessionlens.collector.config import load

REPO_CONFIG = os.path.join(os.path.dirname(__file__), "..", "otel-config.yaml")


def test_repo_config_loads_and_expands_env(monkeypatch):
    monkeypatch.setenv("SESSIONLENS_INACTIVITY_TIMEOUT", "45m")
    monkeypatch.setenv("SESSIONLENS_MAX_SESSION_DURATION", "8h")
    monkeypatch.setenv("SESSIONLENS_OTLP_GRPC_ENDPOINT", "127.0.0.1:14317")
    monkeypatch.setenv("SESSIONLENS_API_ENDPOINT", "127.0.0.1:14319")
    config = load(REPO_CONFIG)
    assert [p.id for p in config.processors] == ["batch", "normalize", "autosession", "cost"]
    assert config.processors[0].config.timeout == pytest.approx(0.1)
    assert config.processors[2].config.inactivity_timeout == 2700
    assert config.processors[2].config.max_duration == 8 * 3600
    assert config.receivers[0].config.protocols.grpc.endpoint == "127.0.0.1:14317"
    assert config.receivers[0].config.protocols.http.max_request_body_size == 64 * 1024 * 1024
    assert config.exporter.id == "clickhouse"
    # the sessions API and UI are on by default
    assert [(e.id, e.config.endpoint) for e in config.extensions] == [("sessions_api", "127.0.0.1:14319")]
