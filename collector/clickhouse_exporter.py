"""The ClickHouse exporter: spans become rows of ``otel_traces``, losslessly.

Spans come in either of the pipeline's forms: Python ``Span`` objects (the span path),
spooled as marshalled columns and inserted as columns; or the engine path's requests,
spooled as ``schema/otlp_ingest.proto`` records (the request's bytes as received plus the
processors' decisions, prefixed ``ENGINE_RECORDS``) and inserted by the engine itself
(``INSERT … SELECT`` from the records, ``schema/ingest.py``). An insert of a spool range
holding both is two inserts, each with its own deduplication token.

``export()`` makes a batch durable before it returns: it drops spans already seen
(a client retrying after a lost ack: the same project, trace id and span id — span ids are
the client's to choose, so another project reusing them is another span), writes the batch's columns to the fsynced spool and
returns. A background inserter moves spool records into ClickHouse in order, as columnar
inserts of the OpenTelemetry Collector clickhouseexporter's columns (the session columns
are derived in the table itself). Each insert carries a deduplication token naming its
spool records, so an insert repeated after a crash or a lost reply adds nothing to the
table or to the materialized views fed by it. While ClickHouse is unreachable the spool
grows up to its limit; beyond it ``export()`` raises :class:`ExportUnavailable`.
"""

from __future__ import annotations

import logging
import marshal
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sessionlens import conventions, storage
from sessionlens.collector import records
from sessionlens.collector.component import ExportUnavailable
from sessionlens.collector.engine import SCRATCH_DIR
from sessionlens.collector.spool import Spool, SpoolFull, disk_full
from sessionlens.durations import Duration
from sessionlens.schema import ingest
from sessionlens.schema.quoting import ident

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from sessionlens.collector.component import Host
    from sessionlens.collector.engine import SpanColumns
    from sessionlens.collector.pdata import Span

log = logging.getLogger(__name__)

TYPE = "clickhouse"

ENGINE_RECORDS = b"P"
"""First byte of a spool payload of engine-path records (a marshalled payload never starts
so: marshal begins with a type code, ``(`` or ``\\xa8`` for the columns' tuple)."""

COLUMNS = ingest.INSERT_COLUMNS
"""The columns written, in the order of the clickhouseexporter's traces insert."""

SPAN_KINDS, STATUS_CODES = ingest.SPAN_KINDS, ingest.STATUS_CODES

_INSERT_SETTINGS = {
    # Rows of a replayed block must not reach the session rollup twice either.
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    # Asynchronous inserts deduplicate differently: keep every insert a block of its own.
    "async_insert": 0,
}


@dataclass
class SpoolConfig:
    directory: str = "./data/spool"
    max_size_mib: int = 1024


@dataclass
class Config:
    """The clickhouseexporter's knobs plus the spool, deduplication and insert batching."""

    endpoint: str = storage.DEFAULT_URL
    database: str = "otel"
    traces_table_name: str = "otel_traces"
    ttl: Duration = Duration(0)  # 0: keep spans forever
    cluster_name: str = ""
    table_engine: str = ""  # e.g. ReplicatedMergeTree; empty: the schema's default
    create_schema: bool = True
    timeout: Duration = Duration(5.0)  # how long shutdown() keeps draining the spool
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    dedup_window: int = 262_144  # recent span ids remembered to drop retried spans
    insert_max_spans: int = 50_000  # spans per ClickHouse insert, at most
    insert_interval: Duration = Duration(0.2)  # wait up to this long to fill an insert
    retry_max_interval: Duration = Duration(5.0)  # longest pause between failed inserts
    engine_path: bool = False
    """Experimental: decode and insert requests in the embedded engine (``collector/engine.py``)
    instead of in Python. Off by default: on the 2-core reference machine it is slower
    (see docs/pipeline.md)."""


def create(config: Config, host: Host | None = None) -> ClickHouseExporter:
    return ClickHouseExporter(config)


def to_columns(spans: list[Span]) -> tuple[list, ...]:
    """The ``COLUMNS`` of ``spans`` as column lists (timestamps in ns since the epoch)."""
    cols: tuple[list, ...] = tuple([] for _ in COLUMNS)
    (ts, trace_id, span_id, parent, state, name, kind, service, res, scope, scope_v, attrs,
     duration, status, status_msg, ev_ts, ev_name, ev_attrs, ln_trace, ln_span, ln_state,
     ln_attrs) = cols
    n_kinds, n_codes = len(SPAN_KINDS), len(STATUS_CODES)
    service_key = conventions.SERVICE_NAME
    none: list = []
    for s in spans:
        ts.append(s.start_time_unix_nano)
        trace_id.append(s.trace_id.hex())
        span_id.append(s.span_id.hex())
        parent.append(s.parent_span_id.hex())
        state.append(s.trace_state)
        name.append(s.name)
        kind.append(SPAN_KINDS[s.kind] if 0 <= s.kind < n_kinds else "")
        service.append(s.resource.get(service_key, ""))
        res.append(s.resource)
        scope.append(s.scope_name)
        scope_v.append(s.scope_version)
        attrs.append(s.attributes)
        duration.append(max(0, s.end_time_unix_nano - s.start_time_unix_nano))
        status.append(STATUS_CODES[s.status_code] if 0 <= s.status_code < n_codes else "")
        status_msg.append(s.status_message)
        events, links = s.events, s.links
        if events:
            ev_ts.append([e.time_unix_nano for e in events])
            ev_name.append([e.name for e in events])
            ev_attrs.append([e.attributes for e in events])
        else:  # most spans: one shared, never mutated empty list per nested column
            ev_ts.append(none)
            ev_name.append(none)
            ev_attrs.append(none)
        if links:
            ln_trace.append([link.trace_id.hex() for link in links])
            ln_span.append([link.span_id.hex() for link in links])
            ln_state.append([link.trace_state for link in links])
            ln_attrs.append([link.attributes for link in links])
        else:
            ln_trace.append(none)
            ln_span.append(none)
            ln_state.append(none)
            ln_attrs.append(none)
    return cols


class _RecentIds:
    """A bounded set of recent span keys, ``(project, trace id + span id)``: two
    generations, the older dropped when the newer fills."""

    def __init__(self, capacity: int) -> None:
        self._half = max(1, capacity // 2)
        self._new: set[tuple[str, bytes]] = set()
        self._old: set[tuple[str, bytes]] = set()

    def __contains__(self, key: tuple[str, bytes]) -> bool:
        return key in self._new or key in self._old

    def update(self, keys: set[tuple[str, bytes]]) -> None:
        self._new |= keys
        if len(self._new) >= self._half:
            self._old, self._new = self._new, set()


class ClickHouseExporter:
    """Durable, deduplicating span writer into ``otel_traces`` (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        if config.insert_max_spans < 1:
            raise ValueError("insert_max_spans must be at least 1")
        if config.spool.max_size_mib <= 0:
            raise ValueError("spool.max_size_mib must be positive")
        self.config = config
        self._client: Client | None = None
        self._engine_client: Client | None = None  # the engine path's inserts (ingest settings)
        self._spool: Spool | None = None
        self._recent = _RecentIds(config.dedup_window)
        self._lock = threading.Lock()  # export(): dedup check, spool append, dedup update
        self._wake = threading.Event()  # spans were spooled
        self._stopping = threading.Event()  # shutdown began: cut pauses short
        self._closing = False
        self._deadline = 0.0
        self._thread: threading.Thread | None = None
        # Recently appended records (columns, or engine records), so the inserter need not
        # read and decode them again: seq -> (payload or columns, spans).
        self._cache: dict[int, tuple[object, int]] = {}
        self._cache_spans = 0
        self.last_error: str | None = None
        """The last insert failure, cleared by the next successful insert."""

    @property
    def database(self) -> str:
        return self.config.database

    def new_client(self) -> Client:
        """A new clickhouse-connect client on the same storage, for other components."""
        return storage.connect(self.config.endpoint, database=self.config.database)

    @property
    def engine_client(self):
        """A factory of clients on the engine that reads engine-path records (the embedded
        store's), or None: with ``engine_path`` off or a ClickHouse server every span takes
        the span path."""
        if not self.config.engine_path or storage.embedded_path(self.config.endpoint) is None:
            return None
        return self._new_engine_client

    def _new_engine_client(self) -> Client:
        # The ingest statements' settings held by the session: set per statement, the
        # embedded client runs a SET and a restore for each, which costs more than the
        # statement's own planning.
        return storage.connect(self.config.endpoint, database=self.config.database, **ingest.SETTINGS)

    # --- lifecycle -------------------------------------------------------------------

    def start(self, host: Host | None = None) -> None:
        """Open storage (creating the schema if configured), open the spool, start inserting.

        Raises :class:`storage.StorageError` if ClickHouse cannot be reached, and
        :class:`~sessionlens.collector.spool.SpoolLocked` if another collector owns the spool.
        """
        # The spool first: a second collector on the same directory is turned away before
        # it touches anything.
        self._spool = Spool(self.config.spool.directory, self.config.spool.max_size_mib << 20)
        self._client = storage.connect(self.config.endpoint)
        if self.config.create_schema:
            from sessionlens.schema import migrate

            migrate.apply(
                self._client,
                migrate.SchemaOptions(
                    database=self.config.database,
                    traces_table_name=self.config.traces_table_name,
                    ttl=self.config.ttl,
                    cluster_name=self.config.cluster_name,
                    table_engine=self.config.table_engine,
                    # session status in the views follows the autosession processor's timeout
                    inactivity_timeout=host.inactivity_timeout if host is not None else None,
                ),
            )
        self._remember_spooled_ids()
        self._thread = threading.Thread(target=self._run, name="clickhouse-inserter", daemon=True)
        self._thread.start()

    def _remember_spooled_ids(self) -> None:
        """Spans spooled by a previous process may be retried by clients that lost the ack."""
        newest: list[int] = []
        total = 0
        for seq, items in reversed(self._spool.pending()):
            if total >= self.config.dedup_window:
                break
            newest.append(seq)
            total += items
        trace_col, span_col = COLUMNS.index("TraceId"), COLUMNS.index("SpanId")
        resource_col, project = COLUMNS.index("ResourceAttributes"), conventions.PROJECT
        for seq in reversed(newest):
            cols = _columns(self._spool.read(seq))
            self._recent.update({
                (r.get(project, ""), bytes.fromhex(t + s))
                for t, s, r in zip(cols[trace_col], cols[span_col], cols[resource_col])
            })

    def spooled(self, columns: Sequence[str]) -> Iterator[tuple]:
        """The named ``COLUMNS`` of every span still in the spool (acknowledged, not yet in
        ClickHouse), oldest first; safe while the inserter runs (see ``Spool.scan``)."""
        if self._spool is None:
            return
        indexes = [COLUMNS.index(name) for name in columns]
        for payload in self._spool.scan():
            cols = _columns(payload)
            yield from zip(*(cols[i] for i in indexes))

    def shutdown(self) -> None:
        """Stop accepting spans; drain the spool for up to ``timeout``; keep the rest on disk."""
        self._closing = True
        self._deadline = time.monotonic() + self.config.timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.config.timeout + 1.0)
            if self._thread.is_alive():
                log.warning("the ClickHouse insert still runs at shutdown; its spans stay in the spool")
        if self._spool is not None:
            pending = self._spool.pending()
            if pending:
                log.warning(
                    "%d spans stay in the spool %s until the next start",
                    sum(items for _, items in pending), self._spool.directory,
                )
            if self._thread is None or not self._thread.is_alive():
                self._spool.close()
        if self._client is not None and (self._thread is None or not self._thread.is_alive()):
            self._client.close()
        if self._engine_client is not None and (self._thread is None or not self._thread.is_alive()):
            self._engine_client.close()

    # --- the hot path ----------------------------------------------------------------

    def export(self, spans: list[Span]) -> None:
        """Return once ``spans`` are durable; raise :class:`ExportUnavailable` if they cannot be now."""
        self._check_running()
        with self._lock:
            fresh: list[Span] = []
            keys: set[tuple[str, bytes]] = set()
            recent = self._recent
            project = conventions.PROJECT
            for span in spans:
                key = (span.resource.get(project, ""), span.trace_id + span.span_id)
                if key in recent or key in keys:
                    continue
                keys.add(key)
                fresh.append(span)
            if not fresh:
                return
            cols = to_columns(fresh)
            seq = self._append(marshal.dumps(cols), len(fresh))
            recent.update(keys)
            self._remember(seq, cols, len(fresh))
        self._wake.set()

    def export_columns(self, spans: SpanColumns) -> None:
        """The engine path's ``export``: spans already stored are marked ``drop``, the
        requests spooled as records with their decisions."""
        self._check_running()
        with self._lock:
            keys: set[tuple[str, bytes]] = set()
            recent = self._recent
            traces, span_ids, drop = spans.columns["trace_id"], spans.columns["span_id"], spans.drop
            for i in range(len(spans)):
                key = (spans.projects[i], bytes.fromhex(traces[i] + span_ids[i]))
                if key in recent or key in keys:
                    drop[i] = True
                    continue
                keys.add(key)
            if not keys:
                return
            payload = ENGINE_RECORDS + b"".join(data for data, _ in spans.encoded())
            seq = self._append(payload, len(keys))
            recent.update(keys)
            self._remember(seq, payload, len(keys))
        self._wake.set()

    def _check_running(self) -> None:
        if self._closing or self._spool is None:
            raise ExportUnavailable("the ClickHouse exporter is not running", retry_after=1.0)

    def _remember(self, seq: int, part: object, items: int) -> None:
        if self._cache_spans < self.config.insert_max_spans:
            self._cache[seq] = (part, items)
            self._cache_spans += items

    def _append(self, payload: bytes, items: int) -> int:
        """Spool ``payload`` durably (its sequence number), or raise ExportUnavailable."""
        try:
            return self._spool.append(payload, items)
        except SpoolFull as exc:
            raise ExportUnavailable(
                f"{exc}; ClickHouse is not keeping up or unreachable"
                + (f" (last error: {self.last_error})" if self.last_error else ""),
                retry_after=self.config.retry_max_interval,
            ) from exc
        except OSError as exc:
            if disk_full(exc):
                raise ExportUnavailable(
                    f"the spool's filesystem is full ({self._spool.directory}: {exc.strerror}); "
                    "free space there or lower spool.max_size_mib below the free space; "
                    "spans are taken again as soon as there is room",
                    retry_after=self.config.retry_max_interval,
                ) from exc
            raise ExportUnavailable(f"cannot write the spool: {exc}", retry_after=1.0) from exc

    # --- the background inserter ------------------------------------------------------

    def _run(self) -> None:
        spool = self._spool
        failures = 0
        last_insert = 0.0
        while True:
            now = time.monotonic()
            if self._closing and now >= self._deadline:
                return
            batch = spool.inflight  # a range begun before a failure or a crash: repeat it exactly
            begin = batch is None
            if begin:
                pending = spool.pending(self.config.insert_max_spans)
                if not pending:
                    if self._closing:
                        return
                    # Idle: a position the spool could not record is retried meanwhile.
                    self._wake.wait(None if spool.flush() else self.config.retry_max_interval)
                    self._wake.clear()
                    continue
                wait = last_insert + self.config.insert_interval - now
                full = sum(items for _, items in pending) >= self.config.insert_max_spans
                if wait > 0 and not full and not self._closing:
                    self._stopping.wait(wait)  # gather a bigger insert: fewer, larger parts
                    continue
                batch = (pending[0][0], pending[-1][0])
            last_insert = time.monotonic()
            try:
                if begin:
                    spool.begin(*batch)  # raises when it cannot be recorded: nothing inserted yet
                self._insert(*batch)
            except Exception as exc:  # any failure: keep the records, retry the same block
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                pause = min(self.config.retry_max_interval, 0.05 * 2**failures)
                if failures == 1 or failures % 20 == 0:
                    log.warning("ClickHouse insert failed (%d in a row), retrying: %s", failures, self.last_error)
                self._reset_client()
                self._pause(pause)
                continue
            spool.commit(batch[1])  # never raises: what it cannot record now is retried
            if failures:
                log.info("ClickHouse inserts succeed again after %d failures", failures)
            failures, self.last_error = 0, None

    def _pause(self, seconds: float) -> None:
        """Sleep between retries; cut short when shutdown begins, bounded by its deadline after."""
        if self._closing:
            time.sleep(min(seconds, max(0.0, self._deadline - time.monotonic())))
        else:
            self._stopping.wait(seconds)

    def _insert(self, first: int, last: int) -> None:
        cols: tuple[list, ...] | None = None
        engine_records: list[bytes] = []
        for seq in range(first, last + 1):
            with self._lock:
                cached = self._cache.pop(seq, None)
                if cached is not None:
                    self._cache_spans -= cached[1]
            part = cached[0] if cached is not None else self._spool.read(seq)
            if isinstance(part, bytes) and part[:1] == ENGINE_RECORDS:
                engine_records.append(part)
                continue
            if isinstance(part, bytes):
                part = marshal.loads(part)
            if cols is None:
                cols = part
            else:
                for column, more in zip(cols, part):
                    column.extend(more)
        if self._client is None:
            self._client = storage.connect(self.config.endpoint)
        token = f"{self._spool.id}:{first}-{last}"
        if cols is not None:
            self._client.insert(
                table=self.config.traces_table_name,
                database=self.config.database,
                data=cols,
                column_names=COLUMNS,
                column_oriented=True,
                settings={**_INSERT_SETTINGS, "insert_deduplication_token": token},
            )
        if engine_records:
            self._insert_records(engine_records, token + ":engine")

    def _insert_records(self, payloads: list[bytes], token: str) -> None:
        """The engine renders and inserts the rows of engine-path records."""
        fd, path = tempfile.mkstemp(prefix="sessionlens-insert-", suffix=".records", dir=SCRATCH_DIR)
        try:
            with os.fdopen(fd, "wb") as file:
                for payload in payloads:
                    file.write(memoryview(payload)[1:])
            table = f"{ident(self.config.database)}.{ident(self.config.traces_table_name)}"
            names = ", ".join(f"`{name}`" for name in COLUMNS)
            if self._engine_client is None:
                self._engine_client = self._new_engine_client()
                for key, value in _INSERT_SETTINGS.items():
                    self._engine_client.set_client_setting(key, value)
            self._engine_client.command(
                f"INSERT INTO {table} ({names}) {ingest.select_rows(path)}",
                settings={"insert_deduplication_token": token},
            )
        finally:
            os.unlink(path)

    def _reset_client(self) -> None:
        """A server connection may be broken after a failure: reconnect on the next attempt."""
        if storage.embedded_path(self.config.endpoint) is None and self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None


def _columns(payload: bytes) -> tuple[list, ...]:
    """The ``COLUMNS`` of a spool payload of either kind."""
    if payload[:1] != ENGINE_RECORDS:
        return marshal.loads(payload)
    spans = [span for data in records.split(payload[1:]) for span in records.spans(data)]
    return to_columns(spans)
