"""Command line entry point: `python run.py [COMMAND] [--config configs/smollm2_cpu.yaml ...]`.

Commands (default `run`): run the pipeline, score predictions, promote a version by hand,
generate with a version's adapter, export it merged, serve it over HTTP, sweep a grid of
configs, compare versions (the leaderboard). Each lives in `utils/cli/`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from utils import quiet_logs
from utils.cli import adapter_commands, compare, promote, run_command, score, serve, sweep
from utils.core.errors import UserError
from utils.core.onednn_caches import bound_onednn_caches

# Each command's entry point; the modules import torch and ZenML only when a command runs.
COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": run_command.main,
    "score": score.main,
    "promote": promote.main,
    "generate": adapter_commands.generate_main,
    "export": adapter_commands.export_main,
    "serve": serve.main,
    "sweep": sweep.main,
    "compare": compare.main,
}


def setup_logging() -> None:
    # Levels only: ZenML's root handler prints the records (a second handler would double them).
    for name in ("run", "utils", "steps", "pipelines"):
        logging.getLogger(name).setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    # Before any step's first matmul: every step of the run (and each evaluation) then
    # keeps at most a bounded set of CPU kernels (utils.core.onednn_caches).
    bound_onednn_caches()
    debug = "--debug" in argv
    if debug:
        os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "DEBUG")
    else:
        quiet_logs.without_user_error_tracebacks()
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    try:
        return COMMANDS[command](argv)
    except UserError as e:
        if debug:
            raise
        # One line, whatever the message: scripts and people read the last line.
        print("error: " + " ".join(str(e).split("\n")), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        # Checkpoints written so far stay; the same command continues from the last one.
        print("interrupted: run the same command again to resume training", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
