"""The CLI's rendering on its own: escaping of span values, the timeline, the SSE reader.

(The commands against a real collector and its sessions API are in test_cli.py.)
"""

from __future__ import annotations

import io
import socket

import pytest

from sessionlens.cli import render
from sessionlens.cli.render import safe
from sessionlens.cli.source import ApiSource, CliError, sse_data

HOSTILE = [
    "\x1b[2J\x1b[H",  # clear the screen, cursor home
    "\x1b]0;owned\x07",  # retitle the window (OSC … BEL)
    "\x9b31m",  # C1 CSI: an escape sequence without ESC
    "admin\u202etxt.exe",  # right-to-left override
    "a\u200bb\u2066c\u2069",  # zero-width space, isolates
    "line\r\nbreak\x00\x7f",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_safe_leaves_no_control_or_reordering_character(value):
    shown = safe(value)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in shown)
    assert not any(c in shown for c in "\u202e\u200b\u2066\u2069")
    assert shown.count("\\") >= 1  # made visible, not dropped


def test_safe_keeps_ordinary_text():
    assert safe("Café 中文 🙂 [bold] $x") == "Café 中文 🙂 [bold] $x"
    assert safe(None) == "" and safe(0.5) == "0.5"


def _printed(renderable, width=200) -> str:
    out = io.StringIO()
    console = render.console(out)
    console.width = width
    console.print(renderable)
    return out.getvalue()


SPANS = [
    {"timestamp": "2026-12-01T09:00:00Z", "span_id": "a0", "parent_span_id": "", "operation": "invoke_agent",
     "span_name": "invoke_agent planner", "agent_id": "planner", "run_id": "r1", "duration_ms": 10_000,
     "status": "Unset"},
    {"timestamp": "2026-12-01T09:00:01Z", "span_id": "a1", "parent_span_id": "a0", "operation": "chat",
     "span_name": "chat \x1b[31mgpt-4o", "model": "gpt-4o", "path": "plan/[bold]draft",
     "input_tokens": 1000, "output_tokens": 100, "cost_usd": 0.0035, "duration_ms": 1200, "status": "Unset"},
    {"timestamp": "2026-12-01T09:00:01.100Z", "span_id": "h1", "parent_span_id": "a1", "span_name": "POST",
     "duration_ms": 1100, "status": "Unset"},
    {"timestamp": "2026-12-01T09:00:05Z", "span_id": "a2", "parent_span_id": "a0", "operation": "chat",
     "span_name": "chat gpt-4o-mini", "model": "gpt-4o-mini", "duration_ms": 5000, "status": "Error",
     "status_message": "429\x1b[8m hidden"},
]


def test_timeline_escapes_folds_transport_spans_and_draws_the_waterfall():
    text = _printed(render.timeline(SPANS, bar_width=20))
    assert "\x1b" not in text and "\\x1b[31m" in text
    assert "plan/[bold]draft" in text  # markup is shown, never applied
    lines = text.splitlines()
    assert not any(" POST " in line for line in lines)
    (llm,) = [line for line in lines if "+1 http" in line]
    assert "\\x1b[31mgpt-4o" in llm and "$0.003500" in llm and "1000→100" in llm and "1200 ms" in llm
    # the waterfall: offsets 1 s and 5 s of a 10 s session on a 20-column bar
    assert llm.endswith("  ██" + " " * 16)
    err = next(line for line in lines if "gpt-4o-mini" in line)
    assert "error: 429\\x1b[8m hidden" in err
    assert render._bar(1, 1.2, 10, 20) == "  ██" + " " * 16
    assert render._bar(5, 5, 10, 20) == " " * 10 + "█" * 10
    unfolded = _printed(render.timeline(SPANS, fold=False))
    assert " POST " in unfolded and "+1 http" not in unfolded


def test_transport_marker_wins_over_the_fallback_rule():
    marked = [dict(SPANS[1], is_transport=0), dict(SPANS[2], is_transport=1), dict(SPANS[3], is_transport=0)]
    assert "+1 http" in _printed(render.timeline(marked))
    unmarked = [dict(s, is_transport=0) for s in SPANS[1:3]]
    assert "+1 http" not in _printed(render.timeline(unmarked))


def test_session_table_escapes_every_value_from_spans():
    row = {"session_id": "S\x1b[1A", "session_name": "\u202eevil", "user_id": "u\x07",
           "agents": ["a\x1b"], "models": ["m\x9b"], "status": "active", "llm_calls": 3,
           "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.25, "errors": 1, "duration_s": 65,
           "first_seen": "2026-12-01T09:00:00Z", "last_seen": "2026-12-01T09:01:05Z"}
    text = _printed(render.session_table([row]))
    assert not any(c in text for c in "\x1b\x07\x9b\u202e")
    assert "$0.250000" in text and "1m05s" in text and "10→2" in text


def test_sse_reader_follows_the_event_stream_rules():
    stream = [b": keep-alive\n", b"event: session\n", b"data: {\"a\":\n", b"data: 1}\r\n", b"\n",
              b"data:{\"b\": 2}\n", b"id: 7\n", b"\n", b"data: {\"unterminated\": 1}\n"]
    assert list(sse_data(stream)) == ['{"a":\n1}', '{"b": 2}']


def test_nothing_listening_says_how_to_start_the_collector():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(CliError) as err:
        ApiSource(f"http://127.0.0.1:{port}").sessions({})
    message = str(err.value)
    assert f"nothing is listening at http://127.0.0.1:{port}" in message
    assert "make run" in message and "sessionlens collector" in message


def test_api_url_must_be_http():
    with pytest.raises(CliError) as err:
        ApiSource("chdb:///tmp/x")
    assert err.value.code == 2 and "is not an http(s) URL" in str(err.value)
