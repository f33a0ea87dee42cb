"""The ViGGO splits shipped with the project (`data/viggo/`), checked against their sha256.

They are the dataset authors' original CSVs (columns `mr`, `ref`), the same rows as the
hub's `GEM/viggo`, so a run needs no network for its data. A file that does not match its
checksum (edited, truncated, a Git LFS pointer) stops the run with one line naming it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils.core.names import SPLITS, VIGGO_EMBEDDED_DIR
from utils.data.errors import DataError

if TYPE_CHECKING:
    from utils.viggo.mr_schema import MRSchema

EMBEDDED_DIR = VIGGO_EMBEDDED_DIR
# Checksums of the original release (data/viggo/LICENSE.md says where the files come from).
SHA256 = {
    "train": "bff4ce77f71feb6790b4f5b62150027573423ebd8673cc7b2517e0f53c616505",
    "validation": "f3b9601448fb886589cb8adf708050f2b2a0654eb8c51ac3e2005eb88768ea14",
    "test": "e052ec0ef0896bb965e305083d04087d177937c13a643f2f2346f906ef3f2be8",
}


def embedded_file(split: str) -> Path:
    return EMBEDDED_DIR / f"viggo-{split}.csv"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified_embedded_dir() -> Path:
    """`data/viggo/`, once every split file in it has its expected sha256."""
    for split in SPLITS:
        path = embedded_file(split)
        if not path.is_file():
            raise DataError(
                f"embedded ViGGO file {path} is missing: restore it with `git checkout -- "
                f"{path.relative_to(EMBEDDED_DIR.parents[1])}`, or pass --data-dir PATH"
            )
        got = file_sha256(path)
        if got != SHA256[split]:
            raise DataError(
                f"embedded ViGGO file {path} has sha256 {got}, expected {SHA256[split]}: "
                "the file was changed; restore it with git, or pass --data-dir PATH "
                "for data of your own"
            )
    return EMBEDDED_DIR


def gem_rows(split: str) -> list[dict[str, Any]]:
    """One embedded split in the layout `datasets.load_dataset("GEM/viggo")` returns:
    `gem_id`, `meaning_representation`, `target`, `references` (a one-item list)."""
    import pandas as pd

    verified_embedded_dir()
    frame = pd.read_csv(embedded_file(split), dtype=str, keep_default_na=False)
    return [
        {
            "gem_id": f"viggo-{split}-{i}",
            "meaning_representation": mr,
            "target": ref,
            "references": [ref],
        }
        for i, (mr, ref) in enumerate(zip(frame["mr"], frame["ref"], strict=True))
    ]


@functools.cache
def viggo_mr_schema() -> MRSchema:
    """The MR schema of the embedded ViGGO training split (`data/viggo/`)."""
    from utils.viggo.mr_schema import learn_mr_schema

    return learn_mr_schema(row["meaning_representation"] for row in gem_rows("train"))
