"""Make values from spans safe to print on a terminal.

A span writer controls ids, names, models, paths and status messages. Printed raw, an
escape sequence in one could move the cursor, retitle the window or hide text, and a
bidirectional override could reorder what is shown. :func:`safe` shows each such character
as a visible escape instead (``\\x1b``, ``\\u202e``), so nothing is lost or hidden.
"""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls, DEL, and the invisible or reordering format characters (zero-width,
# bidirectional embeddings/overrides/isolates, line/paragraph separators, BOM).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


def _escape(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: Any) -> str:
    """``value`` as text with every control or invisible format character made visible."""
    return _UNSAFE.sub(_escape, "" if value is None else str(value))
