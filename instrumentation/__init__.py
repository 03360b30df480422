"""sessionlens.instrumentation: LLM calls as session-aware GenAI spans.

``SessionLensInstrumentor`` is loaded on first use, so ``import sessionlens`` (which needs
only the context module) does not import the OpenTelemetry SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionlens.instrumentation.instrumentor import SessionLensInstrumentor

__all__ = ["SessionLensInstrumentor"]


def __getattr__(name: str) -> Any:
    if name == "SessionLensInstrumentor":
        from sessionlens.instrumentation.instrumentor import SessionLensInstrumentor

        return SessionLensInstrumentor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
