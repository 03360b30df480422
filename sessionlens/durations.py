"""Durations as people write them: ``200ms``, ``30s``, ``30m``, ``1h30m`` or plain seconds.

The collector's config (a :data:`Duration` field of a component's ``Config``), the schema
CLI's ``--ttl`` / ``--inactivity-timeout`` and anything else that takes a time span parse it
here, so every surface accepts the same spellings (the OpenTelemetry Collector's Go syntax).
"""

from __future__ import annotations

import re
from typing import NewType

Duration = NewType("Duration", float)
"""A config field in seconds; the YAML may say ``30m``, ``200ms``, ``1h`` or a number of seconds."""

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_HELP = "use e.g. 200ms, 30s, 30m, 1h or a number of seconds"


def parse_duration(value: object) -> float:
    """Seconds from ``200ms``, ``30s``, ``30m``, ``1h30m`` (Go syntax) or a number of seconds.

    Raises :class:`ValueError` saying which spellings work for anything else (a bool, an
    empty string, a negative value, an unknown unit).
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({_HELP})")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        position, seconds = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            position = match.end()
        if position != len(text):
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(f"{value!r} is not a duration ({_HELP})") from None
    else:
        raise ValueError(f"{value!r} is not a duration ({_HELP})")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative: a duration must be 0 or more")
    return seconds
