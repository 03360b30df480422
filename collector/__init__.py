"""sessionlens.collector."""
