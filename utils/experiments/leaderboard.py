"""The leaderboard of model versions: one row per evaluated version, grouped by what it was
scored on, ranked inside each group, formatted as text, markdown, CSV or JSON.

Rows come from model-version metadata (`utils.zenml_ops.leaderboard_store` reads it); nothing
here talks to ZenML. Versions scored on different evaluation sets (or tasks) are never
ranked together: each (task, eval_set) is its own group.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from utils.core.errors import UserError
from utils.core.names import (
    CONFIG,
    EVAL_SET,
    GENERATION_SECONDS,
    PEAK_MEMORY_MB,
    TOKENS_SEEN,
    TRAIN_RUNTIME_S,
    TRAINABLE_PARAMS,
    TRAINING,
    EvalStage,
    metrics_name,
)
from utils.core.tasks import METRICS, Metric, get_task

FORMATS = ("table", "csv", "json", "markdown")
# Config keys that say how a run was kept or named, not what it trained: never "overrides".
NOT_OVERRIDES = ("sweep.", "enable_cache", "model.description", "training.resume",
                 "training.checkpoint_dir")  # fmt: skip


@dataclass
class Row:
    model: str
    version: int
    name: str
    stage: str | None
    task: str
    eval_set: str
    metrics: dict[str, Any]
    base_model: str
    trainable_params: int | None
    tokens_seen: int | None
    train_seconds: float | None
    eval_seconds: float | None
    peak_memory_mb: float | None
    config: dict[str, Any]  # flattened: dotted key -> value
    overrides: dict[str, Any] = field(default_factory=dict)  # set by `mark_overrides`


@dataclass
class Group:
    task: str
    eval_set: str
    metric: Metric
    rows: list[Row]  # best first
    unranked: list[Row]  # lack the metric
    # The metric asked for is not computed for this task: ranked by `metric` instead.
    asked: str | None = None

    @property
    def title(self) -> str:
        better = f"{self.metric.direction} is better"
        instead = f"; this task has no {self.asked!r}" if self.asked else ""
        return f"{self.task} on {self.eval_set}: ranked by {self.metric.name} ({better}{instead})"

    def headline(self) -> list[Metric]:
        """The task's leaderboard metrics, the ranking one first."""
        rest = [m for m in get_task(self.task).headline if m.name != self.metric.name]
        return [self.metric, *rest]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def row_from_metadata(
    model: str, number: int, name: str, stage: str | None, meta: dict[str, Any]
) -> Row | None:
    """The leaderboard row of one version's metadata; None if it has no finetuned scores
    (a failed or unfinished run)."""
    metrics = meta.get(metrics_name(EvalStage.FINETUNED))
    config = meta.get(CONFIG)
    if not isinstance(metrics, dict) or not isinstance(config, dict):
        return None
    training = meta.get(TRAINING) if isinstance(meta.get(TRAINING), dict) else {}
    flat = flatten(config)
    peaks = [p for p in (training.get(PEAK_MEMORY_MB), metrics.get(PEAK_MEMORY_MB)) if p]
    return Row(
        model=model,
        version=int(number),
        name=str(name),
        stage=stage,
        task=str(flat.get("dataset.task", "data_to_text")),
        eval_set=str(metrics.get(EVAL_SET, "?")),
        metrics=metrics,
        base_model=str(flat.get("model.base_model_id", "")),
        trainable_params=training.get(TRAINABLE_PARAMS),
        tokens_seen=training.get(TOKENS_SEEN),
        train_seconds=training.get(TRAIN_RUNTIME_S),
        eval_seconds=metrics.get(GENERATION_SECONDS),
        peak_memory_mb=max(peaks) if peaks else None,
        config=flat,
    )


def mark_overrides(rows: list[Row]) -> None:
    """Each row's `overrides`: the config keys whose values differ among `rows`."""
    keys = sorted({k for r in rows for k in r.config if not k.startswith(NOT_OVERRIDES)})
    differing = [k for k in keys if len({json.dumps(r.config.get(k)) for r in rows}) > 1]
    for r in rows:
        r.overrides = {k: r.config.get(k) for k in differing}


def check_metric(metric: str) -> Metric:
    if metric not in METRICS:
        raise UserError(f"--metric {metric!r}: unknown; valid: {', '.join(sorted(METRICS))}")
    return METRICS[metric]


def rank(rows: list[Row], metric: str) -> list[Group]:
    """Groups by (task, eval_set), each best first on `metric` (ties: the older version
    first); a task that does not compute `metric` is ranked by its first headline metric."""
    asked = check_metric(metric)
    keyed: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        keyed.setdefault((r.task, r.eval_set), []).append(r)
    groups = []
    for (task, eval_set), members in sorted(keyed.items()):
        computed = {m.name for m in get_task(task).metrics}
        m = asked if asked.name in computed else get_task(task).headline[0]
        scored = [r for r in members if isinstance(r.metrics.get(m.name), int | float)]
        scored.sort(key=lambda r: (-m.goodness(float(r.metrics[m.name])), r.model, r.version))
        unranked = [r for r in members if r not in scored]
        groups.append(
            Group(task, eval_set, m, scored, unranked, None if m is asked else asked.name)
        )
    return groups


def _num(value: Any, digits: int) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return f"{value:.{digits}f}" if digits else f"{round(value):d}"


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def overrides_text(row: Row) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in row.overrides.items())


# (header, value for JSON/CSV, text for tables) of the columns after the metrics.
_COST_COLUMNS: list[tuple[str, Callable[[Row], Any], int]] = [
    ("base_model", lambda r: r.base_model, -1),
    ("trainable_params", lambda r: r.trainable_params, 0),
    ("train_tokens", lambda r: r.tokens_seen, 0),
    ("train_s", lambda r: r.train_seconds, 1),
    ("eval_s", lambda r: r.eval_seconds, 1),
    ("peak_mib", lambda r: r.peak_memory_mb, 0),
]


def columns(group: Group) -> list[str]:
    metrics = [m.name for m in group.headline()]
    return ["rank", "model", "version", "stage", "overrides", "eval_set", *metrics] + [
        name for name, _, _ in _COST_COLUMNS
    ]


def row_values(group: Group, row: Row, rank_: int | None) -> dict[str, Any]:
    """One row's raw values, by column name (JSON, CSV)."""
    values: dict[str, Any] = {
        "rank": rank_,
        "model": row.model,
        "version": row.version,
        "stage": row.stage,
        "overrides": row.overrides,
        "eval_set": row.eval_set,
    }
    values.update({m.name: row.metrics.get(m.name) for m in group.headline()})
    values.update({name: get(row) for name, get, _ in _COST_COLUMNS})
    return values


def row_texts(group: Group, row: Row, rank_: int | None) -> list[str]:
    """One row as display text, in `columns` order."""
    cells = [
        "" if rank_ is None else str(rank_),
        row.model,
        str(row.version) if row.name == str(row.version) else f"{row.version} ({row.name})",
        row.stage or "",
        overrides_text(row),
        row.eval_set,
    ]
    cells += [_num(row.metrics.get(m.name), 4) for m in group.headline()]
    cells += [get(row) if d < 0 else _num(get(row), d) for _, get, d in _COST_COLUMNS]
    return cells


def ranked(group: Group) -> list[tuple[int | None, Row]]:
    return [(i, r) for i, r in enumerate(group.rows, 1)] + [(None, r) for r in group.unranked]


def _aligned(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
             for cells in (header, *body)]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(header: list[str], body: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, body)])


def render(groups: list[Group], fmt: str) -> str:
    """The leaderboard in `fmt` (one of FORMATS)."""
    if fmt == "json":
        payload = [
            {
                "task": g.task,
                "eval_set": g.eval_set,
                "metric": g.metric.name,
                "direction": str(g.metric.direction),
                "rows": [row_values(g, r, i) for i, r in ranked(g)],
            }
            for g in groups
        ]
        return json.dumps(payload, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        header: list[str] | None = None
        for g in groups:
            # Groups of different tasks have different metric columns: a header each.
            if columns(g) != header:
                header = columns(g)
                writer.writerow(["task", *header])
            for i, r in ranked(g):
                values = row_values(g, r, i)
                values["overrides"] = overrides_text(r)
                writer.writerow([g.task, *("" if v is None else v for v in values.values())])
        return out.getvalue().rstrip("\n")
    if fmt not in ("table", "markdown"):
        raise UserError(f"--format {fmt!r}: valid: {', '.join(FORMATS)}")
    parts = []
    for g in groups:
        body = [row_texts(g, r, i) for i, r in ranked(g)]
        if fmt == "markdown":
            parts.append(f"### {g.title}\n\n{_markdown(columns(g), body)}")
        else:
            parts.append(f"{g.title}\n{_aligned(columns(g), body)}")
    return "\n\n".join(parts)
