"""sessionlens.schema."""
