import pytest

from sessionlens.storage import StorageError, connect, embedded_path


def test_embedded_paths(tmp_path, monkeypatch):
    assert embedded_path("chdb:///var/lib/x") == "/var/lib/x"
    monkeypatch.chdir(tmp_path)
    assert embedded_path("chdb://data/clickhouse") == str(tmp_path / "data" / "clickhouse")
    assert embedded_path("http://localhost:8123") is None


@pytest.mark.parametrize("url", ["chdb://", "chdb:///", "mysql://h/db", "localhost:8123", "http://:8123/"])
def test_bad_urls_say_what_to_use(url):
    with pytest.raises(StorageError, match="chdb:///"):
        connect(url)


def test_bad_url_never_echoes_the_password():
    with pytest.raises(StorageError) as info:
        connect("ftp://alice:s3cret@host/db")
    assert "s3cret" not in str(info.value)


def test_embedded_client_runs_sql(chdb_url, database):
    client = connect(chdb_url, database=database)
    client.command("CREATE TABLE t (x UInt8) ENGINE = Memory")
    client.insert("t", [[1], [2]], column_names=["x"])
    assert client.query("SELECT sum(x) FROM t").result_rows == [(3,)]


def test_a_store_open_in_another_process_is_named_as_such(chdb_url, tmp_path):
    """chDB says only BAD_ARGUMENTS (the lock is on its stderr): connect() names the cause,
    and a second collector on the store says to stop the first, not "is ClickHouse running?"."""
    import subprocess
    import sys

    from sessionlens.storage import store_in_use

    holder = connect(chdb_url)  # this process holds the store while the client is open
    holder.query("SELECT 1")
    config = tmp_path / "collector.yaml"
    config.write_text(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {endpoint: '127.0.0.1:0'}\n"
        f"exporters:\n  clickhouse:\n    endpoint: '{chdb_url}'\n"
        f"    spool: {{directory: '{tmp_path / 'spool'}'}}\n"
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [clickhouse]}\n"
    )
    result = subprocess.run([sys.executable, "-m", "sessionlens", "collector", "--config", str(config)],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 1, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("sessionlens collector:")]
    assert f"the embedded ClickHouse store at {embedded_path(chdb_url)} is open in another process" in line
    assert "stop the other collector" in line and "is ClickHouse running" not in line
    assert store_in_use(embedded_path(chdb_url))
    assert not store_in_use(str(tmp_path))  # no status file: nothing holds it
