"""The deployment knobs of the schema, named as the Collector's clickhouseexporter names them."""

from __future__ import annotations

from dataclasses import dataclass, field

from sessionlens.schema.quoting import ident


@dataclass(frozen=True)
class TableEngine:
    """A MergeTree-family engine: ``name`` (e.g. ``ReplicatedMergeTree``) and its ``params``."""

    name: str = "MergeTree"
    params: str = ""

    def __post_init__(self) -> None:
        if not self.name.endswith("MergeTree") or not self.name.isidentifier():
            raise ValueError(
                f"table_engine {self.name!r} is not a MergeTree-family engine "
                "(use MergeTree, ReplicatedMergeTree, SharedMergeTree …)"
            )

    @classmethod
    def parse(cls, text: str) -> TableEngine:
        """``Name`` or ``Name(params)``; empty text: plain MergeTree."""
        text = text.strip()
        if not text:
            return cls()
        name, _, params = text.partition("(")
        if params and not params.endswith(")"):
            raise ValueError(f"table_engine {text!r}: unbalanced parentheses")
        return cls(name.strip(), params[:-1].strip())

    @property
    def replicated(self) -> bool:
        return self.name.startswith("Replicated")

    def render(self, variant: str = "", *extra: str) -> str:
        """The engine clause for a ``variant`` (``Aggregating``, ``Replacing``) of this family."""
        name = self.name.removesuffix("MergeTree") + variant + "MergeTree"
        args = [a for a in (self.params, *extra) if a]
        return f"{name}({', '.join(args)})"


@dataclass(frozen=True)
class SchemaOptions:
    """Where and how the schema is created.

    ``ttl`` is in seconds (0 = keep forever); ``table_engine`` may also be given as text
    (``ReplicatedMergeTree('/path', '{replica}')``, empty = MergeTree);
    ``inactivity_timeout`` (seconds) is how long after its last activity a session still
    shows as ``active``: :func:`~sessionlens.schema.migrate.apply` stores it in the
    ``sessionlens_settings`` table the views read (the collector passes its autosession
    processor's value); None leaves the stored value as it is (1800 s on a new store).
    """

    database: str = "otel"
    traces_table_name: str = "otel_traces"
    ttl: float = 0
    cluster_name: str = ""
    table_engine: TableEngine | str = field(default_factory=TableEngine)
    inactivity_timeout: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.table_engine, str):
            object.__setattr__(self, "table_engine", TableEngine.parse(self.table_engine))
        ident(self.database)
        ident(self.traces_table_name)
        if self.cluster_name:
            ident(self.cluster_name)
        if self.ttl < 0 or (self.inactivity_timeout is not None and self.inactivity_timeout <= 0):
            raise ValueError("ttl must be >= 0 and inactivity_timeout > 0 (seconds)")

    def table(self, name: str) -> str:
        """``database.name``, quoted."""
        return f"{ident(self.database)}.{ident(name)}"

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {ident(self.cluster_name)}" if self.cluster_name else ""

    @property
    def dedup_setting(self) -> str:
        """Lets an ``insert_deduplication_token`` drop a replayed batch on a plain MergeTree
        (the exporter's spool replay) in the table and in the tables its views feed;
        Replicated engines deduplicate by default."""
        if self.table_engine.replicated:
            return ""
        return ", non_replicated_deduplication_window = 10000"

    def ttl_clause(self, column: str) -> str:
        if not self.ttl:
            return ""
        return f"TTL toDateTime({column}) + toIntervalSecond({int(self.ttl)})\n"
