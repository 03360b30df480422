"""Grafana provisioning for sessionlens (package data): a grafana-clickhouse-datasource
datasource and three dashboards over the public views.

- ``provisioning/datasources/sessionlens.yaml``: the ClickHouse datasource (native
  protocol, database ``otel``, the plugin's OTel trace defaults on ``otel_traces``).
- ``provisioning/dashboards/sessionlens.yaml``: a file provider loading ``dashboards/``.
- ``dashboards/``: *Sessions overview*, *Session detail*, *Cost*.

The dashboards' SQL reads only the public views (``session_list``, ``session_vitals``,
``session_detail``). Every template variable reaches SQL as
``decodeURLComponent('${var:percentencode}')``: percent-encoding is the one Grafana format
whose output holds neither a quote nor a backslash, so no value (a user id from a span, a
value typed into the URL) can end the string literal. ``${var:singlequote}`` is not safe
in ClickHouse: it escapes ``'`` as ``\\'`` but leaves a backslash alone, so a value
ending in a backslash, or holding ``\\'``, closes the literal early. "All" is
``$__conditionalAll(condition, $var)``: no filter.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
DASHBOARDS = ROOT / "dashboards"
PROVISIONING = ROOT / "provisioning"
