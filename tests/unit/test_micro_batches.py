"""`training.max_batch_tokens`: a batch over the limit runs as row slices inside one optimizer
step, with the gradients and loss of the whole batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import load_on_cpu, tiny_config
from utils.config import PipelineConfig
from utils.training.micro_batches import row_slices


def _batch(rows: int, length: int, prefix: int = 3) -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.arange(rows * length).view(rows, length),
        "attention_mask": torch.ones(rows, prefix + length, dtype=torch.long),
        "labels": torch.zeros(rows, 4, dtype=torch.long),
        "position_ids": torch.arange(length).repeat(rows, 1) + prefix,
        "prefix_ids": torch.arange(prefix)[None],
        "logits_to_keep": torch.arange(length - 4, length),
    }


def test_a_batch_within_the_limit_or_without_one_stays_whole() -> None:
    batch = _batch(8, 10)
    assert row_slices(batch, None) == [batch]
    assert row_slices(batch, 80) == [batch]
    packed = {"input_ids": torch.zeros(1, 500, dtype=torch.long), "shift_labels": torch.zeros(1, 9)}
    assert row_slices(packed, 10) == [packed]


def test_slices_are_near_equal_within_the_limit_and_share_the_prefix() -> None:
    batch = _batch(8, 10)
    slices = row_slices(batch, 50)  # 5 rows fit: two slices of 4, not 5 + 3
    assert [len(s["input_ids"]) for s in slices] == [4, 4]
    for key in ("input_ids", "attention_mask", "labels", "position_ids"):
        assert torch.equal(torch.cat([s[key] for s in slices]), batch[key])
    for s in slices:
        assert s["prefix_ids"] is batch["prefix_ids"]
        assert s["logits_to_keep"] is batch["logits_to_keep"]
    # A row longer than the limit is a slice of its own.
    assert [len(s["input_ids"]) for s in row_slices(batch, 7)] == [1] * 8
    assert [len(s["input_ids"]) for s in row_slices(_batch(7, 10), 30)] == [2, 3, 2]


def _train(tiny_model_dir: Path, tmp: Path, max_batch_tokens: int | None) -> tuple[list, dict]:
    """Two optimizer steps of the project's Trainer (shared prefix, left padding): the
    logged losses and the LoRA gradients before each step, and how many forward passes ran."""
    from transformers import TrainerCallback

    from utils.modeling.lora import apply_lora
    from utils.modeling.precision import precision_for
    from utils.training.train import _as_dataset
    from utils.training.trainer import make_collator, trainer_class, training_arguments

    cfg = PipelineConfig.model_validate(
        tiny_config(
            tiny_model_dir,
            tmp,
            training={
                "max_steps": 2,
                "batch_size": 6,
                "save_steps": None,
                "logging_steps": 1,
                "warmup_ratio": 0.0,
                "lr_scheduler": "constant",
                "max_batch_tokens": max_batch_tokens,
            },
        )
    )
    torch.manual_seed(0)
    model, tok = load_on_cpu(tiny_model_dir)
    model = apply_lora(model, cfg.lora, "none", gradient_checkpointing=False)
    grads: list[torch.Tensor] = []
    forwards = []
    model.register_forward_hook(lambda *_: forwards.append(1))

    class Grads(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            grads.append(
                torch.cat([p.grad.flatten() for n, p in model.named_parameters() if "lora_" in n])
            )

    # Rows of one shared prompt and answers of different lengths: 12 rows, 2 steps of 6.
    rows = []
    for i in range(12):
        answer = [(11 * i + j) % 180 + 20 for j in range(3 + i % 5)]
        prompt = [5, 6, 7, 8, 9, 10 + i % 3]
        rows.append({"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer})
    trainer = trainer_class()(
        model=model,
        args=training_arguments(cfg, tmp / "out", precision_for(cfg.model.source(), "cpu"), False),
        train_dataset=_as_dataset(rows),
        data_collator=make_collator(cfg, tok.pad_token_id, model),
        processing_class=tok,
        callbacks=[Grads()],
    )
    trainer.max_batch_tokens = cfg.training.max_batch_tokens
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return losses, {"grads": grads, "forwards": len(forwards)}


def test_sliced_steps_have_the_whole_batches_loss_and_gradients(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    whole_losses, whole = _train(tiny_model_dir, tmp_path / "whole", None)
    sliced_losses, sliced = _train(tiny_model_dir, tmp_path / "sliced", 12)
    assert sliced["forwards"] > whole["forwards"], "the limit did not slice any batch"
    assert sliced_losses == pytest.approx(whole_losses, rel=1e-5)
    for a, b in zip(sliced["grads"], whole["grads"], strict=True):
        assert a.abs().sum() > 0
        assert torch.allclose(a, b, atol=1e-6)


def test_the_check_tells_a_slice_mean_from_the_batch_mean(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison above can fail: slices whose losses are their own means (the batch's
    label count not passed on) give other gradients."""
    import transformers

    step = transformers.Trainer.training_step

    def own_mean(self: Any, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
        return step(self, model, inputs, None)

    _, whole = _train(tiny_model_dir, tmp_path / "whole", None)
    monkeypatch.setattr(transformers.Trainer, "training_step", own_mean)
    _, sliced = _train(tiny_model_dir, tmp_path / "sliced", 12)
    assert not all(
        torch.allclose(a, b, atol=1e-6)
        for a, b in zip(sliced["grads"], whole["grads"], strict=True)
    )
