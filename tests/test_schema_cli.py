"""``sessionlens schema apply | print | unpriced-models`` through the real entry point."""

from __future__ import annotations

import re

from sessionlens.__main__ import main
from sessionlens.storage import connect


def test_apply_then_unpriced_models(chdb_url, database, capsys):
    assert main(["schema", "apply", "--clickhouse", chdb_url, "--database", database]) == 0
    assert f"database {database} at version" in capsys.readouterr().out
    client = connect(chdb_url)
    client.command(
        f"INSERT INTO {database}.otel_traces (Timestamp, TraceId, SpanId, SpanAttributes) VALUES "
        "(now64(9), 't1', 's1', {'session.id': 's', 'gen_ai.operation.name': 'chat', 'gen_ai.usage.input_tokens': '10', "
        "'gen_ai.request.model': 'no-such-model'}), "
        "(now64(9), 't1', 's2', {'session.id': 's', 'gen_ai.operation.name': 'chat', 'gen_ai.usage.input_tokens': '10', "
        "'gen_ai.request.model': 'gpt-4o'}), "
        # a new snapshot with no price: priced by its request model, so not listed
        "(now64(9), 't1', 's3', {'session.id': 's', 'gen_ai.operation.name': 'chat', 'gen_ai.usage.input_tokens': '10', "
        "'gen_ai.request.model': 'gpt-4o', 'gen_ai.response.model': 'gpt-4o-next-x9'})"
    )
    assert main(["schema", "unpriced-models", "--clickhouse", chdb_url, "--database", database]) == 0
    out = capsys.readouterr().out
    listed = out.split("add prices")[0]
    assert re.search(r"^no-such-model +1$", listed, re.M) and "gpt-4o" not in listed


def test_print_and_bad_input(capsys, chdb_url):
    assert main(["schema", "print", "--cluster", "c", "--table-engine", "ReplicatedMergeTree"]) == 0
    assert "ReplicatedAggregatingMergeTree" in capsys.readouterr().out
    assert main(["schema", "print", "--ttl", "forever"]) == 2
    assert "not a duration" in capsys.readouterr().err
    assert main(["schema", "print", "--table-engine", "Memory"]) == 2
    assert main(["schema", "unpriced-models", "--clickhouse", chdb_url, "--database", "missing_db"]) == 1
    assert "sessionlens schema apply" in capsys.readouterr().err


def test_unpriced_models_never_prints_terminal_control_codes(chdb_url, database, capsys):
    assert main(["schema", "apply", "--clickhouse", chdb_url, "--database", database]) == 0
    capsys.readouterr()
    hostile = "evil\x1b]0;owned\x07\x1b[2J\rgpt-4o\u202e\x9b31m"
    client = connect(chdb_url, database=database)
    client.insert(
        "otel_traces", [["t1", "s1", {"gen_ai.operation.name": "chat", "gen_ai.request.model": hostile,
                                   "gen_ai.usage.input_tokens": "10"}]],
        column_names=["TraceId", "SpanId", "SpanAttributes"],
    )
    assert main(["schema", "unpriced-models", "--clickhouse", chdb_url, "--database", database]) == 0
    out = capsys.readouterr().out
    assert r"evil\x1b]0;owned\x07\x1b[2J\x0dgpt-4o\u202e\x9b31m  1" in out
    assert not any(ch in out for ch in "\x1b\x07\r\u202e\x9b")


def test_printable_leaves_ordinary_text_alone():
    from sessionlens.terminal import printable

    for text in ("gpt-4o", "claude-3-5-sonnet@20241022", "模型 ✓ émoji 🚀", ""):
        assert printable(text) == text
    assert printable("a\tb\nc\x00") == r"a\x09b\x0ac\x00"
