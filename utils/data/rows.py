"""Raw rows -> task rows `{"input", "target", "references"}`, skipping unusable ones.

`input`/`target` depend on the task (data_to_text: MR -> sentence; text_to_mr: the reverse;
text_to_text: whatever `dataset.columns` names). Rows that cannot be used (empty input or
target, an unparsable ViGGO MR) are skipped and counted; too many of them stop the run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from utils.core.names import SPLITS
from utils.core.tasks import get_task
from utils.data.sources import DataError, load_raw_splits

if TYPE_CHECKING:
    from utils.config import ColumnMap, DatasetSection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnRoles:
    """Source columns for one task; `mr` names the role ('input'/'target') holding a ViGGO
    MR, which is parsed to find malformed rows."""

    input: str
    target: str
    references: str | None = None
    mr: str | None = None


def column_roles(task: str, columns: ColumnMap | None = None) -> ColumnRoles:
    """The task's source columns: `dataset.columns` where given, else the task's defaults."""
    spec = get_task(task)
    if columns is not None:
        return ColumnRoles(columns.input, columns.target, columns.references, spec.mr_role)
    return ColumnRoles(*spec.columns, mr=spec.mr_role)


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
