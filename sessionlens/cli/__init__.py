"""The read-side command line: ``sessionlens sessions …`` and ``sessionlens users``.

Modules: :mod:`commands` (argument parsing, one handler per command), :mod:`source` (the
sessions API over HTTP, its event stream, the errors users can hit), :mod:`clickhouse`
(the same answers read straight from ClickHouse through :mod:`sessionlens.schema.queries`),
:mod:`render` (tables, the waterfall; values from spans escaped by
:mod:`sessionlens.terminal`).
"""
