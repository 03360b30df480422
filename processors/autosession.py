"""The ``autosession`` processor: every span gets a ``session.id`` (docs/sessions.md).

All state is per project (the ``sessionlens.project`` resource attribute): spans of two
projects never share a session, not even when they share a trace id.

1. A span with ``session.id`` keeps it: source ``explicit`` (a valid
   ``sessionlens.session.source`` it already carries, e.g. from an upstream sessionlens
   collector, is kept).
2. A span without one inherits its trace's session when a span of that trace (in the same
   project) was already assigned: in an earlier batch (a bounded LRU of (project, trace id)
   → session), else an explicit span of the same batch (the earliest-starting one). One
   exception, so a request is not kept with a stranger because its first spans were
   exported before the app knew who sent it: spans of a request-serving process (rule 3)
   whose key outranks the one the trace was assigned by (a ``user.id`` the app recorded
   mid-request, after spans keyed by fingerprint had gone out) move the trace, from them
   on, to that key's session; spans already assigned keep theirs.
3. Otherwise the trace's spans of this batch form one unit with a **session key** (within
   its project), the first that exists: ``user.id`` (span, then resource) → ``auto:user``;
   ``client.address`` (+ ``user_agent.original`` when present; span, then resource) →
   ``auto:fingerprint``; ``service.name`` + ``service.instance.id``, else ``host.name`` +
   ``process.pid`` (resource) → ``auto:instance``; else the trace id → ``auto:trace``.
   **Never merge strangers**: a span of a process that serves requests (marked
   ``sessionlens.process.serves_requests`` by the sessionlens instrumentation, or itself a
   SERVER span) is never keyed by instance — whoever sent its request is unknown, so it
   is keyed by its trace; ``auto:instance`` is for batch jobs, CLIs and workers only.
   When the spans of the unit disagree, the highest-ranked key wins (ties: the smallest
   value), so the choice does not depend on span order.
4. Per key, a sorted list of activity windows ``[start, end]``. A unit joins a window it
   touches with a gap of at most ``inactivity_timeout`` (``start <= end_w + timeout`` and
   ``start_w <= end + timeout``) and that opened at most ``max_duration`` before the
   unit's start (steady traffic still yields sessions of bounded length); else it opens a
   new window. A window that opens because ``max_duration`` closed the one it would have
   joined starts with that one's latest end: inactivity counts from the key's latest
   activity, whichever session holds it. Several such windows (a late unit bridging two sessions): the latest
   window starting at or before the unit, else the earliest after it. Windows are never
   merged, since spans already stored keep their ids; a bridging unit joins the earlier
   session and extends it. Units of a batch are placed in start order, so disorder
   within a batch does not matter. A trace's later spans extend its session's window
   (rule 2) without a bound: a trace is never cut.
5. The session id is 32 hex digits: a 64-bit hash of the key, then a 64-bit hash of (key
   hash, start of the window when opened). The same stream replayed gives the same ids; no
   raw user, address or user agent appears in them (set ``key_secret`` to make the key
   hash a keyed one, so a guessable key such as an IPv4 address cannot be recovered by
   trying them all). A late unit that moves a window's start earlier keeps the id.
6. Memory is bounded (``max_keys`` keys LRU, ``max_windows_per_key``, ``max_traces``).
   ``start`` rebuilds the windows from the ``session_list`` view (a session id names its
   key) for sessions active within ``inactivity_timeout + rebuild_margin`` of now, and
   trace assignments from ``otel_traces`` (project, TraceId, SessionId, SessionSource)
   for the last ``inactivity_timeout``, then adds what the spans still in the exporter's
   spool say (acknowledged before the restart, not yet in ClickHouse): a conversation
   spanning a restart keeps its session.

Equal to a sort-and-sweep over each key's traces (the reference) when traces arrive whole
within a batch and batches in start order, spans shuffled within a batch or not; under
wider disorder every session is still contained in one reference session (it may be
split, never merged across a gap), and the grouping equals the reference whenever each
trace arrives within the timeout of one already seen of its reference session.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from bisect import insort
from collections import OrderedDict
from dataclasses import dataclass

from sessionlens import conventions as c
from sessionlens.durations import Duration
from sessionlens.collector.component import Capabilities, Consumer, Host, Processor, Settings
from sessionlens.collector.pdata import Span
from sessionlens.collector.processorhelper import FunctionProcessor
from sessionlens.schema.names import SESSION_LIST

TYPE = "autosession"

log = logging.getLogger(__name__)

_SOURCES = frozenset(c.SESSION_SOURCES)
_RANK = {source: rank for rank, source in enumerate(c.SESSION_SOURCES)}
_NS = 1_000_000_000
_SERVER = 2  # OTLP SpanKind SERVER


@dataclass
class Config:
    inactivity_timeout: Duration = Duration(1800.0)
    """A span starting more than this after a key's latest activity opens a new session."""
    max_duration: Duration = Duration(86400.0)
    """A span starting more than this after its key's session opened opens a new session,
    however steady the activity (a running trace still keeps its session)."""
    max_keys: int = 100_000
    """Session keys remembered (least recently active forgotten first)."""
    max_windows_per_key: int = 16
    """Activity windows remembered per key (the earliest forgotten first)."""
    max_traces: int = 200_000
    """Trace → session assignments remembered (least recently seen forgotten first)."""
    rebuild_margin: Duration = Duration(3600.0)
    """``start`` reloads sessions active within ``inactivity_timeout`` plus this."""
    traces_table_name: str = "otel_traces"
    """The spans table ``start`` reads trace assignments from (the exporter's)."""
    key_secret: str = ""
    """Key for hashing session keys (ids stay deterministic for one secret); keep it
    stable, or sessions split at the change. Empty: plain hash."""

    def __post_init__(self) -> None:
        for name in ("max_keys", "max_windows_per_key", "max_traces"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.inactivity_timeout <= 0:
            raise ValueError(f"inactivity_timeout must be positive, got {self.inactivity_timeout}s")
        if self.max_duration <= 0:
            raise ValueError(f"max_duration must be positive, got {self.max_duration}s")
        if self.rebuild_margin < 0:
            raise ValueError(f"rebuild_margin cannot be negative, got {self.rebuild_margin}s")


def key_hash(source: str, raw: str, secret: bytes = b"") -> str:
    """A session key as 16 hex digits: a hash, so no raw IP or user agent leaves here."""
    data = f"{source}\x1f{raw}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8, key=secret).hexdigest()


def session_id(key: str, start_unix_nano: int) -> str:
    """The id of the auto-session of hashed ``key`` that opened at ``start_unix_nano``."""
    data = f"{key}\x1f{start_unix_nano}".encode()
    return key + hashlib.blake2b(data, digest_size=8).hexdigest()


def key_of(session: str) -> str:
    """The key hash an auto-session id starts with."""
    return session[:16]


def serves_requests(span: Span) -> bool:
    """Whether the span comes from a process that serves requests (never an instance key)."""
    return span.kind == _SERVER or span.attributes.get(c.SERVES_REQUESTS) == "true"


def span_key(span: Span) -> tuple[int, str]:
    """(rank of the source in ``SESSION_SOURCES``, raw key) of a span without a session."""
    a, r = span.attributes, span.resource
    project = r.get(c.PROJECT, "") + "\x1f"  # one project's users are not another's
    user = a.get(c.USER_ID) or r.get(c.USER_ID)
    if user:
        return 1, project + user
    address = a.get(c.CLIENT_ADDRESS) or r.get(c.CLIENT_ADDRESS)
    if address:
        return 2, project + address + "\x1f" + (a.get(c.USER_AGENT) or r.get(c.USER_AGENT) or "")
    if serves_requests(span):  # a stranger's request: not the instance's session
        return 4, project + span.trace_id.hex()
    service, instance = r.get(c.SERVICE_NAME), r.get(c.SERVICE_INSTANCE_ID)
    if service and instance:
        return 3, project + "service\x1f" + service + "\x1f" + instance
    host, pid = r.get(c.HOST_NAME), r.get(c.PROCESS_PID)
    if host and pid:
        return 3, project + "host\x1f" + host + "\x1f" + pid
    return 4, project + span.trace_id.hex()


class _KeyView:
    """What ``span_key`` and ``serves_requests`` read of a span, for one on the engine
    path (columns, not a ``Span``): the span path's rules serve both."""

    __slots__ = ("attributes", "resource", "kind", "trace_id")

    def __init__(self, spans, i: int) -> None:
        cols = spans.columns
        self.attributes = {
            c.USER_ID: cols[c.USER_ID][i], c.CLIENT_ADDRESS: cols[c.CLIENT_ADDRESS][i],
            c.USER_AGENT: cols[c.USER_AGENT][i], c.SERVES_REQUESTS: "true" if cols["serves"][i] else "",
        }
        self.resource = {
            c.PROJECT: spans.projects[i],
            **{key: cols["resource." + key][i] for key in (
                c.USER_ID, c.CLIENT_ADDRESS, c.USER_AGENT, c.SERVICE_NAME, c.SERVICE_INSTANCE_ID, c.HOST_NAME)},
            c.PROCESS_PID: cols["pid"][i],
        }
        self.kind = cols["kind"][i]
        self.trace_id = bytes.fromhex(cols["trace_id"][i])


def _key_of_spans(pending: list[Span]) -> tuple[tuple[int, str], bool]:
    return min(map(span_key, pending)), any(map(serves_requests, pending))


class _Unit:
    """The spans of one trace of one project in one batch."""

    __slots__ = ("trace", "start", "end", "pending", "explicit", "key", "serving", "assigned")

    def __init__(self, trace: tuple[str, bytes], start: int, end: int) -> None:
        self.trace = trace  # (project, trace id)
        self.start = start
        self.end = end
        self.pending: list = []  # spans (or span positions, on the engine path) without a session.id
        self.explicit: tuple[int, str] | None = None  # (start, id) of the earliest explicit
        self.key: tuple[str, str] | None = None  # (source, key hash) when it needs one
        self.serving = False  # a pending span is from a request-serving process
        self.assigned: tuple[str, str] = ("", "")  # session id, source


class AutoSessionProcessor:
    """Assigns sessions; state is shared by all threads calling ``process``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._timeout = int(config.inactivity_timeout * _NS)
        self._max_duration = int(config.max_duration * _NS)
        self._secret = config.key_secret.encode()
        self._lock = threading.Lock()
        # key hash -> windows [start, end, session id], sorted by start
        self._windows: OrderedDict[str, list[list]] = OrderedDict()
        # (project, trace id) -> (session id, source)
        self._traces: OrderedDict[tuple[str, bytes], tuple[str, str]] = OrderedDict()

    # --- pipeline ---------------------------------------------------------------------

    def process(self, spans: list[Span]) -> list[Span]:
        units: dict[tuple[str, bytes], _Unit] = {}
        for span in spans:
            trace = (span.resource.get(c.PROJECT, ""), span.trace_id)
            unit = units.get(trace)
            if unit is None:
                unit = units[trace] = _Unit(trace, span.start_time_unix_nano, span.end_time_unix_nano)
            else:
                unit.start = min(unit.start, span.start_time_unix_nano)
                unit.end = max(unit.end, span.end_time_unix_nano)
            a = span.attributes
            sid = a.get(c.SESSION_ID)
            if sid:
                if a.get(c.SESSION_SOURCE) not in _SOURCES:
                    a[c.SESSION_SOURCE] = c.SOURCE_EXPLICIT
                candidate = (span.start_time_unix_nano, sid)
                if unit.explicit is None or candidate < unit.explicit:
                    unit.explicit = candidate
            else:
                unit.pending.append(span)

        for unit in self._assign_units(units, _key_of_spans):
            sid, source = unit.assigned
            for span in unit.pending:
                a = span.attributes
                a[c.SESSION_ID] = sid
                a[c.SESSION_SOURCE] = source
        return spans

    def process_columns(self, spans) -> None:
        """The engine path: the same rules over ``SpanColumns`` (decisions, not attributes)."""
        cols = spans.columns
        sids, sources, traces = cols[c.SESSION_ID], cols[c.SESSION_SOURCE], cols["trace_id"]
        starts, ends = cols["start"], cols["end"]
        units: dict[tuple[str, str], _Unit] = {}
        for i in range(len(spans)):
            trace = (spans.projects[i], traces[i])
            unit = units.get(trace)
            start, end = starts[i], ends[i]
            if unit is None:
                unit = units[trace] = _Unit(trace, start, end)
            else:
                if start < unit.start:
                    unit.start = start
                if end > unit.end:
                    unit.end = end
            sid = sids[i]
            if sid:
                if sources[i] not in _SOURCES:
                    spans.session_source[i] = c.SOURCE_EXPLICIT
                candidate = (start, sid)
                if unit.explicit is None or candidate < unit.explicit:
                    unit.explicit = candidate
            else:
                unit.pending.append(i)
        for unit in units.values():  # keyed as the span path keys them (bytes) from here on
            unit.trace = (unit.trace[0], bytes.fromhex(unit.trace[1]))

        def key_of_positions(pending: list[int]) -> tuple[tuple[int, str], bool]:
            return _key_of_spans([_KeyView(spans, i) for i in pending])

        for unit in self._assign_units(units, key_of_positions):
            sid, source = unit.assigned
            for i in unit.pending:
                spans.session_id[i] = sid
                spans.session_source[i] = source

    def _assign_units(self, units: dict, key_of) -> list[_Unit]:
        """Assign each unit a session (rules 2–5), in start order; ``key_of(pending)`` gives
        the (rank, raw key) and the serving flag of a unit's spans without a session."""
        ordered = sorted(units.values(), key=lambda u: (u.start, u.trace))
        for unit in ordered:  # hashing outside the lock
            if unit.pending and unit.explicit is None:
                (rank, raw), unit.serving = key_of(unit.pending)
                source = c.SESSION_SOURCES[rank]
                unit.key = (source, key_hash(source, raw, self._secret))
        with self._lock:
            for unit in ordered:
                unit.assigned = self._assign(unit)
            while len(self._traces) > self.config.max_traces:
                self._traces.popitem(last=False)
        return ordered

    def start(self, host: Host) -> None:
        """Rebuild windows and trace assignments from stored and spooled spans."""
        # The spool first: a record the inserter commits meanwhile is in ClickHouse by the
        # time of the queries below, so no span is missed by both.
        spooled = self._read_spool(host)
        client = None
        try:
            client = host.storage_client()
            if client is not None:
                self._rebuild(client, host.database)
        except Exception as exc:  # storage down or no table yet: start empty, don't block
            log.warning(
                "autosession: no state rebuilt from ClickHouse (%s); "
                "sessions active before the restart may be split",
                exc,
            )
        finally:
            if client is not None:
                client.close()
        self._add_spooled(*spooled)

    def _read_spool(self, host: Host) -> tuple[dict, OrderedDict]:
        """Auto-session windows (id → [start, end]) and trace assignments of the spooled spans."""
        windows: dict[str, list[int]] = {}
        traces: OrderedDict[tuple[str, bytes], tuple[str, str]] = OrderedDict()
        now = time.time_ns()
        window_cutoff = now - int((self.config.inactivity_timeout + self.config.rebuild_margin) * _NS)
        trace_cutoff = now - self._timeout
        columns = ("Timestamp", "Duration", "TraceId", "ResourceAttributes", "SpanAttributes")
        try:
            for start, duration, trace_hex, resource, attrs in host.spooled(columns):
                sid = attrs.get(c.SESSION_ID)
                if not sid:
                    continue
                source = attrs.get(c.SESSION_SOURCE)
                source = source if source in _SOURCES else c.SOURCE_EXPLICIT
                end = start + duration
                if source != c.SOURCE_EXPLICIT and end >= window_cutoff:
                    window = windows.setdefault(sid, [start, end])
                    window[0], window[1] = min(window[0], start), max(window[1], end)
                if start >= trace_cutoff:
                    trace = (resource.get(c.PROJECT, ""), bytes.fromhex(trace_hex))
                    if trace not in traces:  # a trace's first span names its session
                        traces[trace] = (sid, source)
                        if len(traces) > self.config.max_traces:
                            traces.popitem(last=False)
        except Exception as exc:  # an unreadable spool must not stop the start
            log.warning("autosession: cannot read the spool (%s); its sessions may be split", exc)
        return windows, traces

    def _add_spooled(self, windows: dict[str, list[int]], traces: OrderedDict) -> None:
        with self._lock:
            for sid, (start, end) in windows.items():
                key_windows = self._key_windows(key_of(sid))
                if any(w[2] == sid for w in key_windows):
                    self._extend(key_of(sid), sid, start, end)
                else:
                    insort(key_windows, [start, end, sid])
                    del key_windows[: -self.config.max_windows_per_key]
            for trace, assigned in traces.items():
                self._traces.setdefault(trace, assigned)  # a stored earlier span names it first
            while len(self._traces) > self.config.max_traces:
                self._traces.popitem(last=False)
        if windows or traces:
            log.info("autosession: %d sessions and %d traces from the spool", len(windows), len(traces))

    # --- state (called with the lock held) --------------------------------------------

    def _assign(self, unit: _Unit) -> tuple[str, str]:
        traces = self._traces
        prior = traces.get(unit.trace)
        if prior is not None:
            traces.move_to_end(unit.trace)
            sid, source = prior
            if not self._outranks(unit, source):
                if source != c.SOURCE_EXPLICIT:
                    self._extend(key_of(sid), sid, unit.start, unit.end)
                return prior
        if unit.explicit is not None:
            assigned = (unit.explicit[1], c.SOURCE_EXPLICIT)
        else:
            assert unit.key is not None  # a unit has explicit or pending spans
            source, key_id = unit.key
            assigned = (self._place(key_id, unit.start, unit.end), source)
        traces[unit.trace] = assigned
        return assigned

    @staticmethod
    def _outranks(unit: _Unit, source: str) -> bool:
        """Whether a request-serving unit's key beats the auto ``source`` of its trace (rule 2)."""
        return (
            unit.serving
            and unit.key is not None
            and source != c.SOURCE_EXPLICIT
            and _RANK[unit.key[0]] < _RANK.get(source, 0)
        )

    def _key_windows(self, key_id: str) -> list[list]:
        windows = self._windows.get(key_id)
        if windows is None:
            windows = self._windows[key_id] = []
            if len(self._windows) > self.config.max_keys:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key_id)
        return windows

    def _place(self, key_id: str, start: int, end: int) -> str:
        windows = self._key_windows(key_id)
        timeout, longest = self._timeout, self._max_duration
        before = after = None
        active_until = end
        for w in windows:  # few per key: a scan beats an index
            if start <= w[1] + timeout and w[0] <= end + timeout:
                if start - w[0] > longest:
                    # closed by max_duration, not by inactivity: the key's activity goes on
                    # in the new session, so inactivity still counts from its latest end
                    active_until = max(active_until, w[1])
                elif w[0] <= start:
                    before = w  # sorted by start: the last one wins
                elif after is None:
                    after = w
        chosen = before or after
        if chosen is None:
            sid = session_id(key_id, start)
            insort(windows, [start, active_until, sid])
            if len(windows) > self.config.max_windows_per_key:
                del windows[0]
            return sid
        if start < chosen[0]:
            chosen[0] = start
            windows.sort()  # keep start order for the scan's "last before" rule
        chosen[1] = max(chosen[1], end)
        return chosen[2]

    def _extend(self, key_id: str, sid: str, start: int, end: int) -> None:
        """Later spans of a trace keep its session active."""
        windows = self._windows.get(key_id)
        for w in windows or ():
            if w[2] == sid:
                if start < w[0]:
                    w[0] = start
                    windows.sort()
                w[1] = max(w[1], end)
                return

    def _rebuild(self, client, database: str) -> None:
        params = {
            "db": database,
            "table": self.config.traces_table_name,
            "view": SESSION_LIST,
            "project": c.PROJECT,
            "auto": [src for src in c.SESSION_SOURCES if src != c.SOURCE_EXPLICIT],
            "lookback": float(self.config.inactivity_timeout + self.config.rebuild_margin),
            "trace_lookback": float(self.config.inactivity_timeout),
        }
        # session_list reads the sessions rollup, never the raw spans.
        windows = client.query(
            "SELECT session_id, toUnixTimestamp64Nano(first_seen),"
            " toUnixTimestamp64Nano(last_seen) AS e"
            " FROM {db:Identifier}.{view:Identifier}"
            " WHERE source IN {auto:Array(String)}"
            " AND last_seen >= now64(9) - toIntervalSecond({lookback:Float64})"
            " ORDER BY e DESC LIMIT {limit:UInt64}",
            parameters={**params, "limit": self.config.max_keys * self.config.max_windows_per_key},
        ).result_rows
        traces = client.query(
            "SELECT ResourceAttributes[{project:String}] AS p, TraceId,"
            " argMin((SessionId, SessionSource), Timestamp), max(Timestamp) AS last"
            " FROM {db:Identifier}.{table:Identifier}"
            " WHERE Timestamp >= now64(9) - toIntervalSecond({trace_lookback:Float64})"
            " GROUP BY p, TraceId ORDER BY last DESC LIMIT {limit:UInt64}",
            parameters={**params, "limit": self.config.max_traces},
        ).result_rows
        with self._lock:
            for sid, start, end in reversed(windows):  # least recently active first
                insort(self._key_windows(key_of(sid)), [start, end, sid])
            for window_list in self._windows.values():
                del window_list[: -self.config.max_windows_per_key]
            for project, trace_hex, (sid, source), _ in reversed(traces):
                try:
                    trace_id = bytes.fromhex(trace_hex)
                except ValueError:  # another writer's malformed row: not ours to restore
                    continue
                self._traces[(project, trace_id)] = (sid, source if source in _SOURCES else c.SOURCE_EXPLICIT)
        log.info("autosession: rebuilt %d sessions and %d traces", len(windows), len(traces))


def capabilities(config: Config) -> Capabilities:
    """Spans and the engine path's columns."""
    return Capabilities(columns=True)


def create(config: Config, settings: Settings, next_consumer: Consumer) -> Processor:
    """An autosession processor for ``config``, handing on to ``next_consumer``."""
    processor = AutoSessionProcessor(config)
    return FunctionProcessor(
        settings, next_consumer, processor.process,
        process_columns=processor.process_columns, start=processor.start,
    )
