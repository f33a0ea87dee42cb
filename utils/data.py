"""Load ViGGO-style splits from a local folder or the Hugging Face hub into plain rows.

Rows come out in one shape whatever the source: `{"input", "target", "references"}`, where
`input`/`target` depend on the task (data_to_text: MR -> sentence; text_to_mr: the reverse).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

SPLITS = ("train", "validation", "test")
GEM_COLUMNS = ("meaning_representation", "target")
# The original ViGGO CSVs use these names; map them to GEM's.
CSV_ALIASES = {"mr": "meaning_representation", "ref": "target"}
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """A data problem a user can fix: the message names the file, split or column."""


def find_split_file(data_dir: Path, split: str) -> Path:
    candidates = [data_dir / f"{split}{s}" for s in FILE_SUFFIXES]
    candidates += [data_dir / f"viggo-{split}{s}" for s in FILE_SUFFIXES]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(
        f"data dir {data_dir} has no {split!r} split: expected one of "
        f"{', '.join(p.name for p in candidates[: len(FILE_SUFFIXES)])}"
    )


def _read_table(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        if path.suffix in (".jsonl", ".json"):
            frame = pd.read_json(path, lines=path.suffix == ".jsonl", dtype=False)
        elif path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            frame = pd.read_parquet(path)
    except Exception as e:  # pandas raises many types for unreadable files
        raise DataError(f"cannot read {path}: {e}") from e
    frame = frame.rename(columns={k: v for k, v in CSV_ALIASES.items() if k in frame.columns})
    return frame.to_dict("records")


def load_local_splits(data_dir: Path | str) -> dict[str, list[dict[str, Any]]]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data dir not found: {data_dir}")
    return {split: _read_table(find_split_file(data_dir, split)) for split in SPLITS}


def load_hub_splits(name: str) -> dict[str, list[dict[str, Any]]]:
    """The real hub path (a user's machine has the hub); offline it fails with a clear hint."""
    try:
        from datasets import load_dataset

        ds = load_dataset(name)
    except Exception as e:  # network errors surface as many exception types
        raise DataError(
            f"could not load dataset {name!r} from the Hugging Face hub ({type(e).__name__}); "
            "pass --data-dir PATH to a folder with train/validation/test files"
        ) from e
    missing = [s for s in SPLITS if s not in ds]
    if missing:
        raise DataError(f"hub dataset {name!r} lacks split(s) {missing}")
    return {split: [dict(r) for r in ds[split]] for split in SPLITS}


def to_task_rows(rows: list[dict[str, Any]], task: str, source: str) -> list[dict[str, Any]]:
    """Normalise raw GEM rows to `{input, target, references}` for `task`."""
    if not rows:
        raise DataError(f"{source} is empty")
    found = sorted(rows[0].keys())
    missing = [c for c in GEM_COLUMNS if c not in rows[0]]
    if missing:
        raise DataError(f"{source} lacks column(s) {missing}; found columns {found}")
    out = []
    for row in rows:
        mr = str(row["meaning_representation"]).strip()
        sentence = str(row["target"]).strip()
        if task == "data_to_text":
            refs = row.get("references")
            refs = [str(r) for r in refs] if isinstance(refs, list | tuple) and refs else [sentence]
            out.append({"input": mr, "target": sentence, "references": refs})
        elif task == "text_to_mr":
            out.append({"input": sentence, "target": mr, "references": [mr]})
        else:
            raise DataError(f"unknown task {task!r}; valid: data_to_text, text_to_mr")
    return out


def load_splits(name: str, data_dir: str | None, task: str) -> dict[str, list[dict[str, Any]]]:
    if data_dir:
        raw, origin = load_local_splits(data_dir), str(data_dir)
    else:
        raw, origin = load_hub_splits(name), name
    logger.info("Loaded %s from %s", {k: len(v) for k, v in raw.items()}, origin)
    return {s: to_task_rows(rows, task, f"split {s!r} of {origin}") for s, rows in raw.items()}


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]
