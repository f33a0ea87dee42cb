"""The leaderboard as one self-contained HTML page: a sortable table per evaluation set and
a quality-vs-cost scatter with the Pareto front marked.

The ZenML dashboard shows HTML artifacts in a sandboxed iframe that runs no scripts, so the
table sorts without any: each column's ▲/▼ is a label of a hidden radio button, and CSS
orders the rows (`order` in a flex column) by the position each row has in that sort,
precomputed here. The scatter is a PNG (matplotlib), embedded as a data URI and also stored
as its own image artifact.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from utils.experiments.leaderboard import Group, Row, columns, ranked, row_texts, row_values

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px;
       margin: 16px; color: #1f2328; }
h1 { font-size: 18px; margin: 0 0 12px; } h2 { font-size: 15px; margin: 18px 0 6px; }
input.sort { display: none; }
.board { display: flex; flex-direction: column; border: 1px solid #d0d7de; width: max-content; }
.r { display: grid; border-top: 1px solid #d0d7de; }
.r > div { padding: 3px 6px; white-space: nowrap; border-left: 1px solid #d0d7de; }
.r.head { order: -1; background: #f6f8fa; font-weight: 600; border-top: none; }
.r.head label { cursor: pointer; color: #8c959f; padding: 0 1px; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.r.front { background: #dafbe1; }
p.note { color: #57606a; }
img { max-width: 100%; border: 1px solid #d0d7de; margin-top: 12px; }
"""


def pareto_front(points: list[tuple[float, float]]) -> set[int]:
    """Indices of the (cost, goodness) points no other point beats: nothing cheaper or as
    cheap is as good or better with one of the two strictly so."""
    front = set()
    for i, (cost, good) in enumerate(points):
        dominated = any(
            c <= cost and g >= good and (c < cost or g > good)
            for j, (c, g) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.add(i)
    return front


def cost_seconds(row: Row) -> float | None:
    """What a version cost to make and score: its training plus its evaluation seconds."""
    if row.train_seconds is None:
        return None
    return float(row.train_seconds) + float(row.eval_seconds or 0.0)


def _plotted(group: Group) -> list[tuple[Row, float, float]]:
    out = []
    for row in group.rows:
        cost = cost_seconds(row)
        if cost is not None:
            out.append((row, cost, float(row.metrics[group.metric.name])))
    return out


def front_of(group: Group) -> set[tuple[str, int]]:
    """(model, version) of the group's Pareto-optimal versions."""
    points = _plotted(group)
    best = pareto_front([(c, group.metric.goodness(v)) for _, c, v in points])
    return {(points[i][0].model, points[i][0].version) for i in best}


def scatter_png(groups: list[Group]) -> bytes:
    """One panel per evaluation set: quality (the ranking metric) against cost, each point
    labelled with its version, the Pareto front drawn through."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [g for g in groups if _plotted(g)] or groups[:1]
    fig, axes = plt.subplots(len(shown), 1, figsize=(7, 3.6 * len(shown)), squeeze=False)
    for ax, group in zip(axes[:, 0], shown, strict=True):
        points = _plotted(group)
        front = pareto_front([(c, group.metric.goodness(v)) for _, c, v in points])
        xs, ys = [c for _, c, _ in points], [v for _, _, v in points]
        ax.scatter(xs, ys, color="#8c959f", zorder=2, label="version")
        on = sorted((points[i][1], points[i][2]) for i in front)
        if on:
            ax.plot(*zip(*on, strict=True), "-o", color="#1a7f37", zorder=3, label="Pareto front")
        for row, x, y in points:
            ax.annotate(str(row.version), (x, y), textcoords="offset points", xytext=(4, 4))
        ax.set_title(group.title, fontsize=9)
        ax.set_xlabel("cost: training + evaluation seconds")
        ax.set_ylabel(f"{group.metric.label} ({group.metric.direction} is better)")
        ax.grid(alpha=0.3)
        if points:
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, dict):
        value = " ".join(f"{k}={v}" for k, v in value.items())
    if value is None or value == "":
        return (1, 0)  # empty cells last either way
    return (0, value) if isinstance(value, int | float) else (0, str(value))


def _group_html(g_index: int, group: Group) -> str:
    names = columns(group)
    entries = ranked(group)
    values = [row_values(group, r, i) for i, r in entries]
    gid = f"g{g_index}"
    radios, rules, order_vars = [], [], [[] for _ in entries]
    for c, name in enumerate(names):
        present = [k for k, v in enumerate(values) if _sort_key(v[name])[0] == 0]
        missing = [k for k in range(len(values)) if k not in present]
        asc = sorted(present, key=lambda k: _sort_key(values[k][name])[1]) + missing
        desc = sorted(present, key=lambda k: _sort_key(values[k][name])[1], reverse=True)
        for d, order in (("a", asc), ("d", desc + missing)):
            rid = f"{gid}-c{c}-{d}"
            checked = " checked" if name == "rank" and d == "a" else ""
            radios.append(f'<input type="radio" class="sort" name="{gid}" id="{rid}"{checked}>')
            rules.append(
                f"#{rid}:checked ~ .board .r:not(.head) {{ order: var(--{rid}); }} "
                f'#{rid}:checked ~ .board label[for="{rid}"] {{ color: #0969da; }}'
            )
            for pos, k in enumerate(order):
                order_vars[k].append(f"--{rid}:{pos}")
    template = f"grid-template-columns: repeat({len(names)}, max-content);"
    head = "".join(
        f'<div>{html.escape(n)} <label for="{gid}-c{c}-a" title="ascending">▲</label>'
        f'<label for="{gid}-c{c}-d" title="descending">▼</label></div>'
        for c, n in enumerate(names)
    )
    front = front_of(group)
    rows = []
    for k, (i, r) in enumerate(entries):
        texts = row_texts(group, r, i)
        cls = "r front" if (r.model, r.version) in front else "r"
        cells = "".join(
            f'<div class="{"num" if isinstance(values[k][n], int | float) else ""}">'
            f"{html.escape(t)}</div>"
            for n, t in zip(names, texts, strict=True)
        )
        style = template + " " + ";".join(order_vars[k])
        rows.append(f'<div class="{cls}" data-version="{r.version}" style="{style}">{cells}</div>')
    return (
        f"<section><h2>{html.escape(group.title)}</h2><style>{' '.join(rules)}</style>"
        + "".join(radios)
        + f'<div class="board"><div class="r head" style="{template}">{head}</div>'
        + "".join(rows)
        + "</div></section>"
    )


def leaderboard_html(groups: list[Group], png: bytes | None, title: str) -> str:
    """The page: one sortable board per evaluation set (Pareto-optimal rows green), the
    scatter below."""
    boards = "".join(_group_html(i, g) for i, g in enumerate(groups))
    img = (
        f'<img alt="quality vs cost" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else ""
    )
    note = (
        '<p class="note">Versions scored on different evaluation sets are never ranked '
        "together. ▲/▼ sort a column; green rows are on the quality-vs-cost Pareto front "
        "(cost: training + evaluation seconds).</p>"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{note}"
        f"{boards or '<p>No evaluated model versions.</p>'}{img}</body></html>"
    )
