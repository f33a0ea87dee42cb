"""`run.py score`: score any system's outputs with this project's metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from utils.core.errors import UserError
from utils.core.tasks import TASKS, TaskName


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py score",
        description="Score any system's outputs; prints the metrics as one JSON object.",
    )
    p.add_argument("--task", choices=list(TASKS), default=TaskName.DATA_TO_TEXT.value)
    p.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="JSONL rows with input, reference or references, prediction",
    )
    p.add_argument("--debug", action="store_true")
    return p


def read_prediction_rows(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    """(inputs, predictions, references per row); malformed rows name file and line."""
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    inputs, predictions, references = [], [], []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        refs = row.get("references") or ([row["reference"]] if "reference" in row else None)
        if "input" not in row or "prediction" not in row or not refs:
            found = sorted(row)
            raise UserError(
                f"{path}:{n}: need keys input, prediction and reference or references; "
                f"found {found}"
            )
        inputs.append(str(row["input"]))
        predictions.append(str(row["prediction"] or ""))
        references.append([refs] if isinstance(refs, str) else [str(r) for r in refs])
    if not inputs:
        raise UserError(f"{path} has no rows")
    return inputs, predictions, references


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from utils.metrics.task_metrics import score_rows
    from utils.viggo import MRParseError

    inputs, predictions, references = read_prediction_rows(args.predictions)
    try:
        metrics = score_rows(args.task, inputs, predictions, references)
    except MRParseError as e:
        raise UserError(f"{args.predictions}: malformed meaning representation: {e}") from None
    print(json.dumps(metrics, sort_keys=True))
    return 0
