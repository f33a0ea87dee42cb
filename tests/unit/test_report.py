"""Predictions report (HTML, worst rows first) and the loss-curve PNG."""

from __future__ import annotations

import html
import io
import re

import pytest
from PIL import Image

from utils.evaluation.report import predictions_report_html
from utils.metrics.task_metrics import per_row_scores
from utils.training.loss_curve import loss_curve_png

MR_DIRT = "inform(name[Dirt: Showdown], release_year[2012], platforms[PlayStation, Xbox, PC])"
REF_DIRT = "Dirt: Showdown was released in 2012 for PlayStation, Xbox and PC."
MR_TETRIS = "inform(name[Tetris], release_year[1986], genres[puzzle])"
REF_TETRIS = "Tetris is a puzzle game that came out in 1986."

PERFECT = "Dirt: Showdown came out in 2012 for PlayStation, Xbox and PC."
HALF = "Dirt: Showdown came out in 2012."
WORST = "Dirt: Showdown is a game."
TETRIS_OK = "Tetris, released in 1986, is a puzzle game."

METRICS = {"rougeL": 0.5, "bleu": 0.25, "ser": 0.125, "multiref_rougeL": 0.75, "num_rows": 4}


def _row(inp: str, ref: str, pred: str) -> dict[str, object]:
    return {"input": inp, "reference": ref, "references": [ref], "prediction": pred}


def _d2t_rows() -> list[dict[str, object]]:
    # Deliberately not in worst-first order.
    return [
        _row(MR_DIRT, REF_DIRT, PERFECT),
        _row(MR_DIRT, REF_DIRT, WORST),
        _row(MR_TETRIS, REF_TETRIS, TETRIS_OK),
        _row(MR_DIRT, REF_DIRT, HALF),
    ]


def _cell(text: str) -> str:
    return f">{html.escape(text)}</td>"


def _body_rows(page: str) -> list[str]:
    tbody = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>.*?</tr>", tbody)


def _shown_indices(page: str) -> list[int]:
    """The # column: each shown row's position in the input."""
    return [
        int(re.match(r'<tr><td class="num">(\d+)</td>', tr).group(1)) for tr in _body_rows(page)
    ]


def test_every_row_is_in_the_page_escaped() -> None:
    page = predictions_report_html("data_to_text", _d2t_rows(), METRICS, "Eval")
    for row in _d2t_rows():
        for key in ("input", "reference", "prediction"):
            assert _cell(row[key]) in page, (key, row[key])
    assert len(_body_rows(page)) == 4


def test_data_to_text_rows_are_ordered_by_ser_then_rouge() -> None:
    scores = per_row_scores("data_to_text", [MR_DIRT] * 3, [PERFECT, HALF, WORST], [REF_DIRT] * 3)
    # The premise: omitting slots raises SER, so the expected order is known.
    assert scores[0]["ser"] == 0 < scores[1]["ser"] < scores[2]["ser"]

    page = predictions_report_html("data_to_text", _d2t_rows(), METRICS, "Eval")
    # WORST, HALF, then the two SER-0 rows by ROUGE-L (Tetris's paraphrase scores lower).
    assert _shown_indices(page) == [1, 3, 2, 0]


def test_text_to_mr_rows_are_ordered_by_slot_f1() -> None:
    rows = [
        _row(REF_DIRT, MR_DIRT, MR_DIRT),  # exact
        _row("Tetris is a puzzle game.", MR_TETRIS, "not an MR at all"),  # unparsable
        _row(PERFECT, MR_DIRT, "inform(name[Dirt: Showdown], release_year[2012])"),  # partial
    ]
    page = predictions_report_html("text_to_mr", rows, {"exact_match": 1 / 3}, "MR")
    assert _shown_indices(page) == [1, 2, 0]
    assert "slot F1" in page and "SER" not in page


def test_summary_shows_the_main_metrics_only() -> None:
    metrics = {**METRICS, "generation_seconds": 12.5}
    page = predictions_report_html("data_to_text", _d2t_rows(), metrics, "Eval")
    summary = page.split('<table class="summary">', 1)[1].split("</table>", 1)[0]
    for key, shown in [("bleu", "0.2500"), ("ser", "0.1250"), ("multiref_rougeL", "0.7500")]:
        assert re.search(rf"<th>{key}</th><td[^>]*>{shown}</td>", summary), key
    assert "<th>num_rows</th>" in summary
    assert "generation_seconds" not in summary


def test_baseline_columns_appear_only_with_a_baseline() -> None:
    rows = _d2t_rows()
    base = [{**r, "prediction": f"base says {i}"} for i, r in enumerate(rows)]

    plain = predictions_report_html("data_to_text", rows, METRICS, "Eval")
    assert "base prediction" not in plain and "finetuned" not in plain

    page = predictions_report_html("data_to_text", rows, METRICS, "Eval", baseline_rows=base)
    assert "base prediction" in page and "finetuned" in page
    # Paired by position: each base prediction sits in the table row of its finetuned one.
    by_prediction = {r["prediction"]: b["prediction"] for r, b in zip(rows, base, strict=True)}
    for tr in _body_rows(page):
        finetuned = next(p for p in by_prediction if _cell(p) in tr)
        assert _cell(by_prediction[finetuned]) in tr
    # Twice as many score cells per row as without a baseline.
    assert _body_rows(page)[0].count('class="num"') - 1 == 2 * (
        _body_rows(plain)[0].count('class="num"') - 1
    )


def test_mismatched_baseline_raises() -> None:
    rows = _d2t_rows()
    with pytest.raises(ValueError, match="rows"):
        predictions_report_html("data_to_text", rows, METRICS, "Eval", baseline_rows=rows[:-1])
    swapped = [rows[2], rows[1], rows[0], rows[3]]
    with pytest.raises(ValueError, match="input"):
        predictions_report_html("data_to_text", rows, METRICS, "Eval", baseline_rows=swapped)


def test_max_rows_keeps_the_worst_and_says_how_many_were_left_out() -> None:
    page = predictions_report_html("data_to_text", _d2t_rows(), METRICS, "Eval", max_rows=2)
    assert len(_body_rows(page)) == 2
    assert _cell(WORST) in page and _cell(HALF) in page
    assert _cell(PERFECT) not in page
    assert "2 rows left out" in page

    full = predictions_report_html("data_to_text", _d2t_rows(), METRICS, "Eval")
    assert "left out" not in full


def test_script_tags_are_escaped() -> None:
    evil = "<script>alert('x')</script>"
    rows = [_row(f"inform(name[{evil}])", f"{evil} & co", f"Try {evil}")]
    page = predictions_report_html("data_to_text", rows, {"ser": 0.0}, f"Report {evil}")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    assert _cell(f"Try {evil}") in page


def test_unknown_task_raises() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        predictions_report_html("summarise", _d2t_rows(), METRICS, "Eval")


# ---------------------------------------------------------------------------- loss plot

HISTORY = {
    "train_loss": [[1, 2.5], [2, 1.9], [3, 1.4], [4, 1.1]],
    "eval_loss": [[2, 1.8], [4, 1.2]],
}


def _decode(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


@pytest.mark.parametrize(
    "history",
    [HISTORY, {"train_loss": [], "eval_loss": []}, {}, {"eval_loss": [[10, 0.7]]}],
    ids=["both", "empty-lists", "no-keys", "eval-only"],
)
def test_loss_curve_is_a_decodable_png(history: dict[str, list[list[float]]]) -> None:
    width, height = _decode(loss_curve_png(history)).size
    assert width >= 400 and height >= 200


def test_empty_history_is_drawn_differently_from_a_curve() -> None:
    assert loss_curve_png(HISTORY) != loss_curve_png({})
    assert loss_curve_png({"train_loss": [], "eval_loss": []}) == loss_curve_png({})
