"""The CLI's answers read straight from ClickHouse (``--clickhouse URL``).

The same parameters as the sessions API, parsed by its own parser
(:mod:`sessionlens.collector.api_params`), read through the shared read layer
(:mod:`sessionlens.schema.queries`) and turned into JSON by the API's own
:func:`~sessionlens.collector.sessions_app.jsonable`: the output is byte for byte what the
API would answer for the same store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sessionlens.cli.source import CliError, NotFound

USE_API = ("use the collector's sessions API instead: drop --clickhouse "
           "(the default --api is http://127.0.0.1:4319)")


class ClickHouseSource:
    """Reads of one ClickHouse store (a server, or an embedded store no process has open)."""

    def __init__(self, url: str, *, database: str = "otel", project: str | None = None) -> None:
        from sessionlens.storage import StorageError, StoreInUseError, connect

        self.database = database
        self.project = project
        try:
            self.client = connect(url)
        except StoreInUseError as exc:
            raise CliError(f"{exc}: {USE_API}") from None
        except StorageError as exc:
            raise CliError(str(exc)) from None

    def _read(self, read: Callable[[], Any]) -> Any:
        from sessionlens.collector.sessions_app import jsonable
        from sessionlens.schema.queries import QueryError

        try:
            return jsonable(read())
        except QueryError as exc:
            raise CliError(str(exc), 2) from None
        except CliError:
            raise
        except Exception as exc:  # the server refused the read: its first line says why
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CliError(f"ClickHouse refused the read ({first}); if the schema is missing, "
                           "run 'sessionlens schema apply --clickhouse URL'") from None

    @staticmethod
    def _items(params: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [(k, str(v)) for k, v in params.items() if v is not None]

    def sessions(self, params: Mapping[str, Any]) -> dict:
        from sessionlens.collector import api_params
        from sessionlens.schema import queries

        items = self._items(params)

        def read():
            page = queries.list_sessions(
                self.client, api_params.filters(items, self.project), api_params.sort(items),
                api_params.limit(items), api_params.cursor(items), database=self.database)
            return {"sessions": page.rows, "next_cursor": page.next_cursor}

        return self._read(read)

    def session(self, session_id: str, params: Mapping[str, Any]) -> dict:
        from sessionlens.collector import api_params
        from sessionlens.schema import queries

        items = self._items(params)

        def read():
            detail = queries.session(
                self.client, self.project, session_id, api_params.spans_limit(items),
                api_params.cursor(items, "spans_cursor"), database=self.database)
            if detail is None:
                raise NotFound(f"no session {session_id!r}")
            return {"session": detail.session, "spans": detail.spans,
                    "next_spans_cursor": detail.next_spans_cursor, "breakdown": detail.breakdown}

        return self._read(read)

    def vitals(self, params: Mapping[str, Any]) -> dict:
        from sessionlens.collector import api_params
        from sessionlens.schema import queries

        items = self._items(params)

        def read():
            filters = api_params.filters(items, self.project)
            body = dict(queries.vitals(self.client, filters, database=self.database))
            interval = api_params.interval(items)
            if interval is not None:
                body["series"] = queries.series(self.client, filters, interval, database=self.database)
            return body

        return self._read(read)

    def users(self, params: Mapping[str, Any]) -> dict:
        from sessionlens.collector import api_params
        from sessionlens.schema import queries

        items = self._items(params)

        def read():
            page = queries.list_users(
                self.client, api_params.filters(items, self.project),
                api_params.sort(items, queries.USER_SORTS), api_params.limit(items),
                api_params.cursor(items), database=self.database)
            return {"users": page.rows, "next_cursor": page.next_cursor}

        return self._read(read)
