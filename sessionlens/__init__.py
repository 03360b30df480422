"""sessionlens: see LLM applications as sessions, on OpenTelemetry and ClickHouse."""
