"""Generative validation during training, and `select_best` keeping the best check's weights."""

from pathlib import Path

import pytest
import torch

from tests.conftest import prepare_tiny, tiny_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir, viggo_subset) -> Path:
    return prepare_tiny(tmp_path_factory, tiny_model_dir, viggo_subset, validation=8)


class _Snapshots:
    """Records the trainable weights at the end of every optimizer step."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        outer = self
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kw):
                outer.weights[state.global_step] = {
                    n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
                }

        self.callback = Callback()


def _train(tiny_model_dir, viggo_subset, prepared, tmp_path, **training):
    from utils.config import PipelineConfig
    from utils.training.train import train_lora

    values = {"max_steps": 4, "batch_size": 4, "learning_rate": 5e-2, "save_steps": None}
    cfg = PipelineConfig.model_validate(
        tiny_config(tiny_model_dir, viggo_subset, training={**values, **training})
    )
    snapshots = _Snapshots()
    summary = train_lora(cfg, prepared, tmp_path / "adapter", callbacks=[snapshots.callback])
    return summary, snapshots.weights


def _saved(adapter: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def test_validation_checks_every_n_steps_and_at_the_end(
    tiny_model_dir, viggo_subset, prepared, tmp_path
) -> None:
    summary, _ = _train(
        tiny_model_dir, viggo_subset, prepared, tmp_path, validation_steps=3, validation_samples=5
    )
    history = summary["validation_history"]
    assert [c["step"] for c in history] == [3, 4]  # every 3 steps, and the last one
    for check in history:
        assert check["ser"] >= 0.0 and 0.0 <= check["rougeL"] <= 1.0
    assert summary["validation_metric"] == "ser"
    assert summary["best_validation_step"] in (3, 4)
    assert summary["selected_step"] is None  # select_best off: the last weights are saved


def test_select_best_saves_the_weights_of_the_best_check(
    tiny_model_dir, viggo_subset, prepared, tmp_path
) -> None:
    summary, weights = _train(
        tiny_model_dir,
        viggo_subset,
        prepared,
        tmp_path,
        validation_steps=1,
        validation_samples=5,
        select_best=True,
    )
    history = summary["validation_history"]
    # Lowest SER; ties go to the higher ROUGE-L, then to the later step.
    best = min(history, key=lambda c: (c["ser"], -c["rougeL"], -c["step"]))
    assert summary["selected_step"] == best["step"]
    saved = _saved(tmp_path / "adapter")
    chosen = weights[best["step"]]
    # peft saves the adapter without the ".default" adapter name.
    for name, value in saved.items():
        match = next(v for n, v in chosen.items() if n.replace(".default", "") == name)
        assert torch.equal(value, match), name
    if best["step"] != 4:  # and they are not the last step's, when another step was best
        last = weights[4]
        assert any(
            not torch.equal(v, next(w for n, w in last.items() if n.replace(".default", "") == k))
            for k, v in saved.items()
        )


def test_select_best_needs_validation_steps() -> None:
    from utils.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="select_best needs validation_steps"):
        load_config(None, ["training.select_best=true"])
