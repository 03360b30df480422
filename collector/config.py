"""``otel-config.yaml`` → the components of one traces pipeline, validated.

The file has the OpenTelemetry Collector's shape: ``extensions`` / ``receivers`` /
``processors`` / ``exporters`` map component ids (``type`` or ``type/name``) to settings,
and ``service.pipelines.traces`` names which of them run, in order. ``${env:VAR}`` and
``${env:VAR:-default}`` are expanded before parsing. Each component's settings become its
module's ``Config`` dataclass; every mistake is a :class:`ConfigError` whose message is one
line saying what to fix.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from sessionlens.durations import Duration, parse_duration

KINDS = ("receivers", "processors", "exporters", "extensions")

REGISTRY: dict[str, dict[str, str]] = {
    "receivers": {"otlp": "sessionlens.collector.otlp_receiver"},
    "processors": {
        "batch": "sessionlens.processors.batch",
        "normalize": "sessionlens.processors.normalize",
        "autosession": "sessionlens.processors.autosession",
        "cost": "sessionlens.processors.cost",
    },
    "exporters": {"clickhouse": "sessionlens.collector.clickhouse_exporter"},
    "extensions": {
        "bearertokenauth": "sessionlens.collector.auth",
        "sessions_api": "sessionlens.collector.sessions_api",
    },
}
"""For each kind of component, its type name → the module implementing it (imported lazily)."""


class ConfigError(Exception):
    """The configuration cannot be used; the message (one line) says what to fix."""


@dataclass(slots=True)
class ComponentSpec:
    """One configured component: its id, module and parsed ``Config``."""

    id: str
    kind: str
    module: types.ModuleType
    config: Any


@dataclass(slots=True)
class CollectorConfig:
    """The traces pipeline, in order, plus the enabled extensions."""

    receivers: list[ComponentSpec] = field(default_factory=list)
    processors: list[ComponentSpec] = field(default_factory=list)
    exporter: ComponentSpec | None = None
    extensions: list[ComponentSpec] = field(default_factory=list)


# --- env expansion ----------------------------------------------------------------------

_ENV = re.compile(r"\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ: typing.Mapping[str, str] | None = None) -> str:
    """Replace ``${env:VAR}`` / ``${env:VAR:-default}``; ``$$`` is a literal ``$``.

    An unset variable without a default is an error (the Collector would silently use "").
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ConfigError(
                    f"environment variable {name} is not set: set it, "
                    f"or give a default as ${{env:{name}:-default}}"
                )
            return default
        return value

    return _ENV.sub(substitute, text)


# --- YAML mapping → Config dataclass ----------------------------------------------------


def build(cls: type, data: object, where: str) -> Any:
    """An instance of the dataclass ``cls`` from a YAML mapping (``None`` = all defaults).

    Unknown keys and values of the wrong type raise :class:`ConfigError` naming ``where``.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in data.items():
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {valid}")
        values[key] = _convert(hints[key], value, f"{where}.{key}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _convert(hint: Any, value: object, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        hint = next(o for o in options if o is not type(None))
        origin = typing.get_origin(hint)
        if value is None and type(None) in options:
            # As in the Collector, a present but empty section (``grpc:``) means defaults.
            return build(hint, {}, where) if dataclasses.is_dataclass(hint) else None
    if hint is Duration:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin in (dict, typing.Mapping) or hint is dict:
        if isinstance(value, dict):
            key_type, value_type = typing.get_args(hint) or (Any, Any)
            return {
                # Keys stay out of messages: they may be secrets (bearer tokens).
                _convert(key_type, k, f"{where} key"): _convert(value_type, v, f"{where} value")
                for k, v in value.items()
            }
    elif origin in (list, tuple) or hint in (list, tuple):
        if isinstance(value, list):
            (item_type, *_) = typing.get_args(hint) or (Any,)
            return [_convert(item_type, v, f"{where}[{i}]") for i, v in enumerate(value)]
    else:
        return value
    expected = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{where}: expected {expected}, got {_kind(value)} {value!r}")


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


# --- the whole file ---------------------------------------------------------------------


def load(path: str, environ: typing.Mapping[str, str] | None = None) -> CollectorConfig:
    """Read, expand and validate a collector config file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    return parse(text, environ, source=path)


def parse(
    text: str, environ: typing.Mapping[str, str] | None = None, source: str = "config"
) -> CollectorConfig:
    """Validate a config given as YAML text (see :func:`load`)."""
    try:
        document = yaml.safe_load(expand_env(text, environ))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with {', '.join(KINDS)} and service")
    unknown = set(document) - set(KINDS) - {"service"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown section {sorted(unknown)[0]!r}; valid: {', '.join(KINDS)}, service"
        )
    service = document.get("service") or {}
    if not isinstance(service, dict):
        raise ConfigError(f"{source}: service must be a mapping")
    unknown = set(service) - {"extensions", "pipelines", "telemetry"}
    if unknown:
        raise ConfigError(
            f"service: unknown key {sorted(unknown)[0]!r}; valid keys: extensions, pipelines, telemetry"
        )
    pipelines = service.get("pipelines") or {}
    if not isinstance(pipelines, dict) or set(pipelines) - {"traces"}:
        others = sorted(set(pipelines) - {"traces"}) if isinstance(pipelines, dict) else []
        raise ConfigError(
            "service.pipelines: only a 'traces' pipeline is supported"
            + (f", not {others[0]!r}" if others else "")
        )
    traces = pipelines.get("traces")
    if not isinstance(traces, dict):
        raise ConfigError("service.pipelines.traces is missing: name its receivers, processors and exporters")
    unknown = set(traces) - {"receivers", "processors", "exporters"}
    if unknown:
        raise ConfigError(
            f"service.pipelines.traces: unknown key {sorted(unknown)[0]!r}; "
            "valid keys: receivers, processors, exporters"
        )

    def specs(kind: str, ids: object, where: str) -> list[ComponentSpec]:
        ids = ids or []
        if not isinstance(ids, list):
            raise ConfigError(f"{where}: expected a list of component ids")
        section = document.get(kind) or {}
        result = []
        for component_id in ids:
            if not isinstance(component_id, str) or component_id not in section:
                defined = ", ".join(map(str, section)) or "none"
                raise ConfigError(
                    f"{where} names {component_id!r}, which is not defined under {kind} "
                    f"(defined: {defined})"
                )
            result.append(_component(kind, component_id, section[component_id]))
        return result

    for kind in KINDS:
        if not isinstance(document.get(kind) or {}, dict):
            raise ConfigError(f"{kind}: expected a mapping of component ids to settings")

    config = CollectorConfig(
        receivers=specs("receivers", traces.get("receivers"), "service.pipelines.traces.receivers"),
        processors=specs("processors", traces.get("processors"), "service.pipelines.traces.processors"),
        extensions=specs("extensions", service.get("extensions"), "service.extensions"),
    )
    exporters = specs("exporters", traces.get("exporters"), "service.pipelines.traces.exporters")
    if not config.receivers:
        raise ConfigError("service.pipelines.traces.receivers is empty: add otlp")
    if len(exporters) != 1:
        raise ConfigError(
            f"service.pipelines.traces.exporters must name exactly one exporter, not {len(exporters)}"
        )
    config.exporter = exporters[0]
    return config


def _component(kind: str, component_id: str, settings: object) -> ComponentSpec:
    type_name = component_id.split("/", 1)[0]
    module_path = REGISTRY[kind].get(type_name)
    if module_path is None:
        known = ", ".join(sorted(REGISTRY[kind]))
        raise ConfigError(f"{kind}.{component_id}: unknown type {type_name!r}; known {kind}: {known}")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ConfigError(
            f"{kind}.{component_id}: component {type_name!r} is not available ({exc})"
        ) from None
    return ComponentSpec(component_id, kind, module, build(module.Config, settings, f"{kind}.{component_id}"))
