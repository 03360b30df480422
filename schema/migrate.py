"""Versioned schema migrations, applied idempotently (safe at every collector start).

Each migration is a list of DDL statements rendered for the :class:`SchemaOptions`;
applied versions are recorded in ``schema_migrations``. The price file is seeded into
``model_prices`` once per price-file date, so user INSERTs (newer ``updated_at``) keep
winning over the shipped prices.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sessionlens.schema import ddl
from sessionlens.schema.expressions import literal
from sessionlens.schema.options import SchemaOptions, TableEngine
from sessionlens.schema.prices import load_price_document, load_prices

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["MIGRATIONS", "SchemaOptions", "TableEngine", "apply", "render", "statements"]

Migration = tuple[int, str, Callable[[SchemaOptions], list[str]]]

MIGRATIONS: tuple[Migration, ...] = (
    (1, "model prices table and dictionary", ddl.prices_table),
    (2, "otel_traces (clickhouseexporter-compatible) with session columns", ddl.traces_table),
    (3, "session rollups: per session, per session and model, spans by session", ddl.session_tables),
    (4, "session views", ddl.session_views),
)
"""(version, name, statements) in order. Never edit an applied one: append a new version."""


def _seed_source(as_of: str) -> str:
    return f"prices.json@{as_of}"


def seed_prices_statement(options: SchemaOptions, price_file: str | Path | None = None) -> str:
    """INSERT of the price file into ``model_prices``, dated ``as_of`` (older than user rows)."""
    doc = load_price_document(price_file)
    rows = ",\n".join(
        f"    ({literal(model)}, {p.input_per_mtok!r}, {p.output_per_mtok!r}, "
        f"{p.cached_input_per_mtok!r}, {literal(_seed_source(doc['as_of']))}, "
        f"toDateTime64({literal(doc['as_of'])}, 3))"
        for model, p in sorted(load_prices(price_file).items())
    )
    return (
        f"INSERT INTO {ddl.Names(options).prices} "
        "(model, input_per_mtok, output_per_mtok, cached_input_per_mtok, source, updated_at) VALUES\n"
        + rows
    )


def statements(options: SchemaOptions) -> list[tuple[int, str]]:
    """Every DDL statement with the migration version it belongs to (0 = bootstrap)."""
    out = [(0, ddl.create_database(options)), (0, ddl.migrations_table(options))]
    for version, _name, build in MIGRATIONS:
        out.extend((version, sql) for sql in build(options))
    return out


def render(options: SchemaOptions) -> str:
    """All DDL as one script (``sessionlens schema print``), price seed included."""
    parts = [
        f"-- sessionlens schema, migrations 1..{MIGRATIONS[-1][0]}, database {options.database}",
        *(sql + ";" for _version, sql in statements(options)),
    ]
    versions = ", ".join(f"({v}, {literal(name)})" for v, name, _ in MIGRATIONS)
    parts.append(
        f"INSERT INTO {ddl.Names(options).migrations} (version, name) VALUES {versions};"
    )
    parts.append("-- prices shipped in prices.json; update them later with plain INSERTs")
    parts.append(seed_prices_statement(options) + ";")
    return "\n\n".join(parts) + "\n"


def applied_versions(client: Client, options: SchemaOptions) -> list[int]:
    """Versions recorded in ``schema_migrations`` (ascending)."""
    rows = client.query(
        f"SELECT DISTINCT version FROM {ddl.Names(options).migrations} ORDER BY version"
    ).result_rows
    return [r[0] for r in rows]


def apply(
    client: Client, options: SchemaOptions | None = None, price_file: str | Path | None = None
) -> list[str]:
    """Create the database and apply pending migrations; return the statements run.

    Idempotent: a second call runs nothing but a check (and seeds prices only when the
    price file's date is new to this database).
    """
    options = options or SchemaOptions()
    ran: list[str] = []

    def run(sql: str) -> None:
        client.command(sql)
        ran.append(sql)

    run(ddl.create_database(options))
    run(ddl.migrations_table(options))
    done = set(applied_versions(client, options))
    names = ddl.Names(options)
    for version, name, build in MIGRATIONS:
        if version in done:
            continue
        for sql in build(options):
            run(sql)
        client.command(
            f"INSERT INTO {names.migrations} (version, name) VALUES ({version}, {literal(name)})"
        )
    as_of = load_price_document(price_file)["as_of"]
    seeded = client.query(
        f"SELECT count() FROM {names.prices} WHERE source = {literal(_seed_source(as_of))}"
    ).result_rows[0][0]
    if not seeded:
        run(seed_prices_statement(options, price_file))
        run(f"SYSTEM RELOAD DICTIONARY {names.dictionary}")
    return ran
