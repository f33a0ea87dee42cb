"""Load ViGGO-style (or a user's own) splits from a local folder or the hub into plain rows.

Rows come out in one shape whatever the source: `{"input", "target", "references"}`, where
`input`/`target` depend on the task (data_to_text: MR -> sentence; text_to_mr: the reverse;
text_to_text: whatever `dataset.columns` names). Rows that cannot be used (empty input or
target, an unparsable ViGGO MR) are skipped and counted; too many of them stop the run.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from utils.config import ColumnMap, DatasetSection, SplitRatio

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
    hint = "" if split == "train" else "; or set dataset.split_ratio to carve it out of train"
    raise DataError(
        f"data dir {data_dir} has no {split!r} split: expected one of "
        f"{', '.join(p.name for p in candidates[: len(FILE_SUFFIXES)])}{hint}"
    )


def _split_file_or_none(data_dir: Path, split: str) -> Path | None:
    try:
        return find_split_file(data_dir, split)
    except DataError:
        return None


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


def load_local_splits(
    data_dir: Path | str, required: tuple[str, ...] = SPLITS
) -> dict[str, list[dict[str, Any]]]:
    """Every split file found; a missing `required` split is an error."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        what = "is a file, not a folder" if data_dir.exists() else "not found"
        raise DataError(f"data dir {what}: {data_dir}")
    out = {}
    for split in SPLITS:
        path = find_split_file(data_dir, split) if split in required else None
        path = path or _split_file_or_none(data_dir, split)
        if path is not None:
            out[split] = _read_table(path)
    return out


def load_hub_splits(
    name: str, required: tuple[str, ...] = SPLITS
) -> dict[str, list[dict[str, Any]]]:
    """The real hub path (a user's machine has the hub); offline it fails with a clear hint."""
    try:
        from datasets import load_dataset

        ds = load_dataset(name)
    except Exception as e:  # network errors surface as many exception types
        raise DataError(
            f"could not load dataset {name!r} from the Hugging Face hub ({type(e).__name__}); "
            "pass --data-dir PATH to a folder with train/validation/test files"
        ) from e
    missing = [s for s in required if s not in ds]
    if missing:
        raise DataError(
            f"hub dataset {name!r} lacks split(s) {missing} (has {sorted(ds)}); "
            "set dataset.split_ratio to carve validation/test out of train"
        )
    return {split: [dict(r) for r in ds[split]] for split in SPLITS if split in ds}


def carve_missing_splits(
    raw: dict[str, list[dict[str, Any]]], ratio: SplitRatio, origin: str
) -> dict[str, list[dict[str, Any]]]:
    """Seeded, deterministic validation/test splits taken out of train where missing.

    Rows are drawn independently, so rows sharing an input may land in different splits
    (ViGGO ships its own splits, grouped by MR; this is for datasets that have none).
    """
    missing = [s for s in ("validation", "test") if s not in raw]
    if not missing:
        return raw
    train = raw.get("train") or []
    counts = {s: round(len(train) * getattr(ratio, s)) for s in missing}
    for split, n in counts.items():
        if n == 0:
            raise DataError(
                f"dataset.split_ratio.{split}={getattr(ratio, split)} of {len(train)} train "
                f"rows in {origin} is 0 rows: raise it or provide a {split} split"
            )
    if sum(counts.values()) >= len(train):
        raise DataError(f"{origin}: split_ratio leaves no train rows out of {len(train)}")
    order = list(range(len(train)))
    random.Random(ratio.seed).shuffle(order)
    out = dict(raw)
    start = 0
    for split in missing:
        out[split] = [train[i] for i in sorted(order[start : start + counts[split]])]
        start += counts[split]
    out["train"] = [train[i] for i in sorted(order[start:])]
    logger.info("Carved %s out of %d train rows of %s", counts, len(train), origin)
    return out


@dataclass(frozen=True)
class ColumnRoles:
    """Source columns for one task; `mr` names the role ('input'/'target') holding a ViGGO
    MR, which is parsed to find malformed rows."""

    input: str
    target: str
    references: str | None = None
    mr: str | None = None


def column_roles(task: str, columns: ColumnMap | None = None) -> ColumnRoles:
    mr = {"data_to_text": "input", "text_to_mr": "target"}.get(task)
    if columns is not None:
        return ColumnRoles(columns.input, columns.target, columns.references, mr)
    mr_column, text_column = GEM_COLUMNS
    if task == "data_to_text":
        return ColumnRoles(mr_column, text_column, "references", mr)
    if task == "text_to_mr":
        return ColumnRoles(text_column, mr_column, None, mr)
    if task == "text_to_text":
        return ColumnRoles("input", "target")
    raise DataError(f"unknown task {task!r}; valid: data_to_text, text_to_mr, text_to_text")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _references(value: Any, target: str) -> list[str]:
    if isinstance(value, str) and value.strip():
        return [value.strip()]
    if hasattr(value, "tolist"):  # parquet list columns arrive as numpy arrays
        value = value.tolist()
    if isinstance(value, list | tuple) and value:
        return [str(r) for r in value]
    return [target]


def _row_problem(inp: str, target: str, roles: ColumnRoles) -> str | None:
    from utils.viggo import MRParseError, parse_mr

    if not inp:
        return f"empty input column {roles.input!r}"
    if not target:
        return f"empty target column {roles.target!r}"
    if roles.mr is not None:
        try:
            parse_mr(inp if roles.mr == "input" else target)
        except MRParseError as e:
            return f"malformed meaning representation: {e}"
    return None


@dataclass
class TaskRows:
    rows: list[dict[str, Any]]
    # (1-based row number in the split, what is wrong), for every skipped row.
    skipped: list[tuple[int, str]] = field(default_factory=list)


def normalize_rows(
    rows: list[dict[str, Any]],
    task: str,
    source: str,
    columns: ColumnMap | None = None,
    max_malformed_fraction: float = 0.0,
) -> TaskRows:
    """Raw rows -> `{input, target, references}` for `task`, skipping unusable rows."""
    if not rows:
        raise DataError(f"{source} is empty: every split needs at least one row")
    roles = column_roles(task, columns)
    found = sorted(str(k) for k in rows[0])
    needed = [roles.input, roles.target] + (
        [roles.references] if columns and roles.references else []
    )
    missing = [c for c in needed if c not in rows[0]]
    if missing:
        raise DataError(
            f"{source} lacks column(s) {missing}; found columns {found}; name yours with "
            "dataset.columns, e.g. {input: question, target: answer}"
        )
    out = TaskRows([])
    for n, row in enumerate(rows, 1):
        inp, target = _text(row[roles.input]), _text(row[roles.target])
        problem = _row_problem(inp, target, roles)
        if problem is not None:
            out.skipped.append((n, problem))
            continue
        refs = _references(row.get(roles.references) if roles.references else None, target)
        out.rows.append({"input": inp, "target": target, "references": refs})
    bad = len(out.skipped)
    if bad and (not out.rows or bad / len(rows) > max_malformed_fraction):
        first_n, first_why = out.skipped[0]
        raise DataError(
            f"{source}: {bad} of {len(rows)} rows are malformed ({bad / len(rows):.1%}, more "
            f"than dataset.max_malformed_fraction={max_malformed_fraction}); first, row "
            f"{first_n}: {first_why}. Check dataset.task and dataset.columns"
        )
    if bad:
        logger.warning(
            "%s: skipped %d malformed row(s) of %d, e.g. row %d: %s",
            source,
            bad,
            len(rows),
            *out.skipped[0],
        )
    return out


def to_task_rows(rows: list[dict[str, Any]], task: str, source: str) -> list[dict[str, Any]]:
    """Normalise raw GEM rows to `{input, target, references}` for `task` (no bad rows)."""
    return normalize_rows(rows, task, source).rows


def load_raw_splits(cfg: DatasetSection) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The three raw splits of a local folder or hub dataset, carving missing ones if asked."""
    required = SPLITS if cfg.split_ratio is None else ("train",)
    if cfg.data_dir:
        raw, origin = load_local_splits(cfg.data_dir, required), str(cfg.data_dir)
    else:
        raw, origin = load_hub_splits(cfg.name, required), cfg.name
    logger.info("Loaded %s from %s", {k: len(v) for k, v in raw.items()}, origin)
    if cfg.split_ratio is not None:
        raw = carve_missing_splits(raw, cfg.split_ratio, origin)
    return raw, origin


def load_task_splits(cfg: DatasetSection) -> dict[str, TaskRows]:
    """What preflight checks and prepare_data trains on: the same rows, the same skips."""
    raw, origin = load_raw_splits(cfg)
    return {
        split: normalize_rows(
            raw[split],
            cfg.task,
            f"split {split!r} of {origin}",
            cfg.columns,
            cfg.max_malformed_fraction,
        )
        for split in SPLITS
    }


def load_splits(name: str, data_dir: str | None, task: str) -> dict[str, list[dict[str, Any]]]:
    from utils.config import DatasetSection

    cfg = DatasetSection(name=name, data_dir=data_dir, task=task)  # type: ignore[arg-type]
    return {split: loaded.rows for split, loaded in load_task_splits(cfg).items()}


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]
