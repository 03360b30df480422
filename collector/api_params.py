"""Query-string parameters of the sessions API and web UI → the read layer's arguments.

Both surfaces accept the same parameters (the API's, in ``openapi.py``), so a UI URL and an API URL with the
same query string select the same sessions. Every mistake is a
:class:`~sessionlens.schema.queries.QueryError` saying what is wrong and what is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone

from sessionlens.schema import queries
from sessionlens.schema.queries import QueryError

MAX_VALUE_CHARS = 1024
MAX_PROPERTIES = 20

STRING_FILTERS = ("user", "environment", "service", "agent", "model", "source", "name_contains")
TIME_FILTERS = ("since", "until")
LIST_PARAMETERS = (*TIME_FILTERS, *STRING_FILTERS, "status", "min_cost", "has_errors",
                   "sort", "limit", "cursor")
USER_PARAMETERS = (*TIME_FILTERS, "sort", "limit", "cursor")
VITALS_PARAMETERS = (*TIME_FILTERS, "user", "environment", "service", "agent", "interval")
DETAIL_PARAMETERS = ("spans_limit", "spans_cursor")
PROPERTY_PREFIX = "property."


def _single(items: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in items if k == name]
    if not values:
        return None
    if len(values) > 1:
        raise QueryError(f"{name} is given {len(values)} times: give it once")
    value = values[0]
    if len(value) > MAX_VALUE_CHARS:
        raise QueryError(f"{name} is longer than {MAX_VALUE_CHARS} characters")
    if "\x00" in value:
        raise QueryError(f"{name} contains a NUL character")
    return value


def check_names(items: Iterable[tuple[str, str]], accepted: tuple[str, ...],
                properties: bool = False) -> list[tuple[str, str]]:
    """The parameters as a list, refusing names the endpoint does not know."""
    items = list(items)
    for name, _ in items:
        if name in accepted or (properties and name.startswith(PROPERTY_PREFIX)):
            continue
        extra = ", property.<name>" if properties else ""
        raise QueryError(f"unknown parameter {name!r}; accepted: {', '.join(accepted)}{extra}")
    return items


def _integer(items, name: str, default: int, most: int) -> int:
    text = _single(items, name)
    if text is None:
        return default
    if not text.strip().isdigit() or not 1 <= int(text) <= most:
        raise QueryError(f"{name}={text!r}: use a whole number from 1 to {most}")
    return int(text)


def filters(items: list[tuple[str, str]], project: str | None,
            now: datetime | None = None) -> queries.Filters:
    """The :class:`~sessionlens.schema.queries.Filters` the parameters name, in ``project``."""
    now = now or datetime.now(timezone.utc)
    values: dict = {"project": project}
    for name in TIME_FILTERS:
        text = _single(items, name)
        if text is not None:
            values[name] = queries.parse_time(text, name, now)
    if values.get("since") and values.get("until") and values["since"] > values["until"]:
        raise QueryError("since is after until: give since <= until")
    for name in STRING_FILTERS:
        text = _single(items, name)
        if text is not None and text != "":
            values[name] = text
    status = _single(items, "status")
    if status:
        if status not in queries.STATUSES:
            raise QueryError(f"status={status!r}: use one of {', '.join(queries.STATUSES)}")
        values["status"] = status
    min_cost = _single(items, "min_cost")
    if min_cost:
        try:
            number = float(min_cost)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise QueryError(f"min_cost={min_cost!r}: use a number of USD, 0 or more (e.g. 0.05)")
        values["min_cost"] = number
    has_errors = _single(items, "has_errors")
    if has_errors:
        if has_errors not in ("true", "false"):
            raise QueryError(f"has_errors={has_errors!r}: use true or false")
        values["has_errors"] = has_errors == "true"
    props = []
    for name, value in items:
        if name.startswith(PROPERTY_PREFIX):
            key = name[len(PROPERTY_PREFIX):]
            if not key or len(key) > MAX_VALUE_CHARS or len(value) > MAX_VALUE_CHARS:
                raise QueryError(f"{name[:40]!r}: use property.<name>=<value>, each at most "
                                 f"{MAX_VALUE_CHARS} characters")
            props.append((key, value))
    if len(props) > MAX_PROPERTIES:
        raise QueryError(f"at most {MAX_PROPERTIES} property.<name> filters")
    values["properties"] = tuple(props)
    return queries.Filters(**values)


def limit(items, default: int = queries.DEFAULT_LIMIT) -> int:
    return _integer(items, "limit", default, queries.MAX_LIMIT)


def spans_limit(items, default: int = queries.DEFAULT_SPANS_LIMIT) -> int:
    return _integer(items, "spans_limit", default, queries.MAX_SPANS_LIMIT)


def sort(items, allowed=queries.SORTS) -> queries.Sort:
    return queries.Sort.parse(_single(items, "sort") or "-last_seen", allowed)


def cursor(items, name: str = "cursor") -> str | None:
    return _single(items, name) or None


def interval(items) -> int | None:
    text = _single(items, "interval")
    return queries.parse_interval(text) if text else None
