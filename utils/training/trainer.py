"""transformers' Trainer as this project runs it: its arguments, its batches (length-grouped,
prompt prefix shared through the KV cache) and its collator."""

from __future__ import annotations

import contextlib
import logging
import random
from pathlib import Path
from typing import Any

from utils.config import PipelineConfig
from utils.modeling.kv_cache import model_type, plain_cache_problem
from utils.modeling.lora import CHECKPOINTING_KWARGS
from utils.modeling.precision import Precision
from utils.training.checkpoints import trainer_checkpoint_arguments
from utils.training.collators import CompletionCollator, PackedCollator
from utils.training.fsdp import accelerate_fsdp_on_cpu_ranks, trainable_state
from utils.training.micro_batches import row_slices
from utils.training.prefix_cache import attach_prefix_cache

logger = logging.getLogger(__name__)


def make_collator(cfg: PipelineConfig, pad_token_id: int, model: Any) -> Any:
    if cfg.training.packing:
        return PackedCollator()
    off = prefix_sharing_off(cfg, model)
    if off and cfg.training.share_prompt_prefix:
        logger.warning("training.share_prompt_prefix is off for this run: %s", off)
    share = off is None
    # Left padding ends every answer in the last column: the LM head runs on the narrowest
    # window that holds all of the batch's labels.
    return CompletionCollator(
        pad_token_id, trim_prompt_logits=True, share_prefix=share, padding_side="left"
    )


def prefix_sharing_off(cfg: PipelineConfig, model: Any) -> str | None:
    """Why the batches' shared prompt prefix is NOT run once through the KV cache, or None
    when it is."""
    t = cfg.training
    if not t.share_prompt_prefix:
        return "training.share_prompt_prefix is false"
    if t.packing:
        return "training.packing is on (packed rows have no shared padding prefix)"
    if cfg.accelerate.strategy == "fsdp":
        return (
            "accelerate.strategy is fsdp (the prefix pass would bypass the sharded module "
            "that gathers each block's weights)"
        )
    if t.gradient_checkpointing:
        return (
            "training.gradient_checkpointing is on (checkpointed blocks recompute without "
            "the prefix's KV cache)"
        )
    problem = plain_cache_problem(model)
    if problem is not None:
        return f"{model_type(model)}: {problem} (its K/V cannot be expanded and spliced)"
    return None


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


def distinct_first_order(
    inputs: list[str], lengths: list[int], batch_size: int, seed: int
) -> list[int]:
    """Row order where every distinct input comes once before any comes twice.

    ViGGO gives each MR ~3 references: rows are dealt in rounds (the first reference of
    every MR in random order, then the second, ...), so a run shorter than an epoch sees
    as many different MRs as it can. Within windows of up to 50 batches rows are sorted by
    length, as in `length_grouped_order`, so padding stays low.
    """
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    rounds: list[list[int]] = []
    for i, text in enumerate(inputs):
        k = seen[text] = seen.get(text, -1) + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(i)
    order: list[int] = []
    for rows in rounds:
        rng.shuffle(rows)
        order += rows
    window = batch_size * MAX_BATCHES_PER_LENGTH_GROUP
    grouped: list[int] = []
    for start in range(0, len(order), window):
        grouped += sorted(order[start : start + window], key=lambda i: -lengths[i])
    return grouped


class DistinctFirst:
    """A sampler over `distinct_first_order`, dealt anew (another seed) every epoch."""

    def __init__(self, inputs: list[str], lengths: list[int], batch_size: int, seed: int):
        self.inputs, self.lengths, self.batch_size, self.seed = inputs, lengths, batch_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self):
        order = distinct_first_order(
            self.inputs, self.lengths, self.batch_size, self.seed + self.epoch
        )
        self.epoch += 1
        return iter(order)


def trainer_class() -> type:
    """transformers' Trainer, taught to turn a batch's shared prefix into a KV cache and to
    group rows by length also in small datasets."""
    import torch
    from transformers import Trainer
    from transformers.trainer import TRAINING_ARGS_NAME
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class LengthGroupedRows(LengthGroupedSampler):
        def __iter__(self):
            return iter(length_grouped_order(self.lengths, self.batch_size, self.generator))

    class LoRATrainer(Trainer):
        # An iterable of row indices (a `DistinctFirst`), or None for the Trainer's own
        # (length-grouped random) sampling.
        row_order: Any = None
        # `training.max_batch_tokens`: larger batches run as row slices (same gradients).
        max_batch_tokens: int | None = None

        def create_accelerator_and_postprocess(self):
            # The Trainer then derives `is_fsdp_enabled` from the plugin, as on GPUs.
            with accelerate_fsdp_on_cpu_ranks():
                super().create_accelerator_and_postprocess()

        def save_model(self, output_dir=None, _internal_call=False):
            if not self.is_fsdp_enabled:
                return super().save_model(output_dir, _internal_call)
            # The Trainer's FSDP path gathers the whole model (base weights too) onto rank 0
            # for FULL_STATE_DICT, and saves no adapter at all for SHARDED_STATE_DICT. Only
            # the LoRA weights are gathered here (a collective: every rank calls save_model),
            # and the main process writes them as a plain peft adapter. The FSDP state to
            # resume from is written beside it (`_save_optimizer_and_scheduler`).
            output_dir = output_dir or self.args.output_dir
            state = trainable_state(self.model)
            if self.args.should_save:
                self.accelerator.unwrap_model(self.model).save_pretrained(
                    output_dir, state_dict=state
                )
                if self.processing_class is not None:
                    self.processing_class.save_pretrained(output_dir)
                torch.save(self.args, Path(output_dir) / TRAINING_ARGS_NAME)
            return None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "prefix_ids" in inputs:
                # The prefix pass bypasses the DDP wrapper: one wrapped forward per backward.
                # Its graph joins the rows' graph, so each weight still gets one gradient.
                inputs = attach_prefix_cache(self.accelerator.unwrap_model(model), inputs)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def training_step(self, model, inputs, num_items_in_batch=None):
            slices = row_slices(inputs, self.max_batch_tokens)
            # Without the batch's label count each slice's loss would be its own mean, and
            # the slices' gradients would not add up to the batch's: run it whole.
            if len(slices) == 1 or num_items_in_batch is None:
                return super().training_step(model, inputs, num_items_in_batch)
            loss = None
            for i, part in enumerate(slices):
                # Data-parallel ranks average gradients once, after the last slice.
                last = i == len(slices) - 1
                with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                    part_loss = super().training_step(model, part, num_items_in_batch)
                loss = part_loss if loss is None else loss + part_loss
            return loss

        def _get_train_sampler(self, train_dataset=None):
            if self.row_order is not None:
                return self.row_order
            sampler = super()._get_train_sampler(train_dataset)
            if isinstance(sampler, LengthGroupedSampler):
                return LengthGroupedRows(sampler.batch_size, lengths=sampler.lengths)
            return sampler

    return LoRATrainer


def training_arguments(
    cfg: PipelineConfig, output_dir: Path, precision: Precision, has_eval: bool
) -> Any:
    from transformers import TrainingArguments

    t = cfg.training
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
        # One autocast decision (`Precision.autocast`) for 1 process and N.
        bf16=precision.trainer_bf16,
        fp16=precision.trainer_fp16,
        use_cpu=precision.device == "cpu",
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs=dict(CHECKPOINTING_KWARGS),
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
