"""bitsandbytes' kernels warning is dropped wherever project code runs; other lines stay."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from utils import quiet_logs

ROOT = Path(__file__).resolve().parents[2]


def test_importing_peft_after_the_project_prints_no_kernels_warning() -> None:
    # A fresh interpreter: bitsandbytes warns once, when it is first imported.
    done = subprocess.run(
        [sys.executable, "-c", "import utils, peft, bitsandbytes"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kernels-community" not in done.stderr + done.stdout


def test_peft_wrapping_a_model_warns_nothing_about_checkpointing(tmp_path: Path) -> None:
    code = (
        "import warnings, utils\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "from peft import LoraConfig, get_peft_model\n"
        "m = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64,"
        " num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, vocab_size=64))\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('default')\n"
        "    utils.quiet_logs.install()\n"
        "    get_peft_model(m, LoraConfig(r=2, target_modules=['q_proj']))\n"
        "print([str(w.message) for w in seen if 'checkpointing' in str(w.message)])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_filter_drops_that_warning_only(caplog) -> None:
    quiet_logs.install()
    quiet_logs.install()  # idempotent
    logger = logging.getLogger(quiet_logs.BNB_CPU_LOGGER)
    assert sum(isinstance(f, quiet_logs.DropMessages) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=quiet_logs.BNB_CPU_LOGGER):
        logger.warning(quiet_logs.BNB_KERNELS_WARNING + ": %s. Please ...", "No module 'kernels'")
        logger.warning("some other bitsandbytes warning")
    assert [r.getMessage() for r in caplog.records] == ["some other bitsandbytes warning"]


def test_a_failed_step_logs_a_user_error_without_its_traceback(caplog) -> None:
    from utils.core.errors import UserError

    quiet_logs.without_user_error_tracebacks()
    quiet_logs.without_user_error_tracebacks()  # idempotent
    name = quiet_logs.ZENML_STEP_FAILURE_LOGGERS[0]
    logger = logging.getLogger(name)
    assert sum(isinstance(f, quiet_logs.DropUserErrorTracebacks) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=name):
        for err in (UserError("finetune failed on rank 1"), KeyError("a bug")):
            try:
                raise err
            except Exception:
                logger.exception("Step %s failed.", "finetune")
    user, bug = caplog.records
    assert user.getMessage() == bug.getMessage() == "Step finetune failed."
    assert user.exc_info is None  # the command prints the error's one line
    assert bug.exc_info is not None and bug.exc_info[0] is KeyError  # a bug keeps its trace
