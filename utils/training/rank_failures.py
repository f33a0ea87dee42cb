"""A launched rank that fails ends the launch with one line naming the rank and the cause.

Without this, every rank prints its traceback (the one that failed, and the others when they
lose their peer), then torch's elastic agent and accelerate's launcher print theirs. Here a
failing rank writes its traceback to a file and its cause (one line, with the time) to the
launch's report folder, prints that one line and exits 1. The launching process reads the
reports and raises `RankFailed` for the rank that failed first: the others failed because it
did. A rank killed without a word (the OOM killer) is named from the launcher's record.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from utils.core.errors import UserError, one_line

# Set by the launching process in the ranks' environment: where they report a failure.
REPORT_DIR_ENV = "LORA_RANK_FAILURES"
# Loggers of the launch machinery whose own failure reports repeat the ranks' (a traceback
# table per rank, "Accelerate training job failed").
_LAUNCHER_LOGGERS = (
    "torch.distributed.elastic",
    "torch.distributed.run",
    "zenml.integrations.huggingface.steps.accelerate_runner",
)


class RankFailed(UserError, RuntimeError):
    """A rank of a launched finetune failed; the message names the rank and the cause."""


@contextmanager
def report_rank_failure() -> Iterator[None]:
    """Around a launched rank's work: a failure is reported in one line, the rank exits 1.

    Outside a launch (no report folder in the environment) exceptions pass unchanged.
    """
    folder = os.environ.get(REPORT_DIR_ENV)
    if not folder:
        yield
        return
    try:
        yield
    except Exception as err:
        rank = os.environ.get("RANK", "0")
        where = Path(folder)
        where.mkdir(parents=True, exist_ok=True)
        trace = where / f"rank{rank}-traceback.txt"
        trace.write_text(traceback.format_exc())
        cause = one_line(err, with_type=True)
        report = {"time": time.time(), "rank": int(rank), "cause": cause, "traceback": str(trace)}
        (where / f"rank{rank}.json").write_text(json.dumps(report))
        print(f"rank {rank}: {cause}", file=sys.stderr, flush=True)
        sys.exit(1)


def first_failure(folder: Path) -> dict[str, Any] | None:
    """The report of the rank that failed first, or None if no rank reported."""
    reports = []
    for path in folder.glob("rank*.json"):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # killed while writing: another rank's report says more
    return min(reports, key=lambda r: r["time"]) if reports else None


def _launcher_failure(err: BaseException) -> str | None:
    """'rank N: exit code / signal' from torch's ChildFailedError behind the launcher's error."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ChildFailedError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    rank, failure = cause.get_first_failure()
    # A negative exit code is the signal that ended the process.
    how = (
        f"signal {failure.signal_name()}"
        if failure.exitcode < 0
        else f"exit code {failure.exitcode}"
    )
    return f"rank {rank} ended with {how} and no report (killed from outside, e.g. out of memory)"


@contextmanager
def ranks_report_failures() -> Iterator[None]:
    """Around a launch: the ranks report into a fresh folder; a failed launch raises
    `RankFailed` in one line. The launcher's own failure logs are silenced meanwhile."""
    folder = Path(tempfile.mkdtemp(prefix="finetune-ranks-"))
    saved_env = os.environ.get(REPORT_DIR_ENV)
    os.environ[REPORT_DIR_ENV] = str(folder)
    levels = {name: logging.getLogger(name).level for name in _LAUNCHER_LOGGERS}
    for name in _LAUNCHER_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    except RuntimeError as err:
        report = first_failure(folder)
        if report is not None:
            raise RankFailed(
                f"finetune failed on rank {report['rank']}: {report['cause']} "
                f"(traceback: {report['traceback']})"
            ) from None
        described = _launcher_failure(err)
        if described is None:
            raise
        raise RankFailed(f"finetune failed: {described}") from None
    else:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if saved_env is None:
            os.environ.pop(REPORT_DIR_ENV, None)
        else:
            os.environ[REPORT_DIR_ENV] = saved_env
