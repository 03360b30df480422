"""otel-config.yaml loading: env expansion, durations, strict keys, one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from sessionlens.__main__ import main
from sessionlens.collector.config import ConfigError, expand_env, parse
from sessionlens.durations import parse_duration

BASE = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
processors:
  batch:
    timeout: {timeout}
exporters:
  recording:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [recording]
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("30s", 30), ("30m", 1800), ("1h", 3600), ("1h30m", 5400),
     ("1.5s", 1.5), (5, 5), (0.25, 0.25), ("10", 10), ("500us", 0.0005)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30 minutes", "ms", "", "1x", "-5s", True, None, "1h 30m"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_env_expansion():
    env = {"PORT": "9999", "EMPTY": ""}
    assert expand_env("a ${env:PORT} b", env) == "a 9999 b"
    assert expand_env("${env:MISSING:-127.0.0.1:4317}", env) == "127.0.0.1:4317"
    assert expand_env("${env:EMPTY:-fallback}", env) == "fallback"
    assert expand_env("${env:PORT:-1}", env) == "9999"
    assert expand_env("cost $$5", env) == "cost $5"
    with pytest.raises(ConfigError, match="MISSING is not set"):
        expand_env("${env:MISSING}", env)


def test_component_settings_become_config_dataclasses(recording_exporter):
    config = parse(BASE.format(timeout="250ms"))
    (batch,) = config.processors
    assert batch.config.timeout == pytest.approx(0.25)
    assert batch.config.send_batch_size == 8192
    (otlp,) = config.receivers
    assert otlp.config.protocols.http is None
    assert otlp.config.protocols.grpc.max_recv_msg_size_mib == 64


def test_empty_protocol_section_means_defaults(recording_exporter):
    config = parse(BASE.format(timeout="1s").replace('{endpoint: "127.0.0.1:0"}', ""))
    assert config.receivers[0].config.protocols.grpc.endpoint == "127.0.0.1:4317"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        parse(textwrap.dedent(text))
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.usefixtures("recording_exporter")
class TestErrors:
    def test_unknown_key_names_key_component_and_valid_keys(self):
        message = _error(BASE.format(timeout="1s").replace("timeout: 1s", "timeout: 1s\n    send_batch_sise: 5"))
        assert "processors.batch" in message
        assert "'send_batch_sise'" in message
        assert "send_batch_size" in message and "timeout" in message

    def test_unknown_nested_key(self):
        message = _error(BASE.format(timeout="1s").replace('endpoint: "127.0.0.1:0"', 'endpont: "x"'))
        assert "receivers.otlp.protocols.grpc" in message and "'endpont'" in message
        assert "endpoint" in message

    def test_bad_duration(self):
        message = _error(BASE.format(timeout="soon"))
        assert message.startswith("processors.batch.timeout:") and "'soon'" in message

    def test_wrong_type(self):
        message = _error(BASE.format(timeout="1s").replace("timeout: 1s", "send_batch_size: lots"))
        assert "processors.batch.send_batch_size: expected int" in message

    def test_invalid_value_from_config_validation(self):
        message = _error(BASE.format(timeout="1s").replace("timeout: 1s", "send_batch_size: 0"))
        assert "processors.batch" in message and "send_batch_size" in message

    def test_unknown_component_type(self):
        message = _error(BASE.format(timeout="1s").replace("  batch:\n", "  bacth:\n").replace("[batch]", "[bacth]"))
        assert "unknown type 'bacth'" in message and "batch" in message

    def test_pipeline_names_undefined_component(self):
        message = _error(BASE.format(timeout="1s").replace("[batch]", "[batch, normalize]"))
        assert "service.pipelines.traces.processors" in message
        assert "'normalize'" in message and "not defined" in message

    def test_second_instance_of_a_type(self):
        text = BASE.format(timeout="1s").replace("  batch:\n", "  batch/fast:\n    timeout: 5ms\n  batch:\n")
        config = parse(text.replace("[batch]", "[batch/fast, batch]"))
        assert [p.config.timeout for p in config.processors] == [pytest.approx(0.005), 1.0]

    def test_not_yaml(self):
        assert "not valid YAML" in _error("receivers: [otlp\n")

    def test_unknown_section(self):
        assert "unknown section 'connectors'" in _error("connectors: {}\n")

    def test_missing_pipeline(self):
        assert "service.pipelines.traces is missing" in _error("receivers: {}\n")


def test_cli_config_error_exit_2_one_line(tmp_path, capsys, recording_exporter):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.format(timeout="forever"))
    assert main(["collector", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "processors.batch.timeout" in err


def test_cli_missing_file(tmp_path, capsys):
    assert main(["collector", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_cli_port_in_use_exit_1_one_line(tmp_path, capsys, recording_exporter):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = tmp_path / "clash.yaml"
        path.write_text(BASE.format(timeout="1s").replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        assert main(["collector", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"127.0.0.1:{port}" in err and "address in use" in err


def test_cli_unreachable_clickhouse_exit_1_one_line(tmp_path):
    path = tmp_path / "unreachable.yaml"
    path.write_text(textwrap.dedent(f"""
        receivers:
          otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:0"}}}}}}
        exporters:
          clickhouse: {{endpoint: "http://127.0.0.1:1", spool: {{directory: "{tmp_path / 'spool'}"}}}}
        service:
          pipelines:
            traces: {{receivers: [otlp], exporters: [clickhouse]}}
    """))
    result = subprocess.run(
        [sys.executable, "-m", "sessionlens", "collector", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "cannot reach ClickHouse" in result.stderr and "exporters.clickhouse.endpoint" in result.stderr
