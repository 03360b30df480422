"""sessionlens: see LLM applications as sessions, on OpenTelemetry and ClickHouse."""

from sessionlens.instrumentation.context import run, session

__all__ = ["run", "session"]
