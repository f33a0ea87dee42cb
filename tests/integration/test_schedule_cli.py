"""`run.py --schedule / --schedule-every`: refused on the local stack before anything runs."""

from pathlib import Path

import pytest

import run


def _main(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    code = run.main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def _nothing_ran() -> None:
    from zenml.client import Client

    assert len(Client().list_pipeline_runs()) == 0
    assert len(Client().list_models()) == 0
    assert len(Client().list_schedules()) == 0


@pytest.mark.parametrize("flag", [["--schedule", "0 3 * * 1"], ["--schedule-every", "6h"]])
def test_local_stack_cannot_schedule(
    zenml_env: Path, viggo_subset: Path, capsys: pytest.CaptureFixture, flag: list[str]
) -> None:
    code, err = _main(["--data-dir", str(viggo_subset), *flag], capsys)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("error: the active stack's orchestrator ('local') cannot run")
    for flavor in ("kubernetes", "vertex", "sagemaker", "airflow", "kubeflow"):
        assert flavor in err[0]
    _nothing_ran()


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--schedule", "0 3 * *"], "4 fields; expected 5"),
        (["--schedule", "61 * * * *"], "minute: 61"),
        (["--schedule-every", "6 hours"], "interval '6 hours'"),
        (["--schedule-every", "10s"], "shorter than a minute"),
    ],
)
def test_malformed_schedules_fail_first(
    zenml_env: Path, capsys: pytest.CaptureFixture, flag: list[str], message: str
) -> None:
    code, err = _main(["--data-dir", "/does/not/exist", *flag], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    _nothing_ran()


def test_cron_and_interval_are_exclusive(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--schedule", "0 3 * * 1", "--schedule-every", "6h"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_scheduled_runs_never_replay_the_cache(capsys: pytest.CaptureFixture) -> None:
    import yaml

    assert run.main(["--dry-run"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["enable_cache"] is True
    assert run.main(["--dry-run", "--schedule-every", "1d"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["enable_cache"] is False
