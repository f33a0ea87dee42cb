"""Whether code runs inside a ZenML step (Accelerate's children do not), and each step's own
memory figures in its metadata."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from utils.core.freed_memory import release_freed_memory
from utils.core.names import STEP_MEMORY
from utils.core.peak_memory import StepMemory


def in_zenml_step() -> bool:
    try:
        from zenml import get_step_context

        get_step_context()
        return True
    except (RuntimeError, ImportError):
        return False


@contextmanager
def step_memory() -> Iterator[StepMemory]:
    """`with step_memory() as memory:` around a step's body: its peak memory (reset at the
    step's start) goes to the step's metadata as `step_memory` when the body returns, and
    what the body freed goes back to the system (the next step starts lower)."""
    with StepMemory() as memory:
        yield memory
    release_freed_memory()
    if in_zenml_step():
        from zenml import log_metadata

        log_metadata(metadata={STEP_MEMORY: memory.figures()})
