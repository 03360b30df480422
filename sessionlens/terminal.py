"""Text from spans, made safe to print to a terminal.

Model names, session names and every other string a client sent may hold terminal control
sequences (``\\x1b]0;...`` retitles the window, ``\\x1b[2J`` clears it, a carriage return
overwrites the line, bidirectional overrides reorder what is shown). Command-line output of
such values goes through :func:`printable`, which shows each control character as an escape
instead of sending it to the terminal.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the invisible format characters that reorder or hide text
# (zero-width, bidi marks, embeddings, overrides and isolates, line/paragraph separators,
# the deprecated format controls, BOM, interlinear annotation).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control or bidi/invisible format character written as an escape
    (``\\x1b``, ``\\u202e``); text without them is returned as is."""
    return _UNSAFE.sub(_escape, text)
