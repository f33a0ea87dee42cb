"""The registry of tasks and metrics: what each task trains on, how it is prompted and scored.

A metric is named here once, with its direction; a task lists the metrics it computes (in
report order), its source columns, and whether its input or target is a ViGGO meaning
representation. Config validation, promotion, the HTML report and the CLI summary read
these entries; `utils.metrics.task_metrics` computes the values under these names.
Adding a metric: an entry below (and in its task's `metrics`), and its computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Direction(StrEnum):
    HIGHER = "higher"  # a higher value is better
    LOWER = "lower"  # an error rate: a lower value is better


@dataclass(frozen=True)
class Metric:
    name: str  # key in every metrics dict and in model-version metadata
    label: str  # for people (report headers)
    direction: Direction = Direction.HIGHER
    # How a per-row value is printed in the report: a 0-1 score, an error rate (can pass
    # 1), a count of errors, or a yes/no flag.
    kind: Literal["score", "error_rate", "count", "flag"] = "score"

    def better(self, a: float, b: float, margin: float = 0.0) -> bool:
        """`a` beats `b` by more than `margin`; a tie never does."""
        return a > b + margin if self.direction is Direction.HIGHER else a < b - margin

    def goodness(self, value: float) -> float:
        """Higher is better, whatever the direction (for sorting)."""
        return value if self.direction is Direction.HIGHER else -value


ROUGE1 = Metric("rouge1", "ROUGE-1")
ROUGE2 = Metric("rouge2", "ROUGE-2")
ROUGE_L = Metric("rougeL", "ROUGE-L")
ROUGE_LSUM = Metric("rougeLsum", "ROUGE-Lsum")
ROUGE = (ROUGE1, ROUGE2, ROUGE_L, ROUGE_LSUM)
BLEU = Metric("bleu", "BLEU")
SER = Metric("ser", "SER", Direction.LOWER, "error_rate")
# Per row, the slot errors SER adds up.
MISSING = Metric("missing", "missing", Direction.LOWER, "count")
WRONG = Metric("wrong", "wrong", Direction.LOWER, "count")
HALLUCINATED = Metric("hallucinated", "halluc.", Direction.LOWER, "count")
EXACT_MATCH = Metric("exact_match", "exact", kind="flag")
SLOT_F1 = Metric("slot_f1", "slot F1")
SLOT_PRECISION = Metric("slot_precision", "slot P")
SLOT_RECALL = Metric("slot_recall", "slot R")
ACT_ACCURACY = Metric("act_accuracy", "act")
PARSE_RATE = Metric("parse_rate", "parse rate")

# What text_to_mr measures of a parsed MR, and the per-row slot errors of data_to_text.
MR_METRICS = (EXACT_MATCH, SLOT_F1, SLOT_PRECISION, SLOT_RECALL, ACT_ACCURACY, PARSE_RATE)
SLOT_ERRORS = (MISSING, WRONG, HALLUCINATED)
METRICS: dict[str, Metric] = {m.name: m for m in (*ROUGE, BLEU, SER, *SLOT_ERRORS, *MR_METRICS)}

# Counts that every metrics dict carries next to the scores.
NUM_ROWS = "num_rows"
NUM_DISTINCT_INPUTS = "num_distinct_inputs"
# Rows sharing an input are also scored once against all their references.
MULTIREF_PREFIX = "multiref_"


def multiref(metric: Metric) -> str:
    return MULTIREF_PREFIX + metric.name


class TaskName(StrEnum):
    DATA_TO_TEXT = "data_to_text"  # ViGGO MR -> sentence
    TEXT_TO_MR = "text_to_mr"  # sentence -> ViGGO MR (the upstream project's direction)
    TEXT_TO_TEXT = "text_to_text"  # any input -> any target (a user's own dataset)


@dataclass(frozen=True)
class Task:
    name: TaskName
    # Short on purpose: every prompt token is paid for in training and evaluation.
    system_prompt: str
    # Source columns when `dataset.columns` is not set: (input, target, references or None).
    columns: tuple[str, str, str | None]
    # Which side is a ViGGO meaning representation (parsed to find malformed rows).
    mr_role: Literal["input", "target"] | None
    # Computed for every evaluation, shown in this order, any of them promotable.
    metrics: tuple[Metric, ...]
    # Also computed per distinct input against all its references (`multiref_<name>`).
    multiref_metrics: tuple[Metric, ...]
    # The report's per-row score columns, and its order: worst by these first.
    row_metrics: tuple[Metric, ...]
    worst_first: tuple[Metric, ...]
    # What generative validation during training tracks (and `training.select_best` keeps
    # the best of).
    validation_metric: Metric
    # The leaderboard's quality columns (`run.py compare`), in this order.
    headline: tuple[Metric, ...]


# GEM's ViGGO column names.
_MR_COLUMN, _TEXT_COLUMN, _REFERENCES_COLUMN = "meaning_representation", "target", "references"

DATA_TO_TEXT = Task(
    name=TaskName.DATA_TO_TEXT,
    system_prompt=(
        "Write one fluent sentence that expresses this video game meaning representation."
    ),
    columns=(_MR_COLUMN, _TEXT_COLUMN, _REFERENCES_COLUMN),
    mr_role="input",
    metrics=(*ROUGE, BLEU, SER),
    multiref_metrics=(*ROUGE, BLEU, SER),
    row_metrics=(SER, ROUGE_L, *SLOT_ERRORS),
    worst_first=(SER, ROUGE_L),
    validation_metric=SER,
    headline=(ROUGE_L, BLEU, SER),
)
TEXT_TO_MR = Task(
    name=TaskName.TEXT_TO_MR,
    system_prompt=(
        "Turn the sentence about a video game into a meaning representation: "
        "act(attribute[value], ...). Acts: inform, confirm, give_opinion, recommend, request, "
        "request_attribute, request_explanation, suggest, verify_attribute. Attributes: name, "
        "release_year, exp_release_date, developer, genres, player_perspective, platforms, "
        "esrb, rating, has_multiplayer, available_on_steam, has_linux_release, "
        "has_mac_release, specifier."
    ),
    columns=(_TEXT_COLUMN, _MR_COLUMN, None),
    mr_role="target",
    metrics=(*MR_METRICS, *ROUGE),
    multiref_metrics=(),
    row_metrics=(EXACT_MATCH, SLOT_F1, ROUGE_L),
    worst_first=(SLOT_F1, ROUGE_L),
    validation_metric=EXACT_MATCH,
    headline=(EXACT_MATCH, SLOT_F1, ACT_ACCURACY, PARSE_RATE),
)
TEXT_TO_TEXT = Task(
    name=TaskName.TEXT_TO_TEXT,
    # Own datasets usually want their own `dataset.system_prompt`; this one is neutral.
    system_prompt="Answer the input.",
    columns=("input", "target", None),
    mr_role=None,
    metrics=(*ROUGE, BLEU),
    multiref_metrics=(*ROUGE, BLEU),
    row_metrics=(ROUGE_L,),
    worst_first=(ROUGE_L,),
    validation_metric=ROUGE_L,
    headline=(ROUGE_L, BLEU),
)

TASKS: dict[str, Task] = {t.name.value: t for t in (DATA_TO_TEXT, TEXT_TO_MR, TEXT_TO_TEXT)}


def get_task(name: str) -> Task:
    try:
        return TASKS[str(name)]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None
