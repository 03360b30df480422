"""Names of the schema's objects: the public views (the stable query interface) and the
tables, which are named after ``traces_table_name`` as the migration files name them."""

from __future__ import annotations

from sessionlens.schema.options import SchemaOptions

PRICES_TABLE = "model_prices"
PRICES_DICTIONARY = "model_prices_dict"
PRICES_VIEW = "model_prices_resolved"
MIGRATIONS_TABLE = "schema_migrations"
SETTINGS_TABLE = "sessionlens_settings"
SESSION_LIST = "session_list"
SESSION_LIST_PAGE = "session_list_page"
SESSION_VITALS = "session_vitals"
SESSION_DETAIL = "session_detail"
SESSION_BREAKDOWN = "session_breakdown"
UNPRICED_MODELS = "unpriced_models"


class Names:
    """Fully qualified (quoted) names of the objects for one set of options."""

    def __init__(self, o: SchemaOptions) -> None:
        t = o.traces_table_name
        self.traces = o.table(t)
        self.sessions = o.table(f"{t}_sessions")
        self.session_spans = o.table(f"{t}_session_spans")
        self.prices = o.table(PRICES_TABLE)
        self.dictionary = o.table(PRICES_DICTIONARY)
        self.migrations = o.table(MIGRATIONS_TABLE)
        self.settings = o.table(SETTINGS_TABLE)
        self.session_list = o.table(SESSION_LIST)
        self.unpriced_models = o.table(UNPRICED_MODELS)
