"""``sessionlens sessions list|show|vitals|tail`` and ``sessionlens users``.

Readable tables by default, ``--json`` for scripts (the sessions API's own JSON). The data
comes from the collector's sessions API (``--api``, default the local collector; ``--token``
or ``SESSIONLENS_TOKEN``) or straight from ClickHouse (``--clickhouse URL``, through the
shared read layer :mod:`sessionlens.schema.queries`).

Exit codes: 0 on success, 1 when the data cannot be read (nothing listening, 401, the
embedded store locked, unknown session), 2 for bad options.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

# The read layer's names of statuses and sort columns (it imports only the standard
# library, so the base install still answers --help).
from sessionlens.schema.queries import SORTS, STATUSES, USER_SORTS

API_ENV_TOKEN = "SESSIONLENS_TOKEN"


def _sort_choices(columns) -> list[str]:
    return [*columns, *(f"-{c}" for c in columns)]


def _connection(parser: argparse.ArgumentParser) -> None:
    from sessionlens.cli.source import DEFAULT_API

    group = parser.add_argument_group("where to read")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--api", default=DEFAULT_API, metavar="URL",
                       help="the collector's sessions API (default: %(default)s)")
    where.add_argument("--clickhouse", metavar="URL",
                       help="read ClickHouse directly instead: http(s)://user:pass@host:8123 or "
                       "chdb:///path (an embedded store no collector has open)")
    group.add_argument("--token", default=None,
                       help=f"bearer token for the API (default: ${API_ENV_TOKEN})")
    group.add_argument("--database", default="otel",
                       help="database, with --clickhouse (default: %(default)s)")
    group.add_argument("--project", default=None,
                       help="only this project, with --clickhouse (the API takes it from the token)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")


def _time_range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="WHEN",
                        help="activity since: RFC 3339 or a duration before now (30m, 24h, 7d)")
    parser.add_argument("--until", metavar="WHEN", help="activity until (same forms)")


def _session_filters(parser: argparse.ArgumentParser, *, all_filters: bool) -> None:
    _time_range(parser)
    for name in ("user", "environment", "service", "agent"):
        parser.add_argument(f"--{name}", help=f"only sessions of this {name}")
    if not all_filters:
        return
    parser.add_argument("--model", help="only sessions that called this model")
    parser.add_argument("--status", choices=STATUSES)
    parser.add_argument("--source", help="how the session was assigned: explicit, auto:user …")
    parser.add_argument("--name-contains", metavar="TEXT", help="session name or id contains TEXT")
    parser.add_argument("--property", action="append", default=[], metavar="NAME=VALUE",
                        help="sessionlens.property.NAME equals VALUE (repeatable)")
    parser.add_argument("--min-cost", type=float, metavar="USD")
    errors = parser.add_mutually_exclusive_group()
    errors.add_argument("--has-errors", dest="has_errors", action="store_const", const="true")
    errors.add_argument("--no-errors", dest="has_errors", action="store_const", const="false")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sessions`` and ``users`` subcommands."""
    sessions = subparsers.add_parser(
        "sessions", help="list, show, summarize or follow sessions",
        description="Sessions from the collector's sessions API (or ClickHouse with --clickhouse).",
    )
    actions = sessions.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)

    list_ = actions.add_parser("list", help="sessions, newest activity first")
    _session_filters(list_, all_filters=True)
    list_.add_argument("--sort", default="-last_seen", choices=_sort_choices(SORTS),
                       metavar="COLUMN", help="one of %s; descending with a -, written --sort=-cost_usd "
                       "(default: %%(default)s)" % ", ".join(SORTS))
    list_.add_argument("--limit", type=int, default=50, help="rows, 1–500 (default: %(default)s)")
    list_.add_argument("--cursor", help="the next page: the cursor the previous page printed")
    _connection(list_)
    list_.set_defaults(func=run_list)

    show = actions.add_parser("show", help="one session: totals, cost breakdowns and its timeline")
    show.add_argument("session_id", metavar="ID")
    show.add_argument("--spans-limit", type=int, default=500, help="spans per page (default: %(default)s)")
    show.add_argument("--spans-cursor", help="the next page of spans")
    show.add_argument("--all-spans", action="store_true",
                      help="list transport spans (HTTP POSTs under an LLM call) instead of folding them")
    _connection(show)
    show.set_defaults(func=run_show)

    vitals = actions.add_parser("vitals", help="session vitals over a time range")
    _session_filters(vitals, all_filters=False)
    vitals.add_argument("--interval", metavar="STEP", help="also a series per bucket: 5m, 1h, 1d …")
    _connection(vitals)
    vitals.set_defaults(func=run_vitals)

    tail = actions.add_parser("tail", help="follow sessions live as spans arrive (API only)")
    _connection(tail)
    tail.set_defaults(func=run_tail)

    users = subparsers.add_parser("users", help="end users: sessions, calls, cost, errors",
                                  description="One row per end user (user.id) of the sessions.")
    _time_range(users)
    users.add_argument("--sort", default="-last_seen", choices=_sort_choices(USER_SORTS),
                       metavar="COLUMN", help="one of %s; descending with a -, written --sort=-cost_usd "
                       "(default: %%(default)s)" % ", ".join(USER_SORTS))
    users.add_argument("--limit", type=int, default=50, help="rows, 1–500 (default: %(default)s)")
    users.add_argument("--cursor", help="the next page: the cursor the previous page printed")
    _connection(users)
    users.set_defaults(func=run_users)


# --- plumbing ----------------------------------------------------------------------------


def _source(args: argparse.Namespace):
    from sessionlens.cli.source import ApiSource

    if args.clickhouse:
        from sessionlens.cli.clickhouse import ClickHouseSource

        return ClickHouseSource(args.clickhouse, database=args.database, project=args.project)
    if args.project is not None:
        from sessionlens.cli.source import CliError

        raise CliError("--project applies to --clickhouse only: the API shows the project of "
                       "your token", 2)
    return ApiSource(args.api, args.token or os.environ.get(API_ENV_TOKEN) or None)


def _params(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The API's query parameters from the flags given (the API spells them so)."""
    params = {n: getattr(args, n, None) for n in names}
    for prop in getattr(args, "property", None) or []:
        name, sep, value = prop.partition("=")
        if not sep or not name:
            from sessionlens.cli.source import CliError

            raise CliError(f"--property {prop!r}: use NAME=VALUE", 2)
        params[f"property.{name}"] = value
    return {k: v for k, v in params.items() if v is not None}


def _console():
    from sessionlens.cli.render import console

    out = console()
    # Piped output keeps whole rows (a terminal's width is its own).
    if not sys.stdout.isatty():
        out.width = shutil.get_terminal_size((200, 24)).columns
    return out


def _print_json(value: Any) -> None:
    # ASCII escapes: lossless JSON that cannot carry a raw control character to a terminal
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=True) + "\n")


def _run(handler, args: argparse.Namespace) -> int:
    from sessionlens.cli.source import CliError
    from sessionlens.terminal import printable

    try:
        return handler(args)
    except CliError as exc:
        print(f"sessionlens: {printable(str(exc))}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        if exc.name != "rich":
            raise
        print("sessionlens: tables need the collector extras: pip install 'sessionlens[collector]' "
              "(or add --json)", file=sys.stderr)
        return 1


SESSION_FILTERS = ("since", "until", "user", "environment", "service", "agent", "model", "status",
                   "source", "name_contains", "min_cost", "has_errors")


def run_list(args: argparse.Namespace) -> int:
    return _run(_list, args)


def _list(args: argparse.Namespace) -> int:
    from sessionlens.cli.render import session_table

    page = _source(args).sessions(_params(args, *SESSION_FILTERS, "sort", "limit", "cursor"))
    return _print_page(args, page, "sessions", session_table)


def _print_page(args: argparse.Namespace, page: dict, key: str, table) -> int:
    """A page of a listing: its JSON, or its table and the flag for the next page."""
    from sessionlens.cli.render import safe

    if args.json:
        _print_json(page)
        return 0
    out = _console()
    rows = page.get(key, [])
    if not rows:
        out.print(f"no {key} match")
        return 0
    out.print(table(rows))
    if page.get("next_cursor"):
        out.print(f"\nmore: --cursor {safe(page['next_cursor'])}", style="dim")
    return 0


def run_show(args: argparse.Namespace) -> int:
    return _run(_show, args)


def _show(args: argparse.Namespace) -> int:
    from sessionlens.cli.render import breakdown_tables, header, safe, timeline
    from sessionlens.cli.source import CliError, NotFound

    params = {"spans_limit": args.spans_limit, "spans_cursor": args.spans_cursor}
    try:
        detail = _source(args).session(args.session_id, params)
    except NotFound:
        raise CliError(f"no session {args.session_id!r} (in your project): "
                       "'sessionlens sessions list' shows the ids") from None
    if args.json:
        _print_json(detail)
        return 0
    out = _console()
    out.print(header(detail["session"]))
    for table in breakdown_tables(detail.get("breakdown") or {}):
        out.print()
        out.print(table)
    out.print()
    out.print(timeline(detail.get("spans") or [], fold=not args.all_spans))
    if detail.get("next_spans_cursor"):
        out.print(f"\nmore spans: --spans-cursor {safe(detail['next_spans_cursor'])}", style="dim")
    return 0


def run_vitals(args: argparse.Namespace) -> int:
    return _run(_vitals, args)


def _vitals(args: argparse.Namespace) -> int:
    from sessionlens.cli.render import series_table, vitals_table

    figures = _source(args).vitals(
        _params(args, "since", "until", "user", "environment", "service", "agent", "interval"))
    if args.json:
        _print_json(figures)
        return 0
    out = _console()
    out.print(vitals_table(figures))
    if figures.get("series"):
        out.print()
        out.print(series_table(figures["series"]))
    return 0


def run_tail(args: argparse.Namespace) -> int:
    return _run(_tail, args)


def _tail(args: argparse.Namespace) -> int:
    from sessionlens.cli.render import event_line
    from sessionlens.cli.source import CliError

    if args.clickhouse:
        raise CliError("tail follows the collector's live event stream: use --api, not --clickhouse", 2)
    source = _source(args)
    out = None if args.json else _console()
    for row in source.events():
        if out is None:
            sys.stdout.write(json.dumps(row, ensure_ascii=True) + "\n")
            sys.stdout.flush()
        else:
            out.print(event_line(row))
    return 0


def run_users(args: argparse.Namespace) -> int:
    return _run(_users, args)


def _users(args: argparse.Namespace) -> int:
    from sessionlens.cli.render import users_table

    page = _source(args).users(_params(args, "since", "until", "sort", "limit", "cursor"))
    return _print_page(args, page, "users", users_table)
