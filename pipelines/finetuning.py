"""The whole pipeline: [synthesize_data ->] prepare_data -> finetune -> evaluate (base,
finetuned) -> promote. synthesize_data is in the run only when `dataset.synthetic` is set."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.config.schedule import Schedule

from steps.evaluate import evaluate
from steps.finetune import finetune
from steps.finetune_distributed import finetune_distributed
from steps.prepare_data import prepare_data
from steps.promote import promote
from steps.synthesize_data import synthesize_data
from utils.config import PipelineConfig
from utils.core.names import (
    EVALUATE_BASE,
    EVALUATE_FINETUNED,
    FINETUNE,
    PREPARE_DATA,
    PROMOTE,
    SYNTHESIZE_DATA,
    EvalStage,
)
from utils.training.remote_checkpoints import pending_checkpoint
from utils.zenml_ops.model_versions import model_for
from utils.zenml_ops.remote_options import pipeline_options
from utils.zenml_ops.scratch import remove_scratch_folders
from utils.zenml_ops.tracking import add_tracker_options, stack_tracker

evaluate_base = evaluate.with_options(substitutions={"stage": EvalStage.BASE.value})
evaluate_finetuned = evaluate.with_options(substitutions={"stage": EvalStage.FINETUNED.value})


@pipeline
def llm_lora_finetuning(config: PipelineConfig) -> None:
    m, task = config.model, config.dataset.task
    # Round-trip-verified rows from earlier runs' versions, for this run's training split.
    synthetic = (
        synthesize_data(dataset=config.dataset, id=SYNTHESIZE_DATA)
        if config.dataset.synthetic is not None
        else None
    )
    dataset, _ = prepare_data(
        dataset=config.dataset,
        base_model_id=m.base_model_id,
        trust_remote_code=m.trust_remote_code,
        hf_token_secret=m.hf_token_secret,
        synthetic=synthetic,
        id=PREPARE_DATA,
    )
    train = finetune_distributed if config.accelerate.num_processes > 1 else finetune
    adapter, training_summary, _ = train(
        config_json=config.training_json(), dataset=dataset, id=FINETUNE
    )
    base_metrics, base_predictions, _ = evaluate_base(
        dataset=dataset, task=task, model=m.source(), evaluation=config.evaluation.for_base(),
        id=EVALUATE_BASE,
    )  # fmt: skip
    finetuned_metrics, _, _ = evaluate_finetuned(
        dataset=dataset, task=task, model=m.source(), evaluation=config.evaluation,
        adapter=adapter, baseline_predictions=base_predictions, id=EVALUATE_FINETUNED,
    )  # fmt: skip
    promote(
        base_metrics=base_metrics,
        finetuned_metrics=finetuned_metrics,
        training_summary=training_summary,
        config=config,
        id=PROMOTE,
    )


def build_pipeline(
    cfg: PipelineConfig,
    schedule: Schedule | None = None,
    version: str | None = None,
    tags: tuple[str, ...] = (),
    track: bool = True,
) -> Any:
    """The pipeline with its model (a new version: numbered, or named `version`; `tags` on
    it), cache policy, `remote:` options and optional schedule; finetune and both
    evaluations log to the active stack's experiment tracker, if it has one (and `track`:
    the preflight check can leave it out)."""
    options = pipeline_options(cfg.remote)
    steps = options.setdefault("steps", {})
    tracker = stack_tracker() if track else None
    if tracker is not None:
        add_tracker_options(steps, cfg, tracker)
    # An interrupted finetune of this config left a checkpoint: run the step (and resume),
    # rather than serve an older completed finetune from the cache and leave it behind.
    if pending_checkpoint(cfg):
        steps[FINETUNE] = {**steps.get(FINETUNE, {}), "enable_cache": False}
    return llm_lora_finetuning.with_options(
        model=model_for(cfg, version, tags),
        enable_cache=cfg.enable_cache,
        schedule=schedule,
        # The steps' output folders, once ZenML has stored them.
        on_cleanup=remove_scratch_folders,
        **options,
    )
