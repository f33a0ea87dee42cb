"""Third-party log lines that mislead users, dropped in every process that runs project code.

bitsandbytes 0.50 warns when it is imported on a CPU with AVX512-BF16 ("Failed to load CPU
gemm_4bit_forward from kernels-community: No module named 'kernels'"): its optional 4-bit CPU
kernel comes from the hub through the `kernels` package. peft imports bitsandbytes, so every
run printed it, also the default one, which has no quantized layer. A 4-bit run on such a CPU
logs its own line instead (`utils.modeling.loader`), where it applies.

peft 0.21 reads `model.is_gradient_checkpointing` when it wraps a model, which transformers 5
deprecates with a FutureWarning in every run: a note between the two libraries, not for users.
"""

from __future__ import annotations

import logging
import warnings

BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_KERNELS_WARNING = "Failed to load CPU gemm_4bit_forward from kernels-community"
PEFT_CHECKPOINTING_WARNING = r".*is_gradient_checkpointing.* is deprecated"


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
