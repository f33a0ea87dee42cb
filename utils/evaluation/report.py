"""A self-contained HTML page of evaluation predictions, worst rows first.

The page is shown in the ZenML dashboard's sandboxed iframe, which runs no scripts and may
not fetch anything: inline CSS only, no JS, no external resources. Every piece of text
comes from a model or the dataset, so all of it is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from utils.core.names import STEP_MEMORY
from utils.core.tasks import (
    MULTIREF_PREFIX,
    NUM_DISTINCT_INPUTS,
    NUM_ROWS,
    Direction,
    Metric,
    get_task,
)
from utils.metrics.task_metrics import per_row_scores

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px;
       margin: 16px; color: #1f2328; }
h1 { font-size: 18px; margin: 0 0 12px; }
table { border-collapse: collapse; margin-bottom: 16px; }
th, td { border: 1px solid #d0d7de; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f6f8fa; }
table.rows { width: 100%; table-layout: fixed; }
table.rows td.text { white-space: pre-wrap; overflow-wrap: anywhere; }
td.mr { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
col.idx { width: 3em; } col.num { width: 5.5em; }
p.note { color: #57606a; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _colour(goodness: float) -> str:
    """Pale background from red (0) through yellow to green (1), readable under black text."""
    hue = 120.0 * min(1.0, max(0.0, goodness))
    return f"background-color: hsl({hue:.0f}, 70%, 85%);"


def _score_cell(value: Any, kind: str) -> str:
    if kind == "flag":
        text, goodness = ("yes" if value else "no"), float(bool(value))
    elif kind == "count":
        # Any slot error is bad; more of them only a little worse.
        text, goodness = str(int(value)), (1.0 if value == 0 else 0.25 / value)
    elif kind == "error_rate":
        # Hallucinations can push a row's SER past 1.
        text, goodness = f"{value:.2f}", 1.0 - float(value)
    else:
        text, goodness = f"{value:.2f}", float(value)
    return f'<td class="num" style="{_colour(goodness)}">{_esc(text)}</td>'


def _fraction_good(metric: Metric, value: float) -> float:
    """0 (bad) to 1 (good) for a 0-1 figure of either direction."""
    return value if metric.direction is Direction.HIGHER else 1.0 - value


def _worst_first(task: str, score: dict[str, Any]) -> tuple[float, ...]:
    """Sort key: the rows a reader should look at, the ones most wrong, come first."""
    metrics = get_task(task).worst_first
    return (*(m.goodness(score[m.name]) for m in metrics), score["index"])


def _order_note(task: str) -> str:
    parts = [
        f"{'highest' if m.direction is Direction.LOWER else 'lowest'} {m.label}"
        for m in get_task(task).worst_first
    ]
    return parts[0] + " first" + "".join(f", then {p}" for p in parts[1:])


def _summary_table(task: str, metrics: dict[str, float]) -> str:
    spec = get_task(task)
    shown: list[tuple[str, Metric | None]] = [(m.name, m) for m in spec.metrics]
    shown += [(MULTIREF_PREFIX + m.name, m) for m in spec.multiref_metrics]
    shown += [(NUM_DISTINCT_INPUTS, None), (NUM_ROWS, None)]
    cells = []
    for key, metric in shown:
        if key not in metrics or metrics[key] is None:
            continue
        value = metrics[key]
        if metric is None:
            cells.append(f'<tr><th>{_esc(key)}</th><td class="num">{int(value)}</td></tr>')
            continue
        style = _colour(_fraction_good(metric, value))
        cells.append(
            f'<tr><th>{_esc(key)}</th><td class="num" style="{style}">{value:.4f}</td></tr>'
        )
    return '<table class="summary">' + "".join(cells) + "</table>"


def _memory_note(metrics: dict[str, Any]) -> str:
    """The evaluation step's own peak memory (`STEP_MEMORY`), when the metrics carry it."""
    memory = metrics.get(STEP_MEMORY)
    if not isinstance(memory, dict) or memory.get("peak_rss_mb") is None:
        return ""
    text = (
        f"Step memory: peak {memory['peak_rss_mb']:.0f} MiB resident, "
        f"{memory.get('peak_above_start_mb', 0):.0f} MiB above the "
        f"{memory.get('start_rss_mb', 0):.0f} MiB the process held when the step began "
        f"({memory.get('method', 'measured')})."
    )
    if memory.get("peak_cuda_mb") is not None:
        text += f" GPU: {memory['peak_cuda_mb']:.0f} MiB allocated at most."
    return f'<p class="note">{_esc(text)}</p>'


def _scores(task: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    # Against the row's own reference, like the headline (per-row) metrics.
    return per_row_scores(
        task,
        [r["input"] for r in rows],
        [r["prediction"] for r in rows],
        [r["reference"] for r in rows],
    )


def _check_baseline(rows: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]) -> None:
    """Rows are paired by position, so a reordered or different subset would pair wrongly."""
    if len(baseline) != len(rows):
        raise ValueError(f"baseline has {len(baseline)} rows, finetuned has {len(rows)}")
    for i, (row, base) in enumerate(zip(rows, baseline, strict=True)):
        if row["input"] != base["input"]:
            raise ValueError(
                f"row {i}: baseline input {base['input']!r} differs from {row['input']!r}"
            )


def _header(task: str, with_baseline: bool) -> str:
    score_headers = [m.label for m in get_task(task).row_metrics]
    n_scores = len(score_headers)
    text_cols = ["input", "reference"]
    if with_baseline:
        text_cols += ["base prediction", "finetuned prediction"]
    else:
        text_cols += ["prediction"]
    colgroup = '<colgroup><col class="idx">' + "<col>" * len(text_cols)
    colgroup += '<col class="num">' * (n_scores * (2 if with_baseline else 1)) + "</colgroup>"
    if not with_baseline:
        heads = ["#", *text_cols, *score_headers]
        cells = "".join(f"<th>{_esc(h)}</th>" for h in heads)
        return colgroup + f"<thead><tr>{cells}</tr></thead>"
    # Two header rows: the score columns are grouped under "base" and "finetuned".
    top = "".join(f'<th rowspan="2">{_esc(h)}</th>' for h in ["#", *text_cols])
    top += f'<th colspan="{n_scores}">base</th><th colspan="{n_scores}">finetuned</th>'
    bottom = "".join(f"<th>{_esc(h)}</th>" for h in score_headers * 2)
    return colgroup + f"<thead><tr>{top}</tr><tr>{bottom}</tr></thead>"


def _text_cell(text: Any, is_mr: bool) -> str:
    cls = "text mr" if is_mr else "text"
    return f'<td class="{cls}">{_esc(text)}</td>'


def _row_html(
    task: str,
    row: dict[str, Any],
    score: dict[str, Any],
    base_row: dict[str, Any] | None,
    base_score: dict[str, Any] | None,
) -> str:
    mr_role = get_task(task).mr_role
    input_is_mr, output_is_mr = mr_role == "input", mr_role == "target"
    cells = [f'<td class="num">{score["index"]}</td>']
    cells.append(_text_cell(row["input"], input_is_mr))
    cells.append(_text_cell(row["reference"], output_is_mr))
    if base_row is not None:
        cells.append(_text_cell(base_row["prediction"], output_is_mr))
    cells.append(_text_cell(row["prediction"], output_is_mr))
    if base_score is not None:
        cells += [_score_cell(base_score[m.name], m.kind) for m in get_task(task).row_metrics]
    cells += [_score_cell(score[m.name], m.kind) for m in get_task(task).row_metrics]
    return "<tr>" + "".join(cells) + "</tr>"


def predictions_report_html(
    task: str,
    rows: list[dict[str, Any]],
    metrics: dict[str, Any],
    title: str,
    baseline_rows: list[dict[str, Any]] | None = None,
    max_rows: int = 500,
) -> str:
    """HTML page: summary metrics, then one table row per prediction, worst first.

    ``rows`` are the evaluate step's records (``input``, ``reference``, ``prediction``);
    ``baseline_rows`` are the base model's records for the same inputs in the same order.
    Rows are ranked by the finetuned prediction's scores and at most ``max_rows`` are shown.
    """
    get_task(task)
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows}")
    if baseline_rows is not None:
        _check_baseline(rows, baseline_rows)

    scores = _scores(task, rows)
    base_scores = _scores(task, baseline_rows) if baseline_rows is not None else None
    ranked = sorted(scores, key=lambda score: _worst_first(task, score))
    shown = ranked[:max_rows]

    body = []
    for score in shown:
        i = score["index"]
        body.append(
            _row_html(
                task,
                rows[i],
                score,
                baseline_rows[i] if baseline_rows is not None else None,
                base_scores[i] if base_scores is not None else None,
            )
        )

    left_out = len(ranked) - len(shown)
    order = _order_note(task)
    note = f"{len(rows)} rows, worst first ({order})."
    if baseline_rows is not None:
        note += " Ranked by the finetuned prediction."
    if left_out:
        note += f" Showing the first {len(shown)}; {left_out} rows left out."
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1>"
        f"<p>task: <code>{_esc(task)}</code></p>"
        f"{_summary_table(task, metrics)}"
        f"{_memory_note(metrics)}"
        f'<p class="note">{_esc(note)}</p>'
        f'<table class="rows">{_header(task, baseline_rows is not None)}'
        f"<tbody>{''.join(body)}</tbody></table>"
        "</body></html>\n"
    )
