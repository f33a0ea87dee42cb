"""metrics/viggo as a Hugging Face `evaluate` module: loads offline from the repository and
reports `run.py score`'s numbers for the same rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, viggo_rows

NOTEBOOK = """
import json, sys, evaluate
task, path = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(path)]
metric = evaluate.load({module!r}, task)
print(json.dumps(metric.compute(
    inputs=[r["input"] for r in rows],
    predictions=[r["prediction"] for r in rows],
    references=[r["references"] for r in rows],
), sort_keys=True))
"""


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_EVALUATE_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["HF_MODULES_CACHE"] = str(tmp_path / "hf-modules")
    env.pop("PYTHONPATH", None)  # a notebook elsewhere: the module finds the project itself
    return env


def _rows(task: str) -> list[dict]:
    """Test rows grouped by MR, several references each, with outputs of other rows mixed in."""
    by_mr: dict[str, list[str]] = {}
    for r in viggo_rows("test")[:90]:
        by_mr.setdefault(r["meaning_representation"], []).append(r["target"])
    mrs = list(by_mr)
    rows = []
    for i, mr in enumerate(mrs):
        refs = by_mr[mr]
        good = i % 3 != 0  # every third output is another MR's reference
        if task == "data_to_text":
            pred = refs[0] if good else by_mr[mrs[(i + 1) % len(mrs)]][0]
            rows.append({"input": mr, "prediction": pred, "references": refs})
        else:
            pred = mr if good else mrs[(i + 1) % len(mrs)]
            rows.append({"input": refs[0], "prediction": pred, "references": [mr]})
    return rows


def _both(tmp_path: Path, task: str) -> tuple[dict, dict]:
    path = tmp_path / f"{task}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(task)))
    env = _offline_env(tmp_path)
    module = str(ROOT / "metrics" / "viggo")
    notebook = subprocess.run(
        [sys.executable, "-c", NOTEBOOK.format(module=module), task, str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert notebook.returncode == 0, notebook.stderr[-3000:]
    cli = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "score", "--task", task, "--predictions", str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-3000:]
    last = notebook.stdout.strip().splitlines()[-1]
    return json.loads(last), json.loads(cli.stdout.strip().splitlines()[-1])


def test_data_to_text_numbers_are_run_py_scores(tmp_path: Path) -> None:
    module, cli = _both(tmp_path, "data_to_text")
    assert module == cli
    # Real figures, not a degenerate case: some rows wrong, multi-reference grouping at work.
    assert 0.0 < module["ser"] < 1.0 and 0.3 < module["rougeL"] < 1.0
    assert module["num_rows"] > module["num_distinct_inputs"] > 1


def test_text_to_mr_numbers_are_run_py_scores(tmp_path: Path) -> None:
    module, cli = _both(tmp_path, "text_to_mr")
    assert module == cli
    assert 0.5 < module["exact_match"] < 1.0 and 0.5 < module["slot_f1"] < 1.0


def test_relative_path_from_the_project_root(tmp_path: Path) -> None:
    code = (
        "import evaluate; print(evaluate.load('metrics/viggo').compute(inputs=["
        "'inform(name[Portal 2])'], predictions=['Portal 2.'], references=['Portal 2.']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_offline_env(tmp_path),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'ser': 0.0" in done.stdout and "'rougeL': 1.0" in done.stdout
