"""A failing rank's one-line report, and the launch's choice of the rank that failed first."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from utils.training.rank_failures import (
    REPORT_DIR_ENV,
    RankFailed,
    first_failure,
    ranks_report_failures,
    report_rank_failure,
)


def test_outside_a_launch_exceptions_pass_unchanged(monkeypatch) -> None:
    monkeypatch.delenv(REPORT_DIR_ENV, raising=False)
    with pytest.raises(KeyError, match="boom"), report_rank_failure():
        raise KeyError("boom")


def test_a_failing_rank_reports_one_line_and_exits_1(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(REPORT_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(SystemExit) as exited, report_rank_failure():
        raise ValueError("bad\nbatch")
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == ["rank 3: ValueError: bad batch"]
    report = json.loads((tmp_path / "rank3.json").read_text())
    assert report["rank"] == 3 and report["cause"] == "ValueError: bad batch"
    assert "Traceback" in Path(report["traceback"]).read_text()


def test_the_rank_that_failed_first_is_named(tmp_path: Path) -> None:
    now = time.time()
    for rank, delay, cause in ((0, 0.5, "lost its peer"), (1, 0.0, "the cause")):
        report = {"time": now + delay, "rank": rank, "cause": cause, "traceback": "t"}
        (tmp_path / f"rank{rank}.json").write_text(json.dumps(report))
    (tmp_path / "rank2.json").write_text("{half")  # killed while writing
    assert first_failure(tmp_path)["cause"] == "the cause"


def test_a_failed_launch_raises_one_line_for_the_first_failure(monkeypatch) -> None:
    monkeypatch.delenv(REPORT_DIR_ENV, raising=False)
    with pytest.raises(RankFailed) as raised, ranks_report_failures():
        folder = Path(os.environ[REPORT_DIR_ENV])
        report = {"time": 1.0, "rank": 1, "cause": "RuntimeError: x", "traceback": "/t"}
        (folder / "rank1.json").write_text(json.dumps(report))
        raise RuntimeError("Accelerate training job failed.")
    assert str(raised.value) == "finetune failed on rank 1: RuntimeError: x (traceback: /t)"
    assert raised.value.__cause__ is None and REPORT_DIR_ENV not in os.environ


def test_a_launch_that_succeeds_leaves_no_folder(monkeypatch) -> None:
    monkeypatch.delenv(REPORT_DIR_ENV, raising=False)
    with ranks_report_failures():
        folder = Path(os.environ[REPORT_DIR_ENV])
    assert not folder.exists()


def test_a_rank_killed_without_a_report_is_named_from_the_launcher(monkeypatch) -> None:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    monkeypatch.delenv(REPORT_DIR_ENV, raising=False)
    killed = ProcessFailure(local_rank=0, pid=1, exitcode=-9, error_file="<N/A>")
    with pytest.raises(RankFailed) as raised, ranks_report_failures():
        try:
            raise ChildFailedError("train.py", {0: killed})
        except ChildFailedError as err:
            raise RuntimeError("Accelerate training job failed.") from err
    assert str(raised.value) == (
        "finetune failed: rank 0 ended with signal SIGKILL and no report "
        "(killed from outside, e.g. out of memory)"
    )
