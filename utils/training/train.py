"""LoRA finetuning with transformers' Trainer (v5 API) on prompt-masked, dynamically padded rows
whose shared prompt prefix runs once per batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.config import PipelineConfig
from utils.core.names import (
    PEAK_MEMORY_MB,
    TOKENS_SEEN,
    TRAIN_RUNTIME_S,
    TRAINABLE_PARAMS,
    split_file,
)
from utils.core.onednn_caches import bound_onednn_caches
from utils.core.peak_memory import PeakMemory
from utils.data.jsonl import read_jsonl
from utils.inference.stops import max_new_tokens_for
from utils.modeling.loader import load_model
from utils.modeling.lora import apply_lora
from utils.modeling.precision import Precision, precision_for
from utils.training.checkpoints import clear_checkpoints, plan_resume
from utils.training.distributed import gather_from_ranks, trainable_digest
from utils.training.fsdp import fsdp_mixed_precision, held_parameter_bytes, trainable_state
from utils.training.history import LossHistory
from utils.training.metric_log import MetricLog
from utils.training.rank_failures import report_rank_failure
from utils.training.remote_checkpoints import CheckpointMirror, mirror_callback
from utils.training.trainer import (
    DistinctFirst,
    make_collator,
    prefix_sharing_off,
    trainer_class,
    training_arguments,
)
from utils.training.validation import GenerativeValidation, validation_sample

logger = logging.getLogger(__name__)


def _as_dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"input_ids": r["input_ids"], "labels": r["labels"], "length": len(r["input_ids"])}
            for r in rows
        ]
    )


def train_lora(
    cfg: PipelineConfig,
    dataset_dir: Path,
    adapter_dir: Path,
    callbacks: Sequence[Any] = (),
    mirror: CheckpointMirror | None = None,
    metric_log: MetricLog | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter; the main process saves it (with tokenizer) to `adapter_dir`.
    In a launched rank a failure is reported in one line (`utils.training.rank_failures`).

    Returns a summary (losses, steps, tokens, runtime, world size) that callers log to ZenML.
    Checkpoints go to a folder keyed by the config (`utils.training.checkpoints`); a matching
    one is resumed (`resumed_from_step`, 0 = from scratch) and the folder is deleted on
    success. With a `mirror`, each checkpoint is also copied to the artifact store, and a
    newer one found there is resumed (a retry on another machine); deleted on success too.
    A `metric_log` collects (and forwards to its tracker) the per-step metrics, validation
    checks included.
    """
    with report_rank_failure():
        return _train_lora(cfg, dataset_dir, adapter_dir, callbacks, mirror, metric_log)


def _train_lora(
    cfg: PipelineConfig,
    dataset_dir: Path,
    adapter_dir: Path,
    callbacks: Sequence[Any],
    mirror: CheckpointMirror | None,
    metric_log: MetricLog | None,
) -> dict[str, Any]:
    from transformers import set_seed

    # A no-op after run.py did it; here for the processes that start elsewhere (Accelerate's
    # ranks, benches), before the model's first matmul.
    bound_onednn_caches()
    # LoRA's A matrices are drawn before the Trainer seeds anything: without this, two runs
    # of one config start from different adapters (and a resumed run cannot match).
    set_seed(cfg.training.seed)
    source = cfg.model.source()
    precision = precision_for(source)
    sharded = cfg.accelerate.strategy == "fsdp"
    model, tokenizer = load_model(source, precision=precision, fsdp=sharded)
    model = apply_lora(model, cfg.lora, source.quantization, cfg.training.gradient_checkpointing)
    train_rows = read_jsonl(dataset_dir / split_file("train"))
    eval_file = dataset_dir / split_file("validation")
    eval_rows = read_jsonl(eval_file) if eval_file.is_file() else []
    callback = LossHistory()
    validation = _generative_validation(cfg, dataset_dir, tokenizer, precision, train_rows)
    tracked = []
    if metric_log is not None:
        metric_log.watch(validation)
        tracked.append(metric_log)  # after `validation`: it emits that step's check
    collator = make_collator(cfg, tokenizer.pad_token_id, model)
    plan = plan_resume(cfg, mirror)
    # Counted before any wrapper: FSDP leaves each rank only its shards of the parameters.
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    mirroring = [mirror_callback(mirror)] if cfg.training.save_steps else []
    trainer = trainer_class()(
        model=model,
        args=training_arguments(cfg, plan.folder, precision, bool(eval_rows)),
        train_dataset=_as_dataset(train_rows),
        eval_dataset=_as_dataset(eval_rows) if eval_rows else None,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[
            callback,
            *([validation] if validation else []),
            *tracked,
            *mirroring,
            *callbacks,
        ],
    )
    trainer.max_batch_tokens = cfg.training.max_batch_tokens
    if cfg.training.row_order == "distinct_first":
        trainer.row_order = DistinctFirst(
            [r["input"] for r in train_rows],
            [len(r["input_ids"]) for r in train_rows],
            cfg.training.batch_size,
            cfg.training.seed,
        )
    start = time.perf_counter()
    with PeakMemory() as peak:
        result = trainer.train(
            resume_from_checkpoint=str(plan.resume_from) if plan.resume_from else None
        )
    runtime = time.perf_counter() - start
    is_main = trainer.is_world_process_zero()
    # Whole on every rank (FSDP: gathered from the shards, a collective): what rank 0 saves
    # and what every rank's digest is taken of.
    lora_state = trainable_state(trainer.model)
    if is_main:
        model.save_pretrained(adapter_dir, state_dict=lora_state)
        tokenizer.save_pretrained(adapter_dir)
    # Evidence that every rank trained and stayed in sync (identical weights after
    # all-reduced steps on different data shards), that only rank 0 saved, and (FSDP) that
    # each rank held only its shard of the parameters.
    ranks = gather_from_ranks(
        {
            "digest": trainable_digest(lora_state),
            "saved": is_main,
            "steps": trainer.state.global_step,
            "param_bytes": held_parameter_bytes(trainer.model),
        }
    )
    if is_main:
        # Every rank is past the all_gather above: nobody reads the checkpoints any more.
        clear_checkpoints(plan.folder)
        if mirror is not None:
            mirror.clear()
    losses = callback.losses()
    return {
        "world_size": trainer.args.world_size,
        "steps": int(trainer.state.global_step),
        TOKENS_SEEN: int(trainer.state.num_input_tokens_seen),
        TRAIN_RUNTIME_S: round(runtime, 2),
        # This rank's peak while training (MiB; see utils.core.peak_memory).
        PEAK_MEMORY_MB: peak.mb,
        "final_train_loss": losses["train_loss"][-1][1] if losses["train_loss"] else None,
        "mean_train_loss": float(result.training_loss),
        "final_eval_loss": losses["eval_loss"][-1][1] if losses["eval_loss"] else None,
        TRAINABLE_PARAMS: int(sum(t.numel() for t in lora_state.values())),
        "loss_history": losses,
        "train_rows": len(train_rows),
        "rank_weight_digests": [r["digest"] for r in ranks],
        "rank_saved_adapter": [r["saved"] for r in ranks],
        "rank_steps": [int(r["steps"]) for r in ranks],
        "strategy": cfg.accelerate.strategy,
        "fsdp": cfg.accelerate.fsdp.model_dump() if sharded else None,
        "fsdp_mixed_precision": fsdp_mixed_precision(trainer),
        "param_bytes": int(param_bytes),
        "rank_param_bytes": [int(r["param_bytes"]) for r in ranks],
        "resumed_from_step": plan.step,
        # The optimizer steps at which this run wrote a Trainer checkpoint.
        "checkpoint_steps": callback.checkpoint_steps,
        "packing": cfg.training.packing,
        "shared_prompt_prefix": bool(getattr(collator, "share_prefix", False)),
        # Why not (None when it is shared): e.g. activation checkpointing turns it off.
        "shared_prompt_prefix_off": prefix_sharing_off(cfg, model),
        "dtype": str(precision.dtype).removeprefix("torch."),
        # What ran, from the one precision policy: the same on 1 process and N.
        "autocast": precision.autocast,
        "quantization": source.quantization,
        "gradient_checkpointing": cfg.training.gradient_checkpointing,
        **(validation.summary() if validation else {}),
    }


def _generative_validation(
    cfg: PipelineConfig,
    dataset_dir: Path,
    tokenizer: Any,
    precision: Precision,
    train_rows: list[dict[str, Any]],
) -> GenerativeValidation | None:
    t = cfg.training
    eval_file = dataset_dir / split_file("validation")
    if t.validation_steps is None or not eval_file.is_file():
        return None
    rows = validation_sample(read_jsonl(eval_file), t.validation_samples, seed=t.seed)
    return GenerativeValidation(
        tokenizer,
        rows,
        cfg.dataset.task,
        every=t.validation_steps,
        max_new_tokens=max_new_tokens_for(tokenizer, [r["target"] for r in train_rows]),
        batch_size=cfg.evaluation.batch_size,
        select_best=t.select_best,
        autocast_bf16=precision.trainer_bf16,
    )
