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
    from sessionlens.collector.storage import connect

    name = "t_" + uuid.uuid4().hex[:12]
    client = connect(chdb_url)
    client.command(f"CREATE DATABASE {name}")
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    client.close()
