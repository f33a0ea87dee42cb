"""`run.py compare`: the leaderboard of model versions, one group per evaluation set, best
first; optionally as an HTML page (sortable table + quality-vs-cost scatter), stored in
ZenML and pinned to the model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.cli.common import DEFAULT_CONFIG
from utils.core.tasks import ROUGE_L
from utils.experiments.leaderboard import FORMATS, Group, check_metric


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py compare",
        description="Leaderboard of model versions (never ranks different eval sets together).",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="model name (repeatable; default: model.name of --config)",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--metric", default=ROUGE_L.name, help="rank by this metric (default rougeL)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--sweep", metavar="ID", help="only the versions of this sweep")
    p.add_argument("--html", type=Path, metavar="PATH", help="also write the HTML page here")
    p.add_argument(
        "--store",
        action="store_true",
        help="store the HTML page as an artifact and pin it to the model(s) in ZenML",
    )
    p.add_argument("--debug", action="store_true")
    return p


def leaderboard(
    models: list[str], metric: str, sweep_id: str | None = None
) -> tuple[list[Group], list[str]]:
    """(ranked groups, "model vN" of versions without scores)."""
    from utils.experiments.leaderboard import mark_overrides, rank
    from utils.zenml_ops.leaderboard_store import version_rows

    check_metric(metric)
    rows, unscored = version_rows(models, sweep_id)
    mark_overrides(rows)
    return rank(rows, metric), unscored


def publish(
    groups: list[Group],
    models: list[str],
    title: str,
    html_path: Path | None,
    store: bool,
    tags: list[str] | None = None,
) -> None:
    """Write the page to `html_path` and/or store it in ZenML, pinned to `models`."""
    if html_path is None and not store:
        return
    from utils.experiments.leaderboard_html import leaderboard_html, scatter_png

    png = scatter_png(groups)
    page = leaderboard_html(groups, png, title)
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(page)
        print(f"leaderboard page: {html_path}")
    if store:
        from utils.zenml_ops.leaderboard_store import store_leaderboard

        artifact = store_leaderboard(page, png, models, tags or [])
        print(f"leaderboard stored: artifact {artifact.name} v{artifact.version}, pinned to "
              f"model(s) {', '.join(models)}")  # fmt: skip


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from utils.cli.common import model_name
    from utils.experiments.leaderboard import render

    models = args.model or [model_name(args)]
    groups, unscored = leaderboard(models, args.metric, args.sweep)
    if groups or args.format in ("csv", "json"):
        print(render(groups, args.format))
    else:
        print("no evaluated model versions")
    if unscored:
        # Failed or unfinished runs: no scores to rank. Not in the machine formats' output.
        note = f"not ranked (no scores: failed or unfinished): {', '.join(unscored)}"
        print(note, file=sys.stderr if args.format in ("csv", "json") else sys.stdout)
    publish(groups, models, f"Leaderboard: {', '.join(models)}", args.html, args.store)
    return 0
