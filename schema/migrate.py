"""Versioned schema migrations: frozen SQL files, applied idempotently at every collector start.

Migration ``N`` is ``migrations/NNNN_<slug>.sql`` (package data); its first line,
``-- <name>``, is the name recorded in ``schema_migrations``. A released file is never
edited again (``tests/test_schema_migrate.py`` holds each to its sha256): a change is a new
file. Deployment knobs are placeholders (:mod:`sessionlens.schema.template`).

Every statement of a migration is safe to run again (``IF NOT EXISTS``, ``OR REPLACE``,
``ADD COLUMN IF NOT EXISTS``), which is what lets :func:`apply` repair a store: objects the
applied migrations created that are gone (a dropped ``otel_traces``, say) are created again
from the migrations, in order, before the collector inserts anything — rather than a
collector that starts, spools every span and fails every insert.

After the migrations, the prices seeded into ``model_prices`` are brought up to the
installed genai-prices package (:func:`sessionlens.schema.price_seed.refresh`): nothing
happens when they are current; users' rows are never touched.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING

from sessionlens.schema.names import SETTINGS_TABLE, Names
from sessionlens.schema.options import SchemaOptions, TableEngine
from sessionlens.schema import price_seed
from sessionlens.schema.quoting import literal
from sessionlens.schema.template import split_statements, substitute

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = [
    "MIGRATIONS",
    "Migration",
    "SchemaError",
    "SchemaOptions",
    "TableEngine",
    "apply",
    "render",
    "statements",
]

log = logging.getLogger(__name__)

_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
# The object a statement creates or changes: `${database}`.`name` after its keywords.
_TARGET = re.compile(
    r"^(CREATE|ALTER)\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|MATERIALIZED\s+VIEW|DICTIONARY)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?`[^`]+`\.`([^`]+)`",
    re.IGNORECASE,
)


class SchemaError(RuntimeError):
    """The store's schema is broken in a way :func:`apply` cannot repair; says what to do."""


@dataclass(frozen=True)
class Migration:
    """One frozen migration file: its version, its name and its text with placeholders."""

    version: int
    name: str
    filename: str
    text: str

    def statements(self, options: SchemaOptions) -> list[str]:
        """The DDL of this migration for ``options``, one statement each."""
        return split_statements(substitute(self.text, options))

    @cached_property
    def targets(self) -> list[tuple[str, str] | None]:
        """Per statement: (``CREATE``/``ALTER``, the object's raw name), or None for data."""
        # placeholders never sit before the object name's backticks, so the raw text parses
        out: list[tuple[str, str] | None] = []
        for sql in split_statements(self.text):
            match = _TARGET.match(sql)
            out.append((match.group(1).upper(), match.group(2)) if match else None)
        return out

    def objects(self, options: SchemaOptions) -> list[str]:
        """Names (in the database) of the objects this migration creates."""
        return [
            _object_name(target[1], options)
            for target in self.targets
            if target is not None and target[0] == "CREATE"
        ]


def _object_name(raw: str, options: SchemaOptions) -> str:
    return raw.replace("${traces_table}", options.traces_table_name)


def _load() -> tuple[Migration, ...]:
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE.fullmatch(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        first = text.split("\n", 1)[0]
        if not first.startswith("-- "):
            raise SchemaError(f"migration {entry.name} must start with '-- <name>'")
        found.append(Migration(int(match.group(1)), first[3:].strip(), entry.name, text))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError(f"migration versions must be 1..N without gaps: {[m.filename for m in found]}")
    return tuple(found)


MIGRATIONS: tuple[Migration, ...] = _load()
"""Every migration, in order. Never edit a released one: add the next file."""

_BOOTSTRAP = resources.files(__package__).joinpath("migrations", "bootstrap.sql").read_text(
    encoding="utf-8"
)


PRICE_HISTORY_VERSION = 6
"""The migration that gives ``model_prices`` the columns of the genai-prices seed."""


def bootstrap(options: SchemaOptions) -> list[str]:
    """The database and ``schema_migrations``: run before anything else, every time."""
    return split_statements(substitute(_BOOTSTRAP, options))


def statements(options: SchemaOptions) -> list[tuple[int, str]]:
    """Every DDL statement with the migration version it belongs to (0 = bootstrap)."""
    out = [(0, sql) for sql in bootstrap(options)]
    for migration in MIGRATIONS:
        out.extend((migration.version, sql) for sql in migration.statements(options))
    return out


INACTIVITY_SETTING = "inactivity_timeout_s"
"""The ``sessionlens_settings`` row the views take ``status`` from (seconds)."""


def settings_statement(options: SchemaOptions) -> str | None:
    """The INSERT storing ``options.inactivity_timeout``; None when it is not given."""
    if options.inactivity_timeout is None:
        return None
    return (
        f"INSERT INTO {Names(options).settings} (name, value) "
        f"VALUES ({literal(INACTIVITY_SETTING)}, {literal(repr(float(options.inactivity_timeout)))})"
    )


def stored_inactivity_timeout(client: Client, options: SchemaOptions) -> float | None:
    """The inactivity timeout the views use now (seconds), None when none is stored."""
    value = client.query(
        f"SELECT argMax(value, updated_at) FROM {Names(options).settings} WHERE name = {{n:String}}",
        parameters={"n": INACTIVITY_SETTING},
    ).result_rows[0][0]
    return float(value) if value else None


def render(options: SchemaOptions) -> str:
    """All DDL as one script (``sessionlens schema print``), price seed included."""
    parts = [
        f"-- sessionlens schema, migrations 1..{MIGRATIONS[-1].version}, database {options.database}",
        *(sql + ";" for _version, sql in statements(options)),
    ]
    versions = ", ".join(f"({m.version}, {literal(m.name)})" for m in MIGRATIONS)
    parts.append(f"INSERT INTO {Names(options).migrations} (version, name) VALUES {versions};")
    parts.append(
        f"-- prices from genai-prices {price_seed.installed_version()}; "
        "override them with plain INSERTs (see sessionlens.schema)"
    )
    parts.append(price_seed.seed_statement(Names(options).prices) + ";")
    setting = settings_statement(options)
    if setting is not None:
        parts.append("-- the inactivity timeout session status follows")
        parts.append(setting + ";")
    return "\n\n".join(parts) + "\n"


def applied_versions(client: Client, options: SchemaOptions) -> list[int]:
    """Versions recorded in ``schema_migrations`` (ascending)."""
    rows = client.query(
        f"SELECT DISTINCT version FROM {Names(options).migrations} ORDER BY version"
    ).result_rows
    return [r[0] for r in rows]


def existing_objects(client: Client, options: SchemaOptions) -> set[str]:
    """Names of the tables, views and dictionaries in the database now."""
    rows = client.query(
        "SELECT name FROM system.tables WHERE database = {d:String}",
        parameters={"d": options.database},
    ).result_rows
    return {r[0] for r in rows}


def missing_objects(client: Client, options: SchemaOptions, versions: set[int]) -> list[str]:
    """Objects the migrations in ``versions`` created that the database lacks now."""
    have = existing_objects(client, options)
    return [
        name
        for m in MIGRATIONS
        if m.version in versions
        for name in m.objects(options)
        if name not in have
    ]


def _repair(client: Client, options: SchemaOptions, versions: set[int], run) -> list[str]:
    """Recreate missing objects from the applied migrations, in their order.

    A missing object's CREATE runs again, and so does every later statement of an applied
    migration that creates or alters that object, so it ends as a fresh install has it.
    Statements about objects that still exist do not run (their data stays untouched).
    """
    missing = set(missing_objects(client, options, versions))
    if not missing:
        return []
    log.warning("schema: recreating missing objects %s in database %s", sorted(missing), options.database)
    try:
        for m in MIGRATIONS:
            if m.version not in versions:
                continue
            for target, sql in zip(m.targets, m.statements(options)):
                if target is not None and _object_name(target[1], options) in missing:
                    run(sql)
    except Exception as exc:
        raise SchemaError(
            f"database {options.database} lacks {', '.join(sorted(missing))} and recreating "
            f"them failed: {str(exc).splitlines()[0]}; fix the cause (ON CLUSTER name, rights, "
            "disk) and start again, or restore the objects from a backup"
        ) from exc
    still = missing_objects(client, options, versions)
    if still:
        raise SchemaError(
            f"database {options.database} lacks {', '.join(still)} and recreating them failed; "
            "drop the database's sessionlens objects and run 'sessionlens schema apply', "
            "or restore them from a backup"
        )
    return sorted(missing)


def apply(
    client: Client,
    options: SchemaOptions | None = None,
    until: int | None = None,
) -> list[str]:
    """Create the database, repair missing objects, apply pending migrations (up to
    version ``until``; default: all).

    Returns the statements run. Idempotent: on a complete store a second call runs
    nothing but the bootstrap checks (and seeds prices only when the installed genai-prices
    version is new to this database). Raises :class:`SchemaError` when a missing object cannot be
    recreated.
    """
    options = options or SchemaOptions()
    ran: list[str] = []

    def run(sql: str) -> None:
        client.command(sql)
        ran.append(sql)

    for sql in bootstrap(options):
        run(sql)
    done = set(applied_versions(client, options))
    _repair(client, options, done, run)
    names = Names(options)
    for migration in MIGRATIONS:
        if migration.version in done or (until is not None and migration.version > until):
            continue
        for sql in migration.statements(options):
            run(sql)
        client.command(
            f"INSERT INTO {names.migrations} (version, name) "
            f"VALUES ({migration.version}, {literal(migration.name)})"
        )
    if PRICE_HISTORY_VERSION in set(applied_versions(client, options)):
        price_seed.refresh(client, options)
    setting = settings_statement(options)
    if (
        setting is not None
        and SETTINGS_TABLE in existing_objects(client, options)  # not before migration 5
        and stored_inactivity_timeout(client, options) != float(options.inactivity_timeout)
    ):
        run(setting)
    return ran
