"""sessionlens.instrumentation."""
