"""Third-party log lines that mislead users, dropped in every process that runs project code.

bitsandbytes 0.50 warns when it is imported on a CPU with AVX512-BF16 ("Failed to load CPU
gemm_4bit_forward from kernels-community: No module named 'kernels'"): its optional 4-bit CPU
kernel comes from the hub through the `kernels` package. peft imports bitsandbytes, so every
run printed it, also the default one, which has no quantized layer. A 4-bit run on such a CPU
logs its own line instead (`utils.modeling.loader`), where it applies.

peft 0.21 reads `model.is_gradient_checkpointing` when it wraps a model, which transformers 5
deprecates with a FutureWarning in every run: a note between the two libraries, not for users.

ZenML logs every failed step with its traceback before it re-raises the step's exception. For
a `UserError` (bad data, a failed rank, a missing version) that traceback is a wall in front
of the one line `run.py` prints: `without_user_error_tracebacks` keeps ZenML's line and drops
the traceback (`--debug` keeps it).
"""

from __future__ import annotations

import logging
import warnings

from utils.core.errors import UserError

BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNELS_WARNING = "Failed to load CPU gemm_4bit_forward from kernels-community"
PEFT_CHECKPOINTING_WARNING = r".*is_gradient_checkpointing.* is deprecated"
# The loggers that print a failed step's traceback (zenml 0.98: "Step %s failed.", and the
# step runner's own report of the exception).
ZENML_STEP_FAILURE_LOGGERS = (
    "zenml.orchestrators.local.local_orchestrator",
    "zenml.orchestrators.step_launcher",
    "zenml.orchestrators.step_runner",
    "zenml.orchestrators.dag_runner",
)


class DropMessages(logging.Filter):
    """Drops a logger's records whose message starts with one of `prefixes`."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def install() -> None:
    """Idempotent: the filter sits on bitsandbytes' logger before bitsandbytes exists."""
    logger = logging.getLogger(BNB_CPU_LOGGER)
    if not any(isinstance(f, DropMessages) for f in logger.filters):
        logger.addFilter(DropMessages(BNB_KERNELS_WARNING))
    warnings.filterwarnings("ignore", PEFT_CHECKPOINTING_WARNING, FutureWarning)


class DropUserErrorTracebacks(logging.Filter):
    """Keeps a record but drops its traceback when the exception is a `UserError`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            record.exc_info = None
            record.exc_text = None
        return True


def without_user_error_tracebacks() -> None:
    """Idempotent: a failed step whose exception is a `UserError` is logged without its
    traceback; the command prints the error's one line."""
    for name in ZENML_STEP_FAILURE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropUserErrorTracebacks) for f in logger.filters):
            logger.addFilter(DropUserErrorTracebacks())
