"""The autosession processor: docs/sessions.md's rules, the inactivity boundary, bounded state,
and a property test against a reference sort-and-sweep sessionizer."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sessionlens import conventions as c
from sessionlens.collector.pdata import Span
from sessionlens.processors import autosession

MIN = 60 * 1_000_000_000
T = 30 * MIN
RESOURCE = {c.SERVICE_NAME: "app", c.SERVICE_INSTANCE_ID: "i-1"}


def make_span(trace: int, start: int, end: int | None = None, attrs=None, resource=None,
              span: int = 1, kind: int = 3) -> Span:
    return Span(
        trace_id=trace.to_bytes(16, "big"),
        span_id=span.to_bytes(8, "big"),
        parent_span_id=b"",
        name="chat",
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + MIN // 60 if end is None else end,
        attributes=dict(attrs or {}),
        resource=RESOURCE if resource is None else resource,
    )


def processor(**config) -> autosession.AutoSessionProcessor:
    return autosession.AutoSessionProcessor(autosession.Config(**config))


def sid(span: Span) -> str:
    return span.attributes[c.SESSION_ID]


# --- rules 1-3: explicit, trace inheritance, key types ---------------------------------


@pytest.mark.parametrize(
    ("attrs", "resource", "source", "secret"),
    [
        ({c.USER_ID: "alice"}, RESOURCE, c.SOURCE_AUTO_USER, "alice"),
        ({}, {c.USER_ID: "bob"}, c.SOURCE_AUTO_USER, "bob"),
        ({c.CLIENT_ADDRESS: "203.0.113.9", c.USER_AGENT: "curl/8"}, RESOURCE,
         c.SOURCE_AUTO_FINGERPRINT, "203.0.113.9"),
        ({c.USER_AGENT: "curl/8"}, {c.CLIENT_ADDRESS: "198.51.100.7"},
         c.SOURCE_AUTO_FINGERPRINT, "198.51.100.7"),
        ({}, RESOURCE, c.SOURCE_AUTO_INSTANCE, "i-1"),
        ({}, {c.HOST_NAME: "web-3", c.PROCESS_PID: "4242"}, c.SOURCE_AUTO_INSTANCE, "web-3"),
        ({}, {c.SERVICE_NAME: "app"}, c.SOURCE_AUTO_TRACE, None),  # no instance id, no host
    ],
)
def test_each_key_type_sets_its_source_and_hides_the_raw_key(attrs, resource, source, secret):
    (span,) = processor().process([make_span(7, 0, attrs=attrs, resource=resource)])
    a = span.attributes
    assert a[c.SESSION_SOURCE] == source
    assert len(a[c.SESSION_ID]) == 32 and set(a[c.SESSION_ID]) <= set("0123456789abcdef")
    if secret is not None:
        assert secret not in a[c.SESSION_ID]


def test_user_key_outranks_fingerprint_and_instance():
    spans = [
        make_span(1, 0, attrs={c.CLIENT_ADDRESS: "203.0.113.9"}),
        make_span(2, MIN, attrs={c.USER_ID: "alice", c.CLIENT_ADDRESS: "198.51.100.1"}),
        make_span(3, 2 * MIN, attrs={c.USER_ID: "alice"}, resource={}),
    ]
    out = processor().process(spans)
    assert out[0].attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_FINGERPRINT
    assert out[1].attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_USER
    assert sid(out[1]) == sid(out[2]) != sid(out[0])


def test_projects_never_share_an_auto_session():
    a, b = processor().process([
        make_span(1, 0, attrs={c.USER_ID: "alice"}, resource={c.PROJECT: "p1"}),
        make_span(2, 0, attrs={c.USER_ID: "alice"}, resource={c.PROJECT: "p2"}),
    ])
    assert sid(a) != sid(b)


def test_projects_sharing_a_trace_id_never_share_its_session():
    """Tenant isolation: team-b's span never takes team-a's session through a trace id
    they share (an id reused or forged), in one batch or across batches."""
    a_res, b_res = {**RESOURCE, c.PROJECT: "team-a"}, {**RESOURCE, c.PROJECT: "team-b"}
    p = processor()
    a_explicit, b_same_batch = p.process([
        make_span(1, 0, attrs={c.SESSION_ID: "team-a-secret"}, resource=a_res),
        make_span(1, 0, resource=b_res, span=2),
    ])
    (b_later,) = p.process([make_span(1, MIN, resource=b_res, span=3)])
    (a_later,) = p.process([make_span(1, MIN, resource=a_res, span=4)])
    assert sid(a_explicit) == sid(a_later) == "team-a-secret"
    assert sid(b_same_batch) == sid(b_later) != "team-a-secret"
    assert b_later.attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_INSTANCE

    q = processor()  # auto sessions too: team-a's user trace is not team-b's
    (a_user,) = q.process([make_span(2, 0, attrs={c.USER_ID: "alice"}, resource=a_res)])
    (b_anon,) = q.process([make_span(2, MIN, resource=b_res, span=2)])
    assert sid(b_anon) != sid(a_user)
    assert b_anon.attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_INSTANCE


def test_key_secret_changes_ids_deterministically():
    def ids(**config):
        return sid(processor(**config).process([make_span(1, 0, attrs={c.USER_ID: "u"})])[0])

    assert ids(key_secret="s1") == ids(key_secret="s1") != ids(key_secret="s2") != ids()


def test_explicit_session_wins_and_is_marked_explicit():
    (span,) = processor().process([make_span(1, 0, attrs={c.SESSION_ID: "s-1", c.USER_ID: "u"})])
    assert sid(span) == "s-1"
    assert span.attributes[c.SESSION_SOURCE] == c.SOURCE_EXPLICIT


def test_a_valid_upstream_source_is_kept_a_bogus_one_replaced():
    p = processor()
    kept, replaced = p.process([
        make_span(1, 0, attrs={c.SESSION_ID: "s", c.SESSION_SOURCE: c.SOURCE_AUTO_USER}),
        make_span(2, 0, attrs={c.SESSION_ID: "s", c.SESSION_SOURCE: "made-up"}),
    ])
    assert kept.attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_USER
    assert replaced.attributes[c.SESSION_SOURCE] == c.SOURCE_EXPLICIT


def test_spans_of_a_trace_with_an_explicit_span_inherit_it_in_the_same_batch():
    spans = [
        make_span(1, 10, attrs={c.USER_ID: "u"}, span=2),
        make_span(1, 0, attrs={c.SESSION_ID: "root-session"}, span=1),
        make_span(1, 20, span=3),
    ]
    out = processor().process(spans)
    assert {sid(s) for s in out} == {"root-session"}
    assert {s.attributes[c.SESSION_SOURCE] for s in out} == {c.SOURCE_EXPLICIT}


def test_a_trace_is_never_split_even_past_the_timeout_or_with_another_key():
    p = processor()
    (first,) = p.process([make_span(1, 0, attrs={c.USER_ID: "alice"})])
    # Hours later, the same trace's next spans carry another user: they still inherit.
    later = p.process([make_span(1, 5 * 60 * MIN, attrs={c.USER_ID: "bob"}, span=2),
                       make_span(1, 5 * 60 * MIN, span=3)])
    assert {sid(s) for s in later} == {sid(first)}
    assert {s.attributes[c.SESSION_SOURCE] for s in later} == {c.SOURCE_AUTO_USER}


def test_a_long_trace_keeps_its_session_active():
    p = processor()
    (a,) = p.process([make_span(1, 0, attrs={c.USER_ID: "u"})])
    p.process([make_span(1, 50 * MIN, end=55 * MIN, span=2)])  # same trace, 50 minutes on
    (b,) = p.process([make_span(2, 70 * MIN, attrs={c.USER_ID: "u"})])  # 15 min after it
    assert sid(b) == sid(a)


# --- rule 3 (never merge strangers) and rule 2's exception -----------------------------

SERVING = {c.SERVES_REQUESTS: "true"}


def test_spans_of_a_request_serving_process_never_share_an_instance_session():
    p = processor()
    visitors = p.process([make_span(n, n * MIN, attrs=SERVING) for n in (1, 2, 3)])
    server = p.process([make_span(4, 4 * MIN, kind=2)])  # a SERVER span serves a request
    worker = p.process([make_span(n, n * MIN) for n in (5, 6)])  # a batch job: no marker
    ids = [sid(s) for s in visitors + server]
    assert len(set(ids)) == 4, "strangers' requests were merged"
    assert {s.attributes[c.SESSION_SOURCE] for s in visitors + server} == {c.SOURCE_AUTO_TRACE}
    assert sid(worker[0]) == sid(worker[1])
    assert worker[0].attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_INSTANCE
    # a known visitor of a serving process is keyed as anywhere else
    (fp,) = p.process([make_span(7, 0, attrs={**SERVING, c.CLIENT_ADDRESS: "203.0.113.5"})])
    assert fp.attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_FINGERPRINT


def test_a_user_identified_mid_request_moves_the_rest_of_the_trace_to_the_user():
    """A request's first spans left before the app knew the user (fingerprint only); its
    LLM span carries the user: from it on the trace is the user's, so two logged-in users
    behind one address and browser never share a session."""
    p = processor()
    shared = {**SERVING, c.CLIENT_ADDRESS: "198.51.100.7", c.USER_AGENT: "Mozilla/5.0"}
    sessions = {}
    for n, user in ((1, "alice"), (2, "bob"), (3, "alice")):
        (early,) = p.process([make_span(n, n * MIN, attrs=shared, span=1)])
        llm, server = p.process([
            make_span(n, n * MIN + 1, attrs={**shared, c.USER_ID: user}, span=2),
            make_span(n, n * MIN, attrs=shared, span=3, kind=2),
        ])
        (late,) = p.process([make_span(n, n * MIN + 2, attrs=shared, span=4)])
        assert early.attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_FINGERPRINT
        assert sid(llm) == sid(server) == sid(late) != sid(early)
        assert llm.attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_USER
        sessions.setdefault(user, set()).add(sid(llm))
    assert len(sessions["alice"]) == 1 and len(sessions["bob"]) == 1
    assert sessions["alice"] != sessions["bob"]


def test_only_a_stronger_key_of_a_serving_process_moves_a_trace():
    p = processor()
    (a,) = p.process([make_span(1, 0, attrs={**SERVING, c.USER_ID: "alice"})])
    # same rank (another user), weaker (fingerprint), or not a serving process: inherit
    out = p.process([make_span(1, 1, attrs={**SERVING, c.USER_ID: "bob"}, span=2),
                     make_span(1, 2, attrs={**SERVING, c.CLIENT_ADDRESS: "192.0.2.1"}, span=3)])
    assert {sid(s) for s in out} == {sid(a)}
    (fp,) = p.process([make_span(2, 0, attrs={c.CLIENT_ADDRESS: "192.0.2.1"})])
    (user,) = p.process([make_span(2, 1, attrs={c.USER_ID: "carol"}, span=2)])
    assert sid(user) == sid(fp)
    (explicit,) = p.process([make_span(3, 0, attrs={c.SESSION_ID: "mine"})])
    (after,) = p.process([make_span(3, 1, attrs={**SERVING, c.USER_ID: "dave"}, span=2)])
    assert sid(after) == "mine"


# --- rule 4: inactivity boundary, late spans ------------------------------------------


def test_thirty_minute_boundary_exactly_at_joins_just_over_opens():
    p = processor()
    (a,) = p.process([make_span(1, 0, end=MIN, attrs={c.USER_ID: "u"})])
    (b,) = p.process([make_span(2, MIN + T, attrs={c.USER_ID: "u"})])  # exactly at
    (d,) = p.process([make_span(3, b.end_time_unix_nano + T + 1, attrs={c.USER_ID: "u"})])
    assert sid(a) == sid(b)
    assert sid(d) != sid(a)


def test_inactivity_timeout_is_configurable():
    p = processor(inactivity_timeout=60.0)
    (a,) = p.process([make_span(1, 0, end=0, attrs={c.USER_ID: "u"})])
    (b,) = p.process([make_span(2, 2 * MIN, attrs={c.USER_ID: "u"})])
    assert sid(a) != sid(b)


def test_other_keys_do_not_keep_a_session_alive():
    p = processor()
    (a,) = p.process([make_span(1, 0, end=0, attrs={c.USER_ID: "u"})])
    p.process([make_span(2, 20 * MIN, attrs={c.USER_ID: "other"})])
    (b,) = p.process([make_span(3, 40 * MIN, attrs={c.USER_ID: "u"})])
    assert sid(a) != sid(b)


def test_late_span_goes_to_the_session_covering_it_without_changing_its_id():
    p = processor()
    (a,) = p.process([make_span(1, 0, end=0, attrs={c.USER_ID: "u"})])
    (b,) = p.process([make_span(2, 120 * MIN, end=120 * MIN, attrs={c.USER_ID: "u"})])
    (late_a,) = p.process([make_span(3, 10 * MIN, attrs={c.USER_ID: "u"})])
    (early_b,) = p.process([make_span(4, 100 * MIN, attrs={c.USER_ID: "u"})])  # before b's start
    assert sid(late_a) == sid(a)
    assert sid(early_b) == sid(b) == autosession.session_id(autosession.key_of(sid(b)), 120 * MIN)


def test_a_late_span_bridging_two_sessions_joins_the_earlier_one():
    p = processor()
    (a,) = p.process([make_span(1, 0, end=0, attrs={c.USER_ID: "u"})])
    (b,) = p.process([make_span(2, 50 * MIN, end=50 * MIN, attrs={c.USER_ID: "u"})])
    (bridge,) = p.process([make_span(3, 25 * MIN, attrs={c.USER_ID: "u"})])
    (after_b,) = p.process([make_span(4, 60 * MIN, attrs={c.USER_ID: "u"})])
    assert sid(a) != sid(b)
    assert sid(bridge) == sid(a)
    assert sid(after_b) == sid(b)  # the later session goes on under its own id


def test_disorder_within_a_batch_gives_the_in_order_ids():
    spans = [make_span(i, i * 20 * MIN, attrs={c.USER_ID: "u"}) for i in range(1, 6)]
    in_order = [sid(s) for s in processor().process([make_span(i, i * 20 * MIN,
                attrs={c.USER_ID: "u"}) for i in range(1, 6)])]
    random.Random(3).shuffle(spans)
    shuffled = {s.trace_id: sid(s) for s in processor().process(spans)}
    assert [shuffled[i.to_bytes(16, "big")] for i in range(1, 6)] == in_order


# --- rule 4: max_duration ----------------------------------------------------------------


def steady(p, hours: int, every: int = 10, user: str = "u") -> list[str]:
    """A call every ``every`` minutes for ``hours``: never inactive for the timeout."""
    return [sid(p.process([make_span(n + 1, n * every * MIN, attrs={c.USER_ID: user})])[0])
            for n in range(hours * 60 // every)]


def test_steady_activity_is_cut_after_max_duration_deterministically():
    ids = steady(processor(), 50)
    sessions = list(dict.fromkeys(ids))
    assert len(sessions) == 3  # 0-24h, 24h10m-48h10m, the rest
    assert ids.index(sessions[1]) == 24 * 6 + 1  # the first call more than 24h in
    assert steady(processor(), 50) == ids  # replayed: the same ids
    assert sessions[1] == autosession.session_id(autosession.key_of(ids[0]), (24 * 60 + 10) * MIN)


def test_max_duration_is_configurable_and_a_running_trace_is_never_cut():
    p = processor(max_duration=3600.0)
    assert len(set(steady(p, 3))) == 3
    q = processor(max_duration=3600.0)
    (a,) = q.process([make_span(1, 0, attrs={c.USER_ID: "u"})])
    (b,) = q.process([make_span(1, 90 * MIN, span=2)])  # the same trace, 1.5 h on
    (d,) = q.process([make_span(2, 95 * MIN, attrs={c.USER_ID: "u"})])  # a new call
    assert sid(a) == sid(b) != sid(d)


def test_after_a_max_duration_cut_inactivity_counts_from_the_keys_latest_activity():
    # A long call still runs when max_duration closes its session: a call 22 minutes after
    # it ended belongs to the session that followed, although that session's own first call
    # ended 31 minutes before.
    p = processor(max_duration=3600.0)
    user = {c.USER_ID: "u"}
    (first,) = p.process([make_span(1, 0, 0, attrs=user)])
    (long_call,) = p.process([make_span(2, 29 * MIN, 69 * MIN, attrs=user)])
    (after_cut,) = p.process([make_span(3, 60 * MIN + 1, 60 * MIN + 1, attrs=user)])
    (later,) = p.process([make_span(4, 91 * MIN, 91 * MIN, attrs=user)])
    assert sid(first) == sid(long_call) != sid(after_cut) == sid(later)


# --- rule 6: bounded state, threads, config -------------------------------------------


def test_state_is_bounded():
    p = processor(max_keys=3, max_windows_per_key=2, max_traces=5)
    for i in range(20):
        p.process([make_span(i + 1, i * 60 * MIN, attrs={c.USER_ID: f"u{i % 4}"})])
        p.process([make_span(100 + i, i * 60 * MIN, attrs={c.USER_ID: "same"})])
    assert len(p._windows) <= 3
    assert all(len(w) <= 2 for w in p._windows.values())
    assert len(p._traces) <= 5


def test_concurrent_batches_of_one_user_share_the_session():
    p = processor()
    results: list[str] = []

    def send(base: int) -> None:
        for i in range(50):
            (s,) = p.process([make_span(base + i, 0, attrs={c.USER_ID: "u"})])
            results.append(sid(s))

    threads = [threading.Thread(target=send, args=(1000 * n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200 and len(set(results)) == 1


@pytest.mark.parametrize(
    "config",
    [{"inactivity_timeout": 0}, {"max_duration": 0}, {"max_keys": 0}, {"max_windows_per_key": 0}, {"max_traces": -1},
     {"rebuild_margin": -1}],
)
def test_bad_config_is_rejected_naming_the_field(config):
    with pytest.raises(ValueError, match=next(iter(config))):
        processor(**config)


# --- property test against a reference sessionizer ------------------------------------

KINDS = ("user", "fingerprint", "instance", "trace", "explicit")


def trace_spans(n: int, kind: str, who: int, start: int, length: int, width: int) -> list[Span]:
    """A trace of ``width`` spans; only its root carries the key attributes."""
    root_attrs = {
        "user": {c.USER_ID: f"user-{who}"},
        "fingerprint": {c.CLIENT_ADDRESS: f"10.0.0.{who}", c.USER_AGENT: "ua"},
        "explicit": {c.SESSION_ID: f"explicit-{who}"},
    }.get(kind, {})
    resource = {} if kind == "trace" else {c.SERVICE_NAME: "svc", c.SERVICE_INSTANCE_ID: str(who)}
    return [
        make_span(n, start + i * length // width, start + length, root_attrs if i == 0 else {},
                  resource, span=i + 1)
        for i in range(width)
    ]


def reference(traces: list[list[Span]], timeout: int, longest: int = 24 * 60 * MIN) -> dict[bytes, str]:
    """Sort-and-sweep per key over whole traces: the definition of rules 1-5."""
    result: dict[bytes, str] = {}
    by_key: dict[str, list[tuple[int, bytes, int]]] = {}
    for spans in traces:
        tid = spans[0].trace_id
        explicit = [s.attributes[c.SESSION_ID] for s in spans if c.SESSION_ID in s.attributes]
        if explicit:
            result[tid] = explicit[0]
            continue
        rank, raw = min(map(autosession.span_key, spans))
        key = autosession.key_hash(c.SESSION_SOURCES[rank], raw)
        start = min(s.start_time_unix_nano for s in spans)
        end = max(s.end_time_unix_nano for s in spans)
        by_key.setdefault(key, []).append((start, tid, end))
    for key, units in by_key.items():
        latest_end = opened = None
        for start, tid, end in sorted(units):
            if latest_end is None or start - latest_end > timeout or start - opened > longest:
                session = autosession.session_id(key, start)
                opened = start
            latest_end = end if latest_end is None else max(latest_end, end)
            result[tid] = session
    return result


@st.composite
def streams(draw):
    """Traces of a few keys with gaps around the timeout, cut into batches."""
    count = draw(st.integers(1, 30))
    traces = []
    clock = {}
    for n in range(1, count + 1):
        kind = draw(st.sampled_from(KINDS))
        who = draw(st.integers(0, 2))
        gap = draw(st.sampled_from([0, 1, 10, 29, 30, 31, 45, 90])) * MIN + draw(st.sampled_from([-1, 0, 1]))
        start = max(0, clock.get((kind, who), 0) + gap)
        clock[(kind, who)] = start
        length = draw(st.sampled_from([0, 1, 5, 40])) * MIN
        traces.append(trace_spans(n, kind, who, start, length, draw(st.integers(1, 3))))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, count - 1)), max_size=count)))
    return traces, cuts


def run_batches(traces: list[list[Span]], cuts: list[int], shuffle_seed: int | None,
                **config) -> dict[bytes, set[str]]:
    p = processor(**config)
    bounds = [0, *cuts, len(traces)]
    rng = random.Random(shuffle_seed)
    sessions: dict[bytes, set[str]] = {}
    for lo, hi in zip(bounds, bounds[1:]):
        batch = [s for spans in traces[lo:hi] for s in spans]
        if shuffle_seed is not None:
            rng.shuffle(batch)
        for s in p.process(batch):
            sessions.setdefault(s.trace_id, set()).add(sid(s))
    return sessions


def by_start(traces):
    return sorted(traces, key=lambda spans: (spans[0].start_time_unix_nano, spans[0].trace_id))


@settings(max_examples=150, deadline=None)
@given(streams(), st.one_of(st.none(), st.integers(0, 1000)), st.sampled_from([24 * 60, 60, 100]))
def test_in_order_batches_equal_the_reference_even_shuffled_within_each_batch(stream, seed, longest):
    traces, cuts = stream
    traces = by_start(traces)
    expected = reference(traces, T, longest * MIN)  # before processing: it adds session ids
    got = run_batches(traces, cuts, seed, max_duration=longest * 60.0)
    assert all(len(ids) == 1 for ids in got.values()), "a trace was split"
    assert {tid: ids.pop() for tid, ids in got.items()} == expected


def gap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(a[0] - b[1], b[0] - a[1])


@settings(max_examples=150, deadline=None)
@given(streams(), st.lists(st.sampled_from([0, 5, 20, 35, 60]), min_size=30, max_size=30))
def test_out_of_order_arrival(stream, jitter):
    """Traces arrive out of order by up to an hour. Always: no trace split, explicit
    ids kept, every session inside one reference session. When every trace arrives within
    the timeout of an already-arrived trace of its reference session (or first), the
    grouping equals the reference; when moreover each reference session's earliest trace
    arrives first, the ids do too."""
    traces, cuts = stream
    expected = reference(traces, T)  # before processing: the processor adds session ids
    explicit = {s[0].trace_id: s[0].attributes[c.SESSION_ID] for s in traces
                if c.SESSION_ID in s[0].attributes}
    arrival = sorted(traces, key=lambda spans: spans[0].start_time_unix_nano + MIN * jitter[
        int.from_bytes(spans[0].trace_id, "big") - 1])
    got = run_batches(arrival, cuts, None)
    assert all(len(ids) == 1 for ids in got.values()), "a trace was split"
    assigned = {tid: next(iter(ids)) for tid, ids in got.items()}
    for tid, session in explicit.items():
        assert assigned[tid] == session

    groups: dict[str, set[bytes]] = {}
    for tid, session in assigned.items():
        groups.setdefault(session, set()).add(tid)
    for members in groups.values():
        assert len({expected[t] for t in members}) == 1, "a session spans a reference gap"

    # Order of processing: batches in arrival order, each sorted by start.
    bounds = [0, *cuts, len(arrival)]
    processed = [spans for lo, hi in zip(bounds, bounds[1:]) for spans in by_start(arrival[lo:hi])]
    extent = {s[0].trace_id: (s[0].start_time_unix_nano, s[0].end_time_unix_nano) for s in traces}
    seen: dict[str, list[bytes]] = {}
    connected = earliest_first = True
    for spans in processed:
        tid = spans[0].trace_id
        if tid in explicit:
            continue  # no activity rule for explicit sessions
        mates = seen.setdefault(expected[tid], [])
        if mates:
            connected &= any(gap(extent[tid], extent[m]) <= T for m in mates)
            earliest_first &= (extent[mates[0]][0], mates[0]) <= (extent[tid][0], tid)
        mates.append(tid)
    event(f"arrival connected: {connected}, earliest first: {connected and earliest_first}")
    if connected:
        ref_groups: dict[str, set[bytes]] = {}
        for tid, session in expected.items():
            ref_groups.setdefault(session, set()).add(tid)
        assert sorted(map(sorted, groups.values())) == sorted(map(sorted, ref_groups.values()))
        if earliest_first:
            assert assigned == expected


# --- rule 6: rebuilt from ClickHouse after a restart ----------------------------------


class StoreHost:
    """The collector's host as the autosession processor sees it, on the test's store."""

    def __init__(self, url: str | None, database: str) -> None:
        self.url = url
        self.database = database

    def storage_client(self):
        from sessionlens.storage import connect

        return None if self.url is None else connect(self.url, database=self.database)

    def spooled(self, columns):
        return iter(())  # no spool


def store(url: str, database: str, spans: list[Span]) -> None:
    from sessionlens.collector.clickhouse_exporter import COLUMNS, to_columns
    from sessionlens.storage import connect

    client = connect(url, database=database)
    client.insert(table="otel_traces", database=database, data=to_columns(spans),
                  column_names=COLUMNS, column_oriented=True)
    client.close()


def test_restart_keeps_sessions_and_trace_assignments(chdb_url, database):
    import time

    from sessionlens.storage import connect
    from sessionlens.schema import migrate
    from sessionlens.schema.options import SchemaOptions

    client = connect(chdb_url)
    migrate.apply(client, SchemaOptions(database=database))
    client.close()

    now = time.time_ns()
    before = processor()
    stored = before.process([
        make_span(1, now - 20 * MIN, end=now - 10 * MIN, attrs={c.USER_ID: "alice"}),
        make_span(2, now - 5 * MIN, attrs={c.CLIENT_ADDRESS: "203.0.113.9"}),
        make_span(3, now - 4 * MIN, attrs={c.SESSION_ID: "explicit-1"}),
        make_span(4, now - 5 * 3600 * 1_000_000_000, attrs={c.USER_ID: "old"}),  # long gone
        make_span(5, now - 4 * MIN, attrs={c.SESSION_ID: "team-a-secret"},
                  resource={**RESOURCE, c.PROJECT: "team-a"}),
    ])
    store(chdb_url, database, stored)
    ids = {s.trace_id[-1]: sid(s) for s in stored}

    after = processor()
    after.start(StoreHost(chdb_url, database))
    alice, same_trace, explicit_trace, old, team_a, team_b = after.process([
        make_span(10, now, attrs={c.USER_ID: "alice"}),  # 10 minutes after alice's last end
        make_span(2, now, attrs={c.USER_ID: "bob"}, span=2),  # the fingerprint trace goes on
        make_span(3, now, span=2),
        make_span(11, now, attrs={c.USER_ID: "old"}),
        make_span(5, now, resource={**RESOURCE, c.PROJECT: "team-a"}, span=2),
        make_span(5, now, resource={**RESOURCE, c.PROJECT: "team-b"}, span=3),
    ])
    assert sid(alice) == ids[1]
    assert sid(same_trace) == ids[2]
    assert same_trace.attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_FINGERPRINT
    assert sid(explicit_trace) == "explicit-1"
    assert sid(old) != ids[4]
    assert sid(team_a) == "team-a-secret" != sid(team_b)  # trace assignments per project
    # Only sessions active within timeout + margin were reloaded: alice's and the
    # fingerprint's, not the one five hours old.
    assert {autosession.key_of(sid(s)) for s in stored[:2]} <= set(after._windows)
    assert [w[2] for w in after._windows[autosession.key_of(sid(old))]] == [sid(old)]

    # Without the rebuild, the same user would have started over.
    fresh = processor()
    fresh.start(StoreHost(None, database))
    (alone,) = fresh.process([make_span(10, now, attrs={c.USER_ID: "alice"})])
    assert sid(alone) != ids[1]


def test_start_without_a_table_logs_and_starts_empty(chdb_url, database, caplog):
    p = processor()
    p.start(StoreHost(chdb_url, database))  # the database has no otel_traces
    assert "no state rebuilt" in caplog.text
    (span,) = p.process([make_span(1, 0, attrs={c.USER_ID: "u"})])
    assert span.attributes[c.SESSION_SOURCE] == c.SOURCE_AUTO_USER


def test_the_collector_config_builds_this_config_and_reports_bad_values():
    from sessionlens.collector.config import ConfigError, build

    config = build(autosession.Config, {"inactivity_timeout": "45m", "max_keys": 10}, "p")
    assert config.inactivity_timeout == 2700.0 and config.max_keys == 10
    with pytest.raises(ConfigError, match="processors.autosession: max_traces must be at least 1"):
        build(autosession.Config, {"max_traces": 0}, "processors.autosession")
