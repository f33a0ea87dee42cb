"""`python run.py score` end to end, as a user runs it (a subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, viggo_rows


def _score(tmp_path: Path, rows: list, task: str = "data_to_text") -> subprocess.CompletedProcess:
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "score", "--task", task, "--predictions", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


def test_references_score_perfectly_against_themselves(tmp_path: Path) -> None:
    test = viggo_rows("test")[:30]
    rows = [
        {"input": r["meaning_representation"], "reference": r["target"], "prediction": r["target"]}
        for r in test
    ]
    proc = _score(tmp_path, rows)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert metrics["rougeL"] == pytest.approx(1.0)
    assert metrics["bleu"] == pytest.approx(1.0)
    assert metrics["ser"] < 0.05
    assert metrics["num_rows"] == 30
    assert metrics["num_distinct_inputs"] == len({r["input"] for r in rows})


def test_multi_reference_rows_and_wrong_outputs(tmp_path: Path) -> None:
    mr = "inform(name[Little Big Adventure], rating[average], platforms[PlayStation])"
    rows = [
        {
            "input": mr,
            "references": [
                "Little Big Adventure is an average PlayStation game.",
                "On PlayStation, Little Big Adventure is rated average.",
            ],
            "prediction": "Halo is a shooter.",
        }
    ]
    proc = _score(tmp_path, rows)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["num_rows"] == 2 and metrics["num_distinct_inputs"] == 1
    assert metrics["ser"] >= 0.6 and metrics["rougeL"] < 0.3


def test_text_to_mr_exact_match(tmp_path: Path) -> None:
    test = viggo_rows("test")[:10]
    rows = [
        {
            "input": r["target"],
            "reference": r["meaning_representation"],
            "prediction": r["meaning_representation"],
        }
        for r in test
    ]
    rows[0]["prediction"] = "inform(name[Nope])"
    proc = _score(tmp_path, rows, task="text_to_mr")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["exact_match"] == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("rows", "phrase"),
    [
        ([{"input": "inform(name[A])", "prediction": "A."}], "found ['input', 'prediction']"),
        ([["not", "a", "dict"]], "expected a JSON object"),
        (
            [{"input": "inform(name[A]", "reference": "A.", "prediction": "A."}],
            "malformed meaning representation",
        ),
        ([], "has no rows"),
    ],
)
def test_bad_prediction_files_fail_with_one_line(tmp_path: Path, rows, phrase) -> None:
    proc = _score(tmp_path, rows)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert phrase in lines[-1]
