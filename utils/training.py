"""LoRA finetuning with transformers' Trainer (v5 API) on prompt-masked, dynamically padded rows
whose shared prompt prefix runs once per batch."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from utils.callbacks import ZenMLCallback
from utils.checkpoints import clear_checkpoints, plan_resume, trainer_checkpoint_arguments
from utils.config import PipelineConfig
from utils.data import read_jsonl
from utils.distributed import gather_from_ranks, trainable_digest
from utils.kv_cache import attach_prefix_cache, supports_plain_cache
from utils.models import (
    default_device,
    load_model,
    load_tokenizer,
    lora_target_modules,
    resolve_dtype,
    resolve_model_path,
)
from utils.prompts import CompletionCollator, PackedCollator
from utils.secrets import hf_token

logger = logging.getLogger(__name__)


def _as_dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"input_ids": r["input_ids"], "labels": r["labels"], "length": len(r["input_ids"])}
            for r in rows
        ]
    )


def apply_lora(model: Any, cfg: PipelineConfig) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.model.quantization != "none":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.training.gradient_checkpointing
        )
    targets = cfg.lora.target_modules or lora_target_modules(model)
    layers = None
    if cfg.lora.last_n_layers is not None:
        total = model.config.num_hidden_layers
        layers = list(range(max(0, total - cfg.lora.last_n_layers), total))
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
        layers_to_transform=layers,
        task_type="CAUSAL_LM",
    )
    logger.info("LoRA r=%d on %s, layers %s", cfg.lora.r, targets, layers or "all")
    return get_peft_model(model, lora)


def make_collator(cfg: PipelineConfig, pad_token_id: int, model: Any) -> Any:
    if cfg.training.packing:
        return PackedCollator()
    share = shares_prompt_prefix(cfg, model)
    # Left padding ends every answer in the last column: the LM head runs on the narrowest
    # window that holds all of the batch's labels.
    return CompletionCollator(
        pad_token_id, trim_prompt_logits=True, share_prefix=share, padding_side="left"
    )


def shares_prompt_prefix(cfg: PipelineConfig, model: Any) -> bool:
    t = cfg.training
    # Activation checkpointing turns the KV cache off; packed rows have no padding to share.
    wanted = t.share_prompt_prefix and not t.packing and not t.gradient_checkpointing
    return wanted and supports_plain_cache(model)


# transformers groups lengths within "megabatches" of up to 50 batches, but keeps at least 4
# of them: a dataset under 32 batches then gets random batches. One group is enough there.
MAX_BATCHES_PER_LENGTH_GROUP = 50


def length_grouped_order(lengths: list[int], batch_size: int, generator: Any = None) -> list[int]:
    """Row order for length-grouped batches: random groups of up to 50 batches, each sorted
    by length (transformers' `get_length_grouped_indices`, without its 4-group minimum)."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    groups = max(1, min(len(lengths) // batch_size, MAX_BATCHES_PER_LENGTH_GROUP))
    return get_length_grouped_indices(
        lengths, batch_size, mega_batch_mult=groups, generator=generator
    )


def trainer_class() -> type:
    """transformers' Trainer, taught to turn a batch's shared prefix into a KV cache and to
    group rows by length also in small datasets."""
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class LengthGroupedRows(LengthGroupedSampler):
        def __iter__(self):
            return iter(length_grouped_order(self.lengths, self.batch_size, self.generator))

    class LoRATrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "prefix_ids" in inputs:
                # The prefix pass bypasses the DDP wrapper: one wrapped forward per backward.
                # Its graph joins the rows' graph, so each weight still gets one gradient.
                inputs = attach_prefix_cache(self.accelerator.unwrap_model(model), inputs)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def _get_train_sampler(self, train_dataset=None):
            sampler = super()._get_train_sampler(train_dataset)
            if isinstance(sampler, LengthGroupedSampler):
                return LengthGroupedRows(sampler.batch_size, lengths=sampler.lengths)
            return sampler

    return LoRATrainer


def training_arguments(cfg: PipelineConfig, output_dir: Path, device: str, has_eval: bool) -> Any:
    from transformers import TrainingArguments

    t = cfg.training
    dtype = resolve_dtype(cfg.model.dtype, device)
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler,
        weight_decay=t.weight_decay,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_steps or t.max_steps,
        **trainer_checkpoint_arguments(t),
        report_to="none",
        seed=t.seed,
        bf16=dtype == torch.bfloat16 and cfg.model.quantization == "none",
        use_cpu=device == "cpu",
        activation_checkpointing=t.gradient_checkpointing,
        # Rows of similar length share a batch: far less padding than random batches.
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        length_column_name="length",
        remove_unused_columns=False,
        label_names=["labels"],
        # Packed rows have no padding, and no attention mask to count it by.
        include_num_input_tokens_seen="all" if t.packing else "non_padding",
        dataloader_num_workers=0,
        # Every trainable (LoRA) weight is used in each forward pass; searching costs time.
        ddp_find_unused_parameters=False,
    )


def train_lora(cfg: PipelineConfig, dataset_dir: Path, output_dir: Path) -> dict[str, Any]:
    """Train a LoRA adapter; the main process saves it (with tokenizer) to `output_dir`.

    Returns a summary (losses, steps, tokens, runtime, world size) that callers log to ZenML.
    Checkpoints go to a folder keyed by the config (utils/checkpoints.py); a matching one is
    resumed (`resumed_from_step`, 0 = from scratch) and the folder is deleted on success.
    """
    from transformers import set_seed

    # LoRA's A matrices are drawn before the Trainer seeds anything: without this, two runs
    # of one config start from different adapters (and a resumed run cannot match).
    set_seed(cfg.training.seed)
    device = default_device()
    path = resolve_model_path(cfg.model.base_model_id)
    token = hf_token(cfg.model.hf_token_secret)
    tokenizer = load_tokenizer(path, cfg.model.trust_remote_code, token=token)
    model = load_model(
        path,
        cfg.model.quantization,
        cfg.model.dtype,
        device,
        cfg.model.trust_remote_code,
        token=token,
        allow_pickle_weights=cfg.model.allow_pickle_weights,
    )
    model = apply_lora(model, cfg)
    train_rows = read_jsonl(dataset_dir / "train.jsonl")
    eval_file = dataset_dir / "validation.jsonl"
    eval_rows = read_jsonl(eval_file) if eval_file.is_file() else []
    callback = ZenMLCallback()
    collator = make_collator(cfg, tokenizer.pad_token_id, model)
    plan = plan_resume(cfg)
    trainer = trainer_class()(
        model=model,
        args=training_arguments(cfg, plan.folder, device, bool(eval_rows)),
        train_dataset=_as_dataset(train_rows),
        eval_dataset=_as_dataset(eval_rows) if eval_rows else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[callback],
    )
    start = time.perf_counter()
    result = trainer.train(
        resume_from_checkpoint=str(plan.resume_from) if plan.resume_from else None
    )
    runtime = time.perf_counter() - start
    adapter_dir = output_dir / "adapter"
    is_main = trainer.is_world_process_zero()
    if is_main:
        model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
    # Evidence that every rank trained and stayed in sync (identical weights after
    # all-reduced steps on different data shards), and that only rank 0 saved.
    ranks = gather_from_ranks(
        {"digest": trainable_digest(model), "saved": is_main, "steps": trainer.state.global_step}
    )
    if is_main:
        # Every rank is past the all_gather above: nobody reads the checkpoints any more.
        clear_checkpoints(plan.folder)
    losses = callback.losses()
    return {
        "world_size": trainer.args.world_size,
        "steps": int(trainer.state.global_step),
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "train_runtime_s": round(runtime, 2),
        "final_train_loss": losses["train_loss"][-1][1] if losses["train_loss"] else None,
        "mean_train_loss": float(result.training_loss),
        "final_eval_loss": losses["eval_loss"][-1][1] if losses["eval_loss"] else None,
        "trainable_params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "loss_history": losses,
        "train_rows": len(train_rows),
        "rank_weight_digests": [r["digest"] for r in ranks],
        "rank_saved_adapter": [r["saved"] for r in ranks],
        "rank_steps": [int(r["steps"]) for r in ranks],
        "resumed_from_step": plan.step,
        "packing": cfg.training.packing,
        "shared_prompt_prefix": bool(getattr(collator, "share_prefix", False)),
    }
