import pytest

from sessionlens.collector.storage import StorageError, connect, embedded_path


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
