"""The decode stage: OTLP request bytes → the engine path's columns, or the span path.

It runs once per batch, right after ``batch``: the batch's requests go to the ClickHouse
engine as one file of spool records, and one query (``schema/ingest.py``'s
``extract_query``) returns, per span, the few columns the processors need. Requests the
engine path does not reproduce exactly (``slow``) and requests the engine could not read
are decoded in Python instead (``otlp.decode``: the span path, whose rules for invalid
spans, malformed bodies and odd values are the reference), so both paths store the same
rows. Per span, Python then touches a handful of values, never an object per attribute.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sessionlens import conventions as c
from sessionlens.collector import otlp, records
from sessionlens.collector.pdata import Batch, Request
from sessionlens.schema import ingest

log = logging.getLogger(__name__)

UNLIMITED = 2**62
DEFAULT_PARAMETERS: dict[str, Any] = {
    "max_attributes": UNLIMITED, "max_name": UNLIMITED, "max_value": UNLIMITED,
    "max_events": UNLIMITED, "max_links": UNLIMITED,
    "aliases": [], "server_aliases": [], "prefixes": [], "counts": [],
}
"""What makes a span slow when no processor adds its rules (``normalize`` does)."""

SCRATCH_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
"""Where the engine's input files go: memory when the system has a tmpfs for it."""


class SpanColumns:
    """The engine path's spans of one batch: the extract's columns and the decisions.

    ``requests[r]`` is record ``r``; per span (in request order, records one after the
    other) ``columns[name][i]``, ``record[i]`` and the processors' decisions:
    ``session_id``, ``session_source``, ``cost`` (empty: none) and ``drop``.
    """

    __slots__ = ("requests", "columns", "record", "projects", "session_id", "session_source", "cost", "drop")

    def __init__(self, requests: list[Request], columns: dict[str, list]) -> None:
        self.requests = requests
        self.columns = columns
        self.record: list[int] = columns["record"]
        tokens = [request.project for request in requests]
        self.projects: list[str] = [  # the token's, else the resource's
            tokens[r] or own for r, own in zip(self.record, columns["resource." + c.PROJECT])
        ]
        n = len(self.record)
        self.session_id = [""] * n
        self.session_source = [""] * n
        self.cost = [""] * n
        self.drop = [False] * n

    def __len__(self) -> int:
        return len(self.record)

    def encoded(self) -> list[tuple[bytes, int]]:
        """Each request as a spool record with its decisions, and its spans kept."""
        cols = self.columns
        resources, scopes = cols["resource"], cols["scope"]
        session_ids, sources, costs, drops = self.session_id, self.session_source, self.cost, self.drop
        decision, none = records.decision, records.NO_DECISION
        out: list[tuple[bytes, int]] = []
        i, n = 0, len(self)
        while i < n:
            r = self.record[i]
            nested: list[list[list[bytes]]] = []
            kept = 0
            while i < n and self.record[i] == r:
                if resources[i] > len(nested):
                    nested.append([])
                scope_list = nested[-1]
                if scopes[i] > len(scope_list):
                    scope_list.append([])
                dropped = drops[i]
                kept += not dropped
                if session_ids[i] or sources[i] or costs[i] or dropped:
                    scope_list[-1].append(decision(session_ids[i], sources[i], costs[i], dropped))
                else:
                    scope_list[-1].append(none)
                i += 1
            request = self.requests[r]
            out.append((records.record(request.body, request.project, nested), kept))
        return out

    def session_keys(self) -> set[tuple[str, str]]:
        """(project, session id or trace id) of the kept spans, as the table derives them."""
        sids, traces = self.columns[c.SESSION_ID], self.columns["trace_id"]
        return {
            (project, own or sid or trace)
            for project, own, sid, trace, dropped in zip(self.projects, self.session_id, sids, traces, self.drop)
            if not dropped
        }

    def to_spans(self) -> list:
        """The spans as the span path has them now (decisions applied, dropped ones out)."""
        spans = []
        for data, _ in self.encoded():
            spans.extend(records.spans(next(records.split(data))))
        return spans


class Decoder:
    """The decode stage in front of the processors (see the module docstring)."""

    def __init__(self, connect: Callable[[], Any], parameters: dict[str, Any]) -> None:
        self._connect = connect
        self._client = None
        self._parameters = {**DEFAULT_PARAMETERS, **parameters}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def decode(self, batch: Batch) -> Batch:
        """``batch`` with its requests decoded: the engine path's in ``columns``, the
        others' spans in ``spans`` (their outcomes in ``Request.decoded``/``malformed``)."""
        requests, batch.requests = batch.requests, []
        if not requests:
            return batch
        slow: list[Request] = []
        try:
            fast, columns = self._extract(requests, slow)
        except Exception as exc:  # e.g. a body the engine cannot read
            log.debug("engine decode failed: %s", exc)
            fast, columns, slow = self._extract_readable(requests)
        if fast:
            batch.columns = SpanColumns(fast, columns)
        for request in slow:
            batch.spans.extend(decode_in_python(request))
        return batch

    def _extract_readable(self, requests: list[Request]) -> tuple[list[Request], dict | None, list[Request]]:
        """The extract again without the requests protobuf cannot parse strictly (a malformed
        body, invalid UTF-8): those go to Python, which names what is wrong, so one bad
        request does not send its whole batch down the span path. If the engine still
        fails, every request takes the span path."""
        readable, slow = [], []
        for request in requests:
            try:
                ExportTraceServiceRequest.FromString(request.body)
            except DecodeError:
                slow.append(request)
            else:
                readable.append(request)
        if not readable or not slow:  # nothing to retry, or nothing that explains the failure
            return [], None, requests
        try:
            fast, columns = self._extract(readable, slow)
        except Exception as exc:
            log.debug("engine decode failed again, decoding in Python: %s", exc)
            return [], None, requests
        return fast, columns, slow

    def _extract(self, requests: list[Request], slow: list[Request]) -> tuple[list[Request], dict]:
        fd, path = tempfile.mkstemp(prefix="sessionlens-decode-", suffix=".records", dir=SCRATCH_DIR)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(b"".join(records.record(r.body, r.project) for r in requests))
            if self._client is None:
                self._client = self._connect()
            result = self._client.query(  # the client holds ingest.SETTINGS
                ingest.extract_query(path), parameters=self._parameters, column_oriented=True
            )
        finally:
            os.unlink(path)
        names = result.column_names
        data = dict(zip(names, result.result_columns)) if result.result_columns else {n: [] for n in names}
        record_of, is_slow = data["record"], data["slow"]
        slow_records = {r for r, flag in zip(record_of, is_slow) if flag}
        present = set(record_of)
        fast: list[Request] = []
        renumber: dict[int, int] = {}
        for r, request in enumerate(requests):
            if r in slow_records:
                slow.append(request)
            elif r in present:
                renumber[r] = len(fast)
                fast.append(request)
            # else: a request without spans; nothing to store
        if slow_records:
            keep = [i for i, r in enumerate(record_of) if r not in slow_records]
            data = {name: [column[i] for i in keep] for name, column in data.items()}
        data["record"] = [renumber[r] for r in data["record"]]
        return fast, data


def decode_in_python(request: Request) -> list:
    """The span path for one request: its valid spans (``request.decoded`` holds the
    outcome), or none when the body is malformed (``request.malformed``)."""
    try:
        parsed = otlp.parse_protobuf(request.body)
    except otlp.MalformedRequest as exc:
        request.malformed = str(exc)
        return []
    request.decoded = otlp.decode(parsed, {c.PROJECT: request.project} if request.project else None)
    return request.decoded.spans
