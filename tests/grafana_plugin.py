"""What Grafana and grafana-clickhouse-datasource do to a panel's SQL before ClickHouse sees it.

Written from the plugin's documented rules (docs/sources/query-editor.md and
template-variables.md, the macro reference in pkg/macros) and Grafana's variable formats,
in the order a query takes:

1. the plugin's frontend expands ``$__conditionalAll(condition, $var)`` first: the
   condition when ``$var`` selects values, ``1=1`` when it is "All" (``$__all``) or empty;
2. Grafana interpolates template variables (``$var``, ``${var}``, ``${var:format}``,
   ``[[var]]``), the plugin formatting a variable given without a format (a list as
   ``'a','b'`` with no escaping, a single value raw);
3. the plugin's backend expands the time macros (``$__timeFilter``, ``$__fromTime`` …).

Unknown ``$__`` macros and unknown variables are left as they are, as the plugin leaves
them: ClickHouse then fails on them, and so does the test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote

ALL = "$__all"


@dataclass
class Variable:
    """A dashboard variable's current state: ``value`` (str, list or ALL) and its options."""

    value: str | list[str]
    options: list[str] = field(default_factory=list)
    all_value: str | None = None


# --- 1. $__conditionalAll (frontend) ------------------------------------------------------

_CONDITIONAL_ALL = "$__conditionalAll("
_VARIABLE_IN_ARG = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+")


def _macro_args(sql: str, open_paren: int) -> list[str] | None:
    """The comma-separated arguments of the call whose '(' is at ``open_paren``.

    The plugin counts parentheses only (quotes are not special), splitting on commas at
    the outer level.
    """
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    return None


def conditional_all(sql: str, variables: dict[str, Variable]) -> str:
    """Expand every ``$__conditionalAll`` from the last one back, as the plugin does."""
    index = sql.rfind(_CONDITIONAL_ALL)
    while index != -1:
        args = _macro_args(sql, index + len(_CONDITIONAL_ALL) - 1)
        if args is None or len(args) != 2:
            return sql  # the plugin gives up on the whole query
        condition = args[0]
        name = _VARIABLE_IN_ARG.search(args[1].strip())
        if name:
            variable = variables.get(name.group(0))
            current = variable.value if variable else None
            if current is not None:
                text = ",".join(current) if isinstance(current, list) else current
                if text in ("", ALL):
                    condition = "1=1"
        sql = sql.replace(f"{_CONDITIONAL_ALL}{args[0]},{args[1]})", condition, 1)
        index = sql.rfind(_CONDITIONAL_ALL)
    return sql


# --- 2. template variables (Grafana) ------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)


def _percentencode(text: str) -> str:
    # encodeURIComponent, plus !'()* (Grafana's encodeURIComponentStrict)
    return quote(text, safe="-_.~")


def _format(value: str | list[str], fmt: str | None) -> str:
    if fmt == "percentencode":
        return _percentencode("{" + ",".join(value) + "}" if isinstance(value, list) else value)
    if fmt == "singlequote":
        values = value if isinstance(value, list) else [value]
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt in (None, "raw"):
        # the plugin's own default format; raw leaves a list comma-joined
        if isinstance(value, list):
            return ",".join(value) if fmt == "raw" else "'" + "','".join(value) + "'"
        return value
    raise ValueError(f"format {fmt!r} is not modelled by this expander")


def interpolate(sql: str, variables: dict[str, Variable]) -> str:
    """Replace template variables as Grafana's template service does."""

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        value = variable.value
        if value == ALL:
            if variable.all_value is not None:
                value = variable.all_value
            else:
                value = list(variable.options)
        return _format(value, fmt)

    return _VARIABLE.sub(replace, sql)


# --- 3. time macros (backend) -------------------------------------------------------------


def _seconds(t: datetime) -> int:
    return int(t.timestamp())


def _millis(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def expand_macros(sql: str, time_from: datetime, time_to: datetime, interval_s: float) -> str:
    """The plugin's documented ClickHouse macros for one query time range and interval."""
    f, t = time_from, time_to
    interval = max(int(interval_s), 1)

    def date(x: datetime) -> str:
        return f"toDate('{x.astimezone(timezone.utc):%Y-%m-%d}')"

    def between(col: str, lo: str, hi: str) -> str:
        return f"{col} >= {lo} AND {col} <= {hi}"

    plain = {
        "fromTime": lambda: f"toDateTime({_seconds(f)})",
        "toTime": lambda: f"toDateTime({_seconds(t)})",
        "fromTime_ms": lambda: f"fromUnixTimestamp64Milli({_millis(f)})",
        "toTime_ms": lambda: f"fromUnixTimestamp64Milli({_millis(t)})",
        "interval_s": lambda: str(interval),
    }
    with_column = {
        "timeFilter": lambda c: between(c, f"toDateTime({_seconds(f)})", f"toDateTime({_seconds(t)})"),
        "timeFilter_ms": lambda c: between(
            c, f"fromUnixTimestamp64Milli({_millis(f)})", f"fromUnixTimestamp64Milli({_millis(t)})"
        ),
        "dateFilter": lambda c: between(c, date(f), date(t)),
        "timeInterval": lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {interval} second)",
    }
    out, pos = [], 0
    for match in re.finditer(r"\$__(\w+)", sql):
        if match.start() < pos:
            continue
        name = match.group(1)
        out.append(sql[pos:match.start()])
        pos = match.end()
        if name in with_column and pos < len(sql) and sql[pos] == "(":
            args = _macro_args(sql, pos)
            if args is None or len(args) != 1:
                raise ValueError(f"$__{name} takes one argument: {sql[match.start():match.start() + 60]!r}")
            out.append(with_column[name](args[0].strip()))
            pos += len(args[0]) + 2
        elif name in plain:
            out.append(plain[name]())
        else:
            out.append(match.group(0))
    out.append(sql[pos:])
    return "".join(out)


def render(
    sql: str,
    variables: dict[str, Variable],
    time_from: datetime,
    time_to: datetime,
    interval_s: float = 60,
) -> str:
    """A panel's SQL as ClickHouse receives it from Grafana."""
    return expand_macros(interpolate(conditional_all(sql, variables), variables), time_from, time_to, interval_s)
