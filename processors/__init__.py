"""sessionlens.processors."""
