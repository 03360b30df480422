"""Shared fixtures.

chDB allows one engine path per process, so the whole test session shares one embedded
store and every test that writes gets a database of its own in it.
"""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of the test session's embedded ClickHouse (``chdb:///abs/path``)."""
    return "chdb://" + str(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def database(chdb_url: str):
    """A fresh, empty database name in the shared embedded store; dropped afterwards."""
    from sessionlens.storage import connect

    name = "t_" + uuid.uuid4().hex[:12]
    client = connect(chdb_url)
    client.command(f"CREATE DATABASE {name}")
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    client.close()


class RecordingExporter:
    """A test-local pipeline exporter (``component.Exporter``): keeps what it was given;
    can be told to fail. It has no storage; it takes columns too when a test gives it an
    ``engine_client`` (recording their span counts in ``columns``)."""

    engine_client = None
    database = None

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.columns: list[int] = []
        self.fail_with: Exception | None = None

    def export_columns(self, columns) -> None:
        self.columns.append(len(columns))

    def start(self, host) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def new_client(self) -> None:
        return None

    def spooled(self, columns):
        return iter(())

    @property
    def spans(self) -> list:
        return [span for batch in self.batches for span in batch]

    def export(self, spans: list) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.batches.append(list(spans))


@pytest.fixture
def recording_exporter(monkeypatch: pytest.MonkeyPatch) -> RecordingExporter:
    """Registers exporter type ``recording`` for collector configs; returns its instance."""
    import dataclasses
    import sys
    import types

    from sessionlens.collector import config

    recorder = RecordingExporter()
    module = types.ModuleType("sessionlens_test_recording")

    @dataclasses.dataclass
    class Config:
        pass

    module.TYPE, module.Config, module.create = "recording", Config, lambda config, host: recorder
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(config.REGISTRY["exporters"], "recording", module.__name__)
    return recorder


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test
    (the browser fixture saves a screenshot then)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
