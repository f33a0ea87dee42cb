"""Raw splits from a local folder, the embedded ViGGO files or the hub, and seeded splits
carved out of train.

A local folder (`dataset.data_dir`, `--data-dir`) wins over `dataset.source`: `embedded`
(the default, `data/viggo/`, sha256-checked) or `hub` (`datasets.load_dataset(name)`).
A local folder holds `train`/`validation`/`test` as `.jsonl`, `.json`, `.csv` or `.parquet`
(ViGGO's own `viggo-<split>.csv` names work too). Rows come back as plain dicts, exactly as
the source has them; `utils.data.rows` turns them into task rows.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils.core.names import SPLITS
from utils.data.embedded import EMBEDDED_DIR, verified_embedded_dir
from utils.data.errors import DataError

if TYPE_CHECKING:
    from utils.config import DatasetSection, SplitRatio

# The original ViGGO CSVs use these names; map them to GEM's.
CSV_ALIASES = {"mr": "meaning_representation", "ref": "target"}
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

logger = logging.getLogger(__name__)


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
            "pass --data-dir PATH to a folder with train/validation/test files, or use "
            "dataset.source: embedded (the ViGGO files in data/viggo/)"
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


def local_data_dir(cfg: DatasetSection) -> Path | None:
    """The folder the splits are read from (a data dir, else the embedded files), or None for
    the hub. Checksums are not checked here: `load_raw_splits` does before reading."""
    if cfg.data_dir:
        return Path(cfg.data_dir)
    return EMBEDDED_DIR if cfg.source == "embedded" else None


def load_raw_splits(cfg: DatasetSection) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The three raw splits of a local folder, the embedded files or a hub dataset, carving
    missing ones if asked."""
    required = SPLITS if cfg.split_ratio is None else ("train",)
    if cfg.data_dir:
        raw, origin = load_local_splits(cfg.data_dir, required), str(cfg.data_dir)
    elif cfg.source == "embedded":
        folder = verified_embedded_dir()
        raw, origin = load_local_splits(folder, required), "the embedded ViGGO (data/viggo/)"
    else:
        raw, origin = load_hub_splits(cfg.name, required), cfg.name
    logger.info("Loaded %s from %s", {k: len(v) for k, v in raw.items()}, origin)
    if cfg.split_ratio is not None:
        raw = carve_missing_splits(raw, cfg.split_ratio, origin)
    return raw, origin
