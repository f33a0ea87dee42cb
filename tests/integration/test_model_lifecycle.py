"""A step that returns leaves no model behind: the next step's model must not pile on top.

Every model the project loads goes through `utils.modeling.loader.load_weights`; the tests
keep a weak reference to each, run a step, collect garbage and require every one dead.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from tests.conftest import prepare_tiny, tiny_config


@pytest.fixture
def loaded_models(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref]:
    """Weak references to every model loaded from now on."""
    from utils.modeling import loader

    refs: list[weakref.ref] = []
    original = loader.load_weights

    def recording(*args, **kwargs):
        model = original(*args, **kwargs)
        refs.append(weakref.ref(model))
        return model

    monkeypatch.setattr(loader, "load_weights", recording)
    return refs


def _alive(refs: list[weakref.ref]) -> list[str]:
    gc.collect()
    return [type(m).__name__ for r in refs if (m := r()) is not None]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_model_dir, viggo_subset) -> Path:
    return prepare_tiny(tmp_path_factory, tiny_model_dir, viggo_subset)


def test_finetune_and_evaluate_release_their_models(
    zenml_env: Path, tiny_model_dir, viggo_subset, prepared, loaded_models
) -> None:
    from steps.evaluate import evaluate
    from steps.finetune import finetune
    from utils.config import PipelineConfig

    cfg = PipelineConfig.model_validate(
        tiny_config(
            tiny_model_dir,
            viggo_subset,
            evaluation={"rerank": {"method": "sample", "candidates": 2, "apply_to": "both"}},
        )
    )
    adapter, summary, _ = finetune.entrypoint(config_json=cfg.training_json(), dataset=prepared)
    assert len(loaded_models) == 1
    assert _alive(loaded_models) == [], "finetune returned with its model alive"
    assert summary["step_memory"]["peak_rss_mb"] >= summary["step_memory"]["start_rss_mb"]

    for stage_adapter in (None, adapter):
        metrics, _, report = evaluate.entrypoint(
            dataset=prepared,
            task=cfg.dataset.task,
            model=cfg.model.source(),
            evaluation=cfg.evaluation,
            adapter=stage_adapter,
        )
        assert _alive(loaded_models) == [], "evaluate returned with its model alive"
        assert metrics["step_memory"]["peak_above_start_mb"] >= 0
        assert "Step memory: peak" in report
    assert len(loaded_models) == 3


def test_pipeline_steps_never_hold_two_models(
    zenml_env: Path, tiny_model_dir, viggo_subset, loaded_models, monkeypatch
) -> None:
    """In a whole run (one process, the local orchestrator), each model load finds every
    earlier step's model gone, and none is left after the run."""
    from pipelines.finetuning import build_pipeline
    from utils.config import PipelineConfig
    from utils.modeling import loader

    recording = loader.load_weights
    seen: list[list[str]] = []

    def checking(*args, **kwargs):
        seen.append(_alive(loaded_models))
        return recording(*args, **kwargs)

    monkeypatch.setattr(loader, "load_weights", checking)
    cfg = PipelineConfig.model_validate(tiny_config(tiny_model_dir, viggo_subset))
    build_pipeline(cfg)(config=cfg)
    assert len(loaded_models) == 3  # finetune, evaluate_base, evaluate_finetuned
    assert seen == [[], [], []], f"models alive when the next step loaded its own: {seen}"
    assert _alive(loaded_models) == []
