"""``sessionlens schema apply | print | unpriced-models``.

Exit codes: 0 on success, 2 for bad options, 1 when ClickHouse cannot be reached or
refuses the DDL. Errors are one line each, saying what to do.
"""

from __future__ import annotations

import argparse
import sys

from sessionlens.storage import DEFAULT_URL


def _add_knobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", default="otel", help="database (default: %(default)s)")
    parser.add_argument(
        "--traces-table-name", default="otel_traces", help="spans table (default: %(default)s)"
    )
    parser.add_argument("--cluster", default="", metavar="NAME", help="ON CLUSTER name")
    parser.add_argument(
        "--table-engine",
        default="",
        metavar="ENGINE",
        help="MergeTree-family engine, e.g. ReplicatedMergeTree (default: MergeTree)",
    )
    parser.add_argument(
        "--ttl", default="0", help="keep spans this long: seconds or 720h, 30m … (0 = forever)"
    )
    parser.add_argument(
        "--inactivity-timeout",
        default=None,
        metavar="DURATION",
        help="a session is 'active' this long after its last span, e.g. 30m; stored in the "
        "database, where the views read it (default: keep the stored value, 30m on a new store)",
    )


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clickhouse",
        default=DEFAULT_URL,
        metavar="URL",
        help="chdb:///path (embedded) or http(s)://user:pass@host:8123 (default: %(default)s)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``schema`` subcommand and its actions."""
    parser = subparsers.add_parser(
        "schema",
        help="create or print the ClickHouse schema, list unpriced models",
        description="The ClickHouse schema: otel_traces, the session rollup and views.",
    )
    actions = parser.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    apply_ = actions.add_parser("apply", help="apply pending migrations (idempotent)")
    _add_url(apply_)
    _add_knobs(apply_)
    apply_.set_defaults(func=run_apply)
    print_ = actions.add_parser("print", help="print all DDL, for DBAs who apply it themselves")
    _add_knobs(print_)
    print_.set_defaults(func=run_print)
    unpriced = actions.add_parser(
        "unpriced-models", help="LLM models seen in spans with no price (they cost 0)"
    )
    _add_url(unpriced)
    unpriced.add_argument("--database", default="otel", help="database (default: %(default)s)")
    unpriced.set_defaults(func=run_unpriced)


def _options(args: argparse.Namespace):
    from sessionlens.durations import parse_duration
    from sessionlens.schema.options import SchemaOptions

    return SchemaOptions(
        database=args.database,
        traces_table_name=args.traces_table_name,
        ttl=parse_duration(args.ttl),
        cluster_name=args.cluster,
        table_engine=args.table_engine,
        inactivity_timeout=(
            None if args.inactivity_timeout is None else parse_duration(args.inactivity_timeout)
        ),
    )


def _fail(code: int, message: str) -> int:
    print(f"sessionlens schema: {message}", file=sys.stderr)
    return code


def run_print(args: argparse.Namespace) -> int:
    from sessionlens.schema.migrate import render

    try:
        sys.stdout.write(render(_options(args)))
    except ValueError as exc:
        return _fail(2, str(exc))
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from sessionlens.storage import StorageError, connect
    from sessionlens.schema.migrate import applied_versions, apply

    try:
        options = _options(args)
    except ValueError as exc:
        return _fail(2, str(exc))
    try:
        client = connect(args.clickhouse)
        apply(client, options)
        versions = applied_versions(client, options)
    except StorageError as exc:
        return _fail(1, str(exc))
    except Exception as exc:  # the server refused a statement: show its one-line reason
        return _fail(1, f"ClickHouse refused the schema: {str(exc).splitlines()[0]}")
    print(f"schema of database {options.database} at version {max(versions)}")
    return 0


def run_unpriced(args: argparse.Namespace) -> int:
    from sessionlens.storage import StorageError, connect
    from sessionlens.schema.names import UNPRICED_MODELS
    from sessionlens.schema.options import SchemaOptions

    try:
        table = SchemaOptions(database=args.database).table(UNPRICED_MODELS)
        client = connect(args.clickhouse)
        rows = client.query(f"SELECT model, calls FROM {table}").result_rows
    except ValueError as exc:
        return _fail(2, str(exc))
    except StorageError as exc:
        return _fail(1, str(exc))
    except Exception as exc:
        return _fail(
            1,
            f"cannot read {args.database}.unpriced_models ({str(exc).splitlines()[0]}); "
            "run 'sessionlens schema apply' first",
        )
    if not rows:
        print("every model seen in LLM calls has a price")
        return 0
    from sessionlens.terminal import printable

    rows = [(printable(model), calls) for model, calls in rows]  # model names come from clients
    width = max(len("model"), *(len(m) for m, _ in rows))
    print(f"{'model':<{width}}  calls")
    for model, calls in rows:
        print(f"{model:<{width}}  {calls}")
    print(
        f"\n{len(rows)} model(s) have LLM calls priced 0 (by response model, else request "
        "model): add prices with\n"
        f"  INSERT INTO {args.database}.model_prices "
        "(model, input_per_mtok, output_per_mtok, cached_input_per_mtok) VALUES (...)\n"
        "or upgrade genai-prices (pip install -U genai-prices) and restart the collector"
    )
    return 0
