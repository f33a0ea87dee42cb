"""Whether code runs inside a ZenML step (Accelerate's children do not)."""

from __future__ import annotations


def in_zenml_step() -> bool:
    try:
        from zenml import get_step_context

        get_step_context()
        return True
    except (RuntimeError, ImportError):
        return False
