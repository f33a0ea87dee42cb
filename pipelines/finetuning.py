"""The whole pipeline: prepare_data -> finetune -> evaluate (base, finetuned) -> promote."""

from __future__ import annotations

from typing import Any

from zenml import Model, pipeline
from zenml.config.schedule import Schedule

from steps.evaluate import evaluate
from steps.finetune import finetune
from steps.finetune_distributed import finetune_distributed
from steps.prepare_data import prepare_data
from steps.promote import promote
from utils.config import PipelineConfig
from utils.remote import pipeline_options

evaluate_base = evaluate.with_options(substitutions={"stage": "base"})
evaluate_finetuned = evaluate.with_options(substitutions={"stage": "finetuned"})


@pipeline
def llm_lora_finetuning(config: dict[str, Any]) -> None:
    cfg = PipelineConfig.model_validate(config)
    m = cfg.model
    model_args = {
        "task": cfg.dataset.task,
        "base_model_id": m.base_model_id,
        "quantization": m.quantization,
        "dtype": m.dtype,
        "trust_remote_code": m.trust_remote_code,
        "allow_pickle_weights": m.allow_pickle_weights,
        "evaluation": cfg.evaluation.model_dump(),
        "hf_token_secret": m.hf_token_secret,
    }
    dataset = prepare_data(
        dataset=cfg.dataset.model_dump(),
        base_model_id=m.base_model_id,
        trust_remote_code=m.trust_remote_code,
        hf_token_secret=m.hf_token_secret,
    )
    train = finetune_distributed if cfg.accelerate.num_processes > 1 else finetune
    adapter, training_summary, _ = train(
        config_json=cfg.training_json(), dataset=dataset, id="finetune"
    )
    base_metrics, base_predictions, _ = evaluate_base(
        dataset=dataset, id="evaluate_base", **model_args
    )
    finetuned_metrics, _, _ = evaluate_finetuned(
        dataset=dataset,
        adapter=adapter,
        baseline_predictions=base_predictions,
        id="evaluate_finetuned",
        **model_args,
    )
    promote(
        base_metrics=base_metrics,
        finetuned_metrics=finetuned_metrics,
        training_summary=training_summary,
        metric=cfg.promotion.metric,
        min_improvement=cfg.promotion.min_improvement,
        stage=cfg.promotion.stage,
        config=config,
    )


def model_for(cfg: PipelineConfig) -> Model:
    """A new model version per run (version=None), tagged so versions are easy to filter."""
    return Model(
        name=cfg.model.name,
        description=cfg.model.description,
        license=cfg.model.license,
        tags=[
            f"base:{cfg.model.base_model_id}",
            f"task:{cfg.dataset.task}",
            f"quantization:{cfg.model.quantization}",
        ],
    )


def build_pipeline(cfg: PipelineConfig, schedule: Schedule | None = None) -> Any:
    """The pipeline with its model, cache policy, `remote:` options and optional schedule."""
    options = pipeline_options(cfg.remote)
    steps = options.setdefault("steps", {})
    for name, extra in resume_step_options(cfg).items():
        steps[name] = {**steps.get(name, {}), **extra}
    return llm_lora_finetuning.with_options(
        model=model_for(cfg), enable_cache=cfg.enable_cache, schedule=schedule, **options
    )


def resume_step_options(cfg: PipelineConfig) -> dict[str, Any]:
    """An interrupted finetune of this config left a checkpoint: run the step (and resume),
    rather than serve an older completed finetune from the cache and leave it behind."""
    from utils.checkpoints import pending_checkpoint

    return {"finetune": {"enable_cache": False}} if pending_checkpoint(cfg) else {}
