"""Activation checkpointing keeps the LoRA gradients, through the project's own LoRA and
Trainer setup; the prompt-prefix sharing it rules out is switched off and says why."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import load_on_cpu, tiny_config
from utils.config import PipelineConfig


def _cfg(tiny_model_dir: Path, tmp: Path, **training: Any) -> PipelineConfig:
    return PipelineConfig.model_validate(
        tiny_config(
            tiny_model_dir,
            tmp,
            training={
                "max_steps": 1,
                "save_steps": None,
                "gradient_checkpointing": True,
                "warmup_ratio": 0.0,  # a first step at learning rate 0 would change nothing
                "lr_scheduler": "constant",
            }
            | training,
        )
    )


def _rows(n: int = 4, length: int = 12) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        ids = [(7 * i + j) % 200 + 10 for j in range(length)]
        rows.append({"input_ids": ids, "labels": [-100] * 4 + ids[4:]})
    return rows


def _one_step(tiny_model_dir: Path, tmp: Path) -> tuple[Any, dict[str, torch.Tensor], dict]:
    """One optimizer step with checkpointing on: (model, LoRA gradients just before the
    step, LoRA weights before training)."""
    from transformers import TrainerCallback

    from utils.modeling.lora import apply_lora
    from utils.modeling.precision import precision_for
    from utils.training.train import _as_dataset
    from utils.training.trainer import make_collator, trainer_class, training_arguments

    cfg = _cfg(tiny_model_dir, tmp)
    torch.manual_seed(0)
    model, tok = load_on_cpu(tiny_model_dir)
    model = apply_lora(model, cfg.lora, "none", gradient_checkpointing=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    grads: dict[str, torch.Tensor] = {}

    class Grads(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            for n, p in model.named_parameters():
                if "lora_" in n:
                    grads[n] = torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()

    trainer = trainer_class()(
        model=model,
        args=training_arguments(cfg, tmp / "out", precision_for(cfg.model.source(), "cpu"), False),
        train_dataset=_as_dataset(_rows()),
        data_collator=make_collator(cfg, tok.pad_token_id, model),
        processing_class=tok,
        callbacks=[Grads()],
    )
    trainer.train()
    return model, grads, before


def _assert_lora_learns(model: Any, grads: dict[str, torch.Tensor], before: dict) -> None:
    blocks = model.base_model.model.model.layers
    assert all(layer.gradient_checkpointing for layer in blocks), "checkpointing is not on"
    lora_b = [n for n in before if "lora_B" in n]
    assert lora_b and set(grads) == set(before)
    # lora_B starts at zero, so only its gradient is non-zero after the first backward.
    dead = [n for n in lora_b if not grads[n].abs().sum() > 0]
    assert not dead, f"no gradient reached {dead}"
    after = dict(model.named_parameters())
    assert all(not torch.equal(after[n].detach(), before[n]) for n in lora_b)


def test_checkpointing_keeps_lora_gradients(tiny_model_dir: Path, tmp_path: Path) -> None:
    _assert_lora_learns(*_one_step(tiny_model_dir, tmp_path))


def test_the_check_catches_reentrant_checkpointing_without_input_grads(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above can fail: reentrant checkpointing whose inputs do not require grad
    leaves the LoRA weights inside the checkpointed blocks without gradients."""
    import transformers

    import utils.modeling.lora as lora
    import utils.training.trainer as trainer

    monkeypatch.setattr(lora, "CHECKPOINTING_KWARGS", {"use_reentrant": True})
    monkeypatch.setattr(trainer, "CHECKPOINTING_KWARGS", {"use_reentrant": True})
    monkeypatch.setattr(
        transformers.PreTrainedModel, "enable_input_require_grads", lambda self: None
    )
    with pytest.raises((AssertionError, RuntimeError)):
        _assert_lora_learns(*_one_step(tiny_model_dir, tmp_path))


def test_checkpointing_pins_non_reentrant(tiny_model_dir: Path, tmp_path: Path) -> None:
    from utils.modeling.precision import precision_for
    from utils.training.trainer import training_arguments

    cfg = _cfg(tiny_model_dir, tmp_path)
    args = training_arguments(cfg, tmp_path, precision_for(cfg.model.source(), "cpu"), False)
    assert args.activation_checkpointing
    assert args.activation_checkpointing_kwargs == {"use_reentrant": False}


def test_checkpointing_turns_prefix_sharing_off_and_says_why(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from utils.training.trainer import make_collator, prefix_sharing_off

    model, tok = load_on_cpu(tiny_model_dir)
    assert (
        prefix_sharing_off(_cfg(tiny_model_dir, tmp_path, gradient_checkpointing=False), model)
        is None
    )
    cfg = _cfg(tiny_model_dir, tmp_path)
    with caplog.at_level(logging.WARNING, logger="utils.training.trainer"):
        collator = make_collator(cfg, tok.pad_token_id, model)
    assert collator.share_prefix is False
    why = prefix_sharing_off(cfg, model)
    assert why and "gradient_checkpointing" in why
    assert [r.getMessage() for r in caplog.records] == [
        f"training.share_prompt_prefix is off for this run: {why}"
    ]
