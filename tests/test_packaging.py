"""The distribution's shape (README, "Layout"): one package, its subpackages, a lean base install."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    # Run from an empty folder: the checkout's own folders must not be what gets imported.
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)


def test_top_level_folders_import_only_as_subpackages(tmp_path):
    for name in ("instrumentation", "collector", "processors", "schema"):
        assert _python(f"import sessionlens.{name}", tmp_path).returncode == 0, name
        bare = _python(f"import {name}", tmp_path)
        assert "ModuleNotFoundError" in bare.stderr, f"a bare {name!r} module is installed"


def test_base_install_is_application_side_only():
    base = {Requirement(r).name.lower() for r in requires("sessionlens") if "extra ==" not in r}
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp", "opentelemetry-instrumentation-httpx"} <= base
    assert not base & {"grpcio", "clickhouse-connect", "chdb", "pyyaml"}
    collector = {
        Requirement(r).name.lower() for r in requires("sessionlens") if 'extra == "collector"' in r
    }
    assert {"grpcio", "clickhouse-connect", "chdb"} <= collector


def test_command_answers_help(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sessionlens", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("collector", "schema"):
        assert command in result.stdout
