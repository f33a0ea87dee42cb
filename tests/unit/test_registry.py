"""The registry of tasks and metrics is the one source: scorers, config and report agree."""

import pytest

from utils.config import ConfigError, load_config
from utils.core.names import STEPS, Stage
from utils.core.tasks import METRICS, TASKS, Direction, TaskName, get_task, multiref
from utils.metrics.task_metrics import SCORERS, compute_metrics

MR = "inform(name[Tetris], release_year[1986], genres[puzzle])"
SENTENCE = "Tetris is a puzzle game from 1986."
INPUTS = {
    TaskName.DATA_TO_TEXT: ([MR, MR], [SENTENCE, "Tetris came out in 1986."], [SENTENCE] * 2),
    TaskName.TEXT_TO_MR: ([SENTENCE], [MR], [MR]),
    TaskName.TEXT_TO_TEXT: (["2+2"], ["4"], ["4"]),
}


def test_every_task_has_an_entry_and_a_scorer() -> None:
    assert set(TASKS) == {t.value for t in TaskName} == set(SCORERS)


@pytest.mark.parametrize("task", list(TaskName), ids=str)
def test_scorers_compute_every_metric_the_registry_names(task: TaskName) -> None:
    spec = get_task(task)
    metrics = compute_metrics(task, *INPUTS[task])
    for m in spec.metrics:
        assert isinstance(metrics[m.name], float), m.name
    for m in spec.multiref_metrics:
        assert isinstance(metrics[multiref(m)], float), m.name
    for m in (*spec.row_metrics, *spec.worst_first):
        assert m.name in METRICS


def test_metric_direction_decides_better() -> None:
    assert METRICS["ser"].direction is Direction.LOWER
    assert METRICS["ser"].better(0.1, 0.2) and not METRICS["ser"].better(0.2, 0.2)
    assert METRICS["rougeL"].better(0.3, 0.2, margin=0.05)
    assert not METRICS["rougeL"].better(0.3, 0.26, margin=0.05)


def test_config_reads_metrics_and_stages_from_the_registry() -> None:
    assert load_config(None, ["promotion.metric=ser"]).promotion.metric == "ser"
    with pytest.raises(ConfigError, match=r"promotion\.metric: unknown metric 'accuracy'"):
        load_config(None, ["promotion.metric=accuracy"])
    # Computed for text_to_mr, not for data_to_text.
    with pytest.raises(ConfigError, match="is not computed for task 'data_to_text'"):
        load_config(None, ["promotion.metric=exact_match"])
    assert load_config(None, ["promotion.stage=production"]).promotion.stage == Stage.PRODUCTION
    with pytest.raises(ConfigError, match=r"promotion\.stage"):
        load_config(None, ["promotion.stage=archived"])
    with pytest.raises(ConfigError, match=r"promotion\.stage"):
        load_config(None, ["promotion.stage=stagin"])


def test_remote_steps_are_the_pipeline_steps() -> None:
    cfg = load_config(None)
    assert tuple(name for name, _ in cfg.remote.steps) == STEPS
