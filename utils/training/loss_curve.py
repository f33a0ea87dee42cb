"""The loss-curve PNG of a finetune (the `loss_curve` artifact).

The figure is built with ``matplotlib.figure.Figure`` rather than pyplot: Figure renders
through Agg with no GUI backend and no process-wide state (pyplot keeps a global figure
registry and backend), so this works headless and inside long-running step processes
without touching whatever backend other code chose. Matplotlib's own docs recommend this
for servers.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.figure import Figure

# (history key, legend label, style): eval loss is logged rarely, so markers keep a
# handful of points visible.
_SERIES: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("train_loss", "train loss", {"linewidth": 1.2}),
    ("eval_loss", "eval loss", {"linewidth": 1.5, "marker": "o", "markersize": 4}),
)


def _xy(points: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    return [float(p[0]) for p in points], [float(p[1]) for p in points]


def loss_curve_png(
    loss_history: dict[str, list[list[float]]],
    title: str = "LoRA finetuning loss",
    validation: Sequence[dict[str, float]] | None = None,
) -> bytes:
    """PNG of train/eval loss against the optimizer step; a placeholder if nothing was logged.

    ``loss_history`` is ``{"train_loss": [[step, loss], ...], "eval_loss": [...]}``; either
    key may be missing or empty. ``validation`` (generative validation checks, each with a
    ``step`` and metric values) adds a second panel with those metrics.
    """
    fig = Figure(figsize=(8, 7.5 if validation else 4.5))
    ax = fig.add_subplot(2, 1, 1) if validation else fig.add_subplot()
    if validation:
        _validation_panel(fig.add_subplot(2, 1, 2), validation)
    ax.set_title(title)
    plotted = False
    for key, label, style in _SERIES:
        points = loss_history.get(key) or []
        if points:
            ax.plot(*_xy(points), label=label, **style)
            plotted = True
    if plotted:
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        ax.legend()
    else:
        # Still a valid image, so the visualization renders and says why it is blank.
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no loss logged", ha="center", va="center", fontsize=14)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _validation_panel(ax: object, checks: Sequence[dict[str, float]]) -> None:
    steps = [c["step"] for c in checks]
    for name in sorted({k for c in checks for k in c} - {"step", "seconds"}):
        ax.plot(steps, [c.get(name) for c in checks], marker="o", markersize=4, label=name)
    ax.set_title("generative validation")
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
    ax.legend()
