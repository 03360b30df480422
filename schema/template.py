"""SQL text with named deployment placeholders: how a frozen migration file becomes DDL.

A migration file is plain ClickHouse SQL, statements ending in ``;`` at the end of a line.
The deployment knobs (named as the Collector's clickhouseexporter names them) appear as
placeholders, substituted in one pass (a value is never substituted again):

``${database}``
    the database name, bare (it sits inside backticks or a string literal)
``${traces_table}``
    the spans table's name; the other tables are named after it (``${traces_table}_sessions``)
``${on_cluster}``
    `` ON CLUSTER `name` `` with ``cluster_name`` set, else nothing
``${engine:VariantMergeTree(args)}``
    the ``table_engine`` family's variant with its parameters first, e.g.
    ``${engine:ReplacingMergeTree(updated_at)}`` is
    ``ReplicatedReplacingMergeTree('/path', '{replica}', updated_at)`` on a cluster
``${ttl:Column}``
    ``TTL toDateTime(Column) + toIntervalSecond(ttl)``; with no ``ttl`` the line holding it
    is left out
``${dedup_setting}``
    ``, non_replicated_deduplication_window = 10000`` for a plain MergeTree (a replayed
    insert is dropped, as Replicated engines do by default), else nothing
``${inactivity_timeout}``
    seconds (migration 4 only; from migration 5 the views read it from the
    ``sessionlens_settings`` table)

Anything else spelled ``${…}`` is an error, so a typo cannot reach ClickHouse.
"""

from __future__ import annotations

import re

from sessionlens.schema.options import SchemaOptions

DEFAULT_INACTIVITY_TIMEOUT = 1800
"""Seconds, as the autosession processor's default and the views' when nothing is stored."""

_PLACEHOLDER = re.compile(r"\$\{(\w+)(?::([^}]*))?\}")
_ENGINE_VARIANT = re.compile(r"(\w*)MergeTree(?:\((.*)\))?")


class TemplateError(ValueError):
    """A placeholder the renderer does not know (a bug in a migration file)."""


def _engine(options: SchemaOptions, spec: str) -> str:
    match = _ENGINE_VARIANT.fullmatch(spec)
    if match is None:
        raise TemplateError(f"${{engine:{spec}}}: expected VariantMergeTree or VariantMergeTree(args)")
    variant, args = match.groups()
    extra = [a.strip() for a in args.split(",")] if args else []
    return options.table_engine.render(variant, *extra)


def _value(options: SchemaOptions, name: str, arg: str | None) -> str:
    if name == "database" and arg is None:
        return options.database
    if name == "traces_table" and arg is None:
        return options.traces_table_name
    if name == "on_cluster" and arg is None:
        return options.on_cluster
    if name == "dedup_setting" and arg is None:
        return options.dedup_setting
    if name == "inactivity_timeout" and arg is None:
        return str(int(options.inactivity_timeout or DEFAULT_INACTIVITY_TIMEOUT))
    if name == "engine" and arg:
        return _engine(options, arg)
    if name == "ttl" and arg:
        return options.ttl_clause(arg).rstrip("\n")
    spelled = f"${{{name}:{arg}}}" if arg is not None else f"${{{name}}}"
    raise TemplateError(f"unknown placeholder {spelled}")


def substitute(text: str, options: SchemaOptions) -> str:
    """``text`` with every placeholder replaced; a line left empty by one is dropped."""
    lines = []
    for line in text.split("\n"):
        rendered = _PLACEHOLDER.sub(lambda m: _value(options, m.group(1), m.group(2)), line)
        if rendered.strip() or not line.strip():
            lines.append(rendered)
    return "\n".join(lines)


def placeholders(text: str) -> set[str]:
    """The placeholder names ``text`` uses (``engine``, ``ttl`` … without their argument)."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(text)}


def split_statements(text: str) -> list[str]:
    """The statements of a SQL script, without their comment lines and final ``;``.

    A statement ends with ``;`` at the end of a line, outside string literals and
    quoted identifiers.
    """
    statements: list[str] = []
    current: list[str] = []
    quote = ""
    for line in text.split("\n"):
        if not quote and line.lstrip().startswith("--"):
            continue
        current.append(line)
        i = 0
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch in "'`\"":
                quote = ch
            elif line.startswith("--", i):
                break
            i += 1
        if not quote and line.rstrip().endswith(";"):
            body = "\n".join(current).strip()
            statements.append(body[:-1].rstrip())
            current = []
    rest = "\n".join(current).strip()
    if rest:
        raise TemplateError(f"SQL after the last ';': {rest[:80]!r}")
    return statements
