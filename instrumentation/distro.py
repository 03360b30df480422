"""Zero-code setup for ``opentelemetry-instrument``: the SDK exports traces over OTLP/gRPC.

``SessionLensDistro`` sets the defaults (traces to OTLP/gRPC on localhost:4317, no metrics
or logs exporters: the sessionlens collector receives traces), each only when the
environment does not already choose; ``SessionLensConfigurator`` then builds the SDK from
the environment exactly as the OpenTelemetry SDK's own auto-configuration does.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.environment_variables import OTEL_LOGS_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL

DEFAULTS = {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
}


class SessionLensDistro(BaseDistro):  # type: ignore[misc]
    """Defaults for exporting to the sessionlens collector; explicit environment wins."""

    def _configure(self, **kwargs: Any) -> None:
        for name, value in DEFAULTS.items():
            os.environ.setdefault(name, value)


class SessionLensConfigurator(_OTelSDKConfigurator):
    """The SDK's environment-driven configuration (tracer provider, batch processor, exporter)."""
