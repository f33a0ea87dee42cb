"""The leaderboard without ZenML: rows from metadata, groups per eval set, formats, the
Pareto front and the HTML page."""

import csv
import io
import json

import pytest

from tests.fixtures.leaderboard import leaderboard_meta as _meta
from tests.fixtures.leaderboard import leaderboard_rows as _rows
from utils.core.errors import UserError
from utils.experiments.leaderboard import rank, render, row_from_metadata
from utils.experiments.leaderboard_html import leaderboard_html, pareto_front, scatter_png


def test_rows_read_the_metadata_contract() -> None:
    row = _rows()[0]
    assert (row.eval_set, row.task, row.base_model) == ("test:200", "data_to_text", "tiny")
    assert (row.trainable_params, row.tokens_seen, row.train_seconds) == (1000, 5000, 60.0)
    assert row.eval_seconds == 5.0
    assert row.peak_memory_mb == 1200.0  # the larger of training's and evaluation's
    # What differs among the listed versions, not how a run was named or kept.
    assert row.overrides == {"training.learning_rate": 1e-3}
    assert row_from_metadata("m", 5, "5", None, {"config": {}}) is None  # a failed run


def test_different_eval_sets_are_never_ranked_together() -> None:
    groups = rank(_rows(), "rougeL")
    assert [(g.eval_set, [r.version for r in g.rows]) for g in groups] == [
        ("test:200", [2, 3, 1]),
        ("test:all", [4]),
    ]
    # SER: lower is better.
    (sub, _) = rank(_rows(), "ser")
    assert [r.version for r in sub.rows] == [3, 2, 1]
    assert "ser (lower is better)" in sub.title
    with pytest.raises(UserError, match="--metric 'rogue'"):
        rank(_rows(), "rogue")


def test_a_task_without_the_metric_is_ranked_by_its_own_first() -> None:
    meta = _meta(1e-3, 0.4, 0.0, task="text_to_mr", exact_match=0.8, slot_f1=0.9)
    row = row_from_metadata("m", 7, "7", None, meta)
    (group,) = rank([row], "ser")
    assert group.metric.name == "exact_match" and "this task has no 'ser'" in group.title
    assert [m.name for m in group.headline()] == [
        "exact_match", "slot_f1", "act_accuracy", "parse_rate"]  # fmt: skip


def test_formats() -> None:
    groups = rank(_rows(), "rougeL")
    table = render(groups, "table")
    assert table.index("test:200") < table.index("test:all")
    first = table.splitlines()[3]  # title, header, rule, best row
    assert first.split()[:3] == ["1", "m", "2"] and "staging" in first
    assert "training.learning_rate=0.002" in first and "0.5000" in first

    data = json.loads(render(groups, "json"))
    assert [g["eval_set"] for g in data] == ["test:200", "test:all"]
    assert data[0]["direction"] == "higher"
    best = data[0]["rows"][0]
    assert best["rank"] == 1 and best["version"] == 2 and best["rougeL"] == 0.5
    assert best["overrides"] == {"training.learning_rate": 0.002}
    assert {"base_model", "trainable_params", "train_tokens", "train_s", "eval_s",
            "peak_mib", "eval_set", "stage", "bleu", "ser"} <= set(best)  # fmt: skip

    rows = list(csv.DictReader(io.StringIO(render(groups, "csv"))))
    assert [(r["eval_set"], r["rank"], r["version"]) for r in rows] == [
        ("test:200", "1", "2"), ("test:200", "2", "3"), ("test:200", "3", "1"),
        ("test:all", "1", "4")]  # fmt: skip
    assert rows[0]["train_tokens"] == "5000" and rows[0]["stage"] == "staging"

    md = render(groups, "markdown")
    assert md.startswith("### data_to_text on test:200: ranked by rougeL")
    assert "| rank | model | version | stage | overrides | eval_set | rougeL | bleu | ser |" in md


def test_pareto_front() -> None:
    # (cost, goodness): cheaper or better survive; (3, 0.4) loses to (2, 0.5).
    points = [(1.0, 0.2), (2.0, 0.5), (3.0, 0.4), (4.0, 0.9), (4.0, 0.9)]
    assert pareto_front(points) == {0, 1, 3, 4}


def test_html_page_holds_every_row_and_the_scatter() -> None:
    groups = rank(_rows(), "rougeL")
    png = scatter_png(groups)
    assert png.startswith(b"\x89PNG")
    page = leaderboard_html(groups, png, "Leaderboard: m")
    assert page.count('class="r front"') + page.count('class="r"') == 4
    assert "data:image/png;base64," in page and "<script" not in page
    assert "training.learning_rate=0.002" in page
    # Cost = train + eval seconds: v1 65 s / 0.40, v2 125 s / 0.50, v3 185 s / 0.45 (costs
    # more than v2 and scores less: not on the front).
    assert 'class="r front" data-version="1"' in page
    assert 'class="r front" data-version="2"' in page
    assert 'class="r" data-version="3"' in page
