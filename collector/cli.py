"""``sessionlens collector``: run the configured pipeline in the foreground.

Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 2 for a configuration error, 1 when
the collector cannot start (storage unreachable, port in use). Errors are one line each.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

log = logging.getLogger("sessionlens.collector")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``collector`` subcommand."""
    parser = subparsers.add_parser(
        "collector",
        help="run the OTLP collector (receivers → processors → ClickHouse)",
        description="Receive OTLP traces, sessionize them and store them in ClickHouse.",
    )
    parser.add_argument(
        "--config",
        default="otel-config.yaml",
        metavar="FILE",
        help="collector config in the OpenTelemetry Collector's format (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, start the pipeline, serve until SIGINT/SIGTERM, shut down cleanly."""
    from sessionlens.collector.config import ConfigError, load
    from sessionlens.collector.pipeline import Pipeline
    from sessionlens.storage import StorageError, StoreInUseError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:
        if _quiet_drivers not in handler.filters:
            handler.addFilter(_quiet_drivers)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"sessionlens collector: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    pipeline = Pipeline(config)
    try:
        pipeline.start()
    except StoreInUseError as exc:
        print(
            f"sessionlens collector: cannot start: {_one_line(exc)}: stop the other collector, "
            f"or give this one its own exporters.{config.exporter.id}.endpoint",
            file=sys.stderr,
        )
        return 1
    except StorageError as exc:
        print(
            f"sessionlens collector: cannot start: {_one_line(exc)} "
            f"(is ClickHouse running? check exporters.{config.exporter.id}.endpoint)",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # port in use, bad component settings
        print(f"sessionlens collector: cannot start: {_one_line(exc)}", file=sys.stderr)
        return 1
    log.info("listening: %s (config %s)", ", ".join(pipeline.endpoints()), args.config)
    # A short wait, not one long one: a signal the kernel hands to another thread only
    # flags it for the main thread, which runs the handler when it next runs Python code.
    while not stop.wait(1.0):
        pass
    log.info("shutting down: stop receiving, flush batches, close storage")
    pipeline.shutdown()
    log.info("stopped")
    return 0


def _quiet_drivers(record: logging.LogRecord) -> bool:
    """Drop the HTTP drivers' per-attempt warnings: the exporter reports failures itself.

    (A filter, not a logger level: clickhouse-connect resets urllib3's level on import.)
    """
    return record.levelno >= logging.ERROR or not record.name.startswith(("urllib3", "clickhouse_connect"))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
