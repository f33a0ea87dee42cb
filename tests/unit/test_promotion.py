import pytest

from utils.zenml_ops.promotion import decide_promotion, metric_value


def test_beats_base_without_staging() -> None:
    ok, reason = decide_promotion("rougeL", 0.5, 0.2, None)
    assert ok and "no staging" in reason


def test_must_beat_staging_too() -> None:
    ok, reason = decide_promotion("rougeL", 0.5, 0.2, 0.6)
    assert not ok and "staging" in reason


def test_tie_never_promotes() -> None:
    assert not decide_promotion("rougeL", 0.5, 0.2, 0.5)[0]
    assert not decide_promotion("rougeL", 0.2, 0.2, None)[0]


def test_worse_than_base() -> None:
    ok, reason = decide_promotion("rougeL", 0.1, 0.2, None)
    assert not ok and "base" in reason


def test_lower_is_better_for_error_rates() -> None:
    assert decide_promotion("ser", 0.05, 0.4, 0.1)[0]
    assert not decide_promotion("ser", 0.2, 0.4, 0.1)[0]


def test_min_improvement() -> None:
    assert not decide_promotion("rougeL", 0.52, 0.5, None, min_improvement=0.05)[0]
    assert decide_promotion("rougeL", 0.56, 0.5, None, min_improvement=0.05)[0]


def test_metric_value_names_missing_metric() -> None:
    with pytest.raises(KeyError, match="bleu"):
        metric_value({"rougeL": 0.1}, "bleu", "base")


def test_staging_on_another_evaluation_set_is_not_compared() -> None:
    from utils.zenml_ops.promotion import staging_figure

    ours = {"rougeL": 0.9, "eval_set": "test:all"}
    value, why = staging_figure(ours, {"rougeL": 0.3, "eval_set": "test:100"}, "rougeL")
    assert value is None and "'test:100'" in why and "'test:all'" in why
    ok, reason = decide_promotion("rougeL", 0.9, 0.1, value, not_comparable=why)
    assert not ok and "evaluated on" in reason
    assert staging_figure(ours, {"rougeL": 0.3, "eval_set": "test:all"}, "rougeL") == (0.3, None)
    assert staging_figure(ours, None, "rougeL") == (None, None)
