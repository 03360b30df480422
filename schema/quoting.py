"""Quoting for the few SQL fragments Python still builds (price seed, parameterized reads)."""

from __future__ import annotations

_NOT_IN_NAMES = ("`", "'", '"', "\\")


def literal(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name: str) -> str:
    """A quoted ClickHouse identifier (database, table, cluster).

    Names with quotes, backslashes or whitespace are refused: the migration files put
    ``${database}`` inside backticks and inside string literals alike.
    """
    if not name or any(c in name for c in _NOT_IN_NAMES) or any(c.isspace() for c in name):
        raise ValueError(
            f"invalid ClickHouse name {name!r}: use letters, digits, '_', '-' or '.' "
            "(no quotes, backslashes or spaces)"
        )
    return f"`{name}`"
