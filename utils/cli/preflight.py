"""Checks before a run: everything a user can get wrong fails here, with one line, before
any step runs or a model version exists."""

from __future__ import annotations

import logging
from typing import Any

from utils.config import ConfigError, PipelineConfig
from utils.core.errors import one_line

logger = logging.getLogger(__name__)


def check_stack(cfg: PipelineConfig, schedule: Any) -> None:
    """Schedules and step operators the active stack cannot honour fail here, before a run."""
    from utils.zenml_ops.remote_options import check_step_operator, steps_on_step_operator
    from utils.zenml_ops.schedules import check_orchestrator

    if schedule is None and not steps_on_step_operator(cfg.remote):
        return
    from zenml.client import Client

    stack = Client().active_stack
    if schedule is not None:
        orchestrator = stack.orchestrator
        check_orchestrator(orchestrator.flavor, orchestrator.config.is_schedulable, schedule)
    check_step_operator(cfg.remote, stack.name, set(stack.step_operators))


def check_tracking(cfg: PipelineConfig) -> bool:
    """Whether the steps log to the stack's experiment tracker: an unusable one fails here
    (one line naming it) unless `tracking.required: false`, which leaves it out."""
    from utils.zenml_ops.tracking import check_tracker

    return check_tracker(cfg)


def preflight(cfg: PipelineConfig) -> None:
    """Fail before any step runs (and before a model version exists) on fixable problems."""
    from utils.data.rows import load_task_splits
    from utils.modeling.architecture import check_lora_fits, meta_model_of
    from utils.modeling.hub import hub_reachable
    from utils.modeling.precision import attention_problem
    from utils.modeling.quantization import check_quantizable
    from utils.modeling.resolve import resolve_model_path
    from utils.modeling.safety import check_model_folder
    from utils.zenml_ops.remote_options import runs_locally
    from utils.zenml_ops.secrets import check_hf_secret, hf_token
    from utils.zenml_ops.synthetic_sources import check_sources

    # The Model Control Plane is this client's, wherever the steps run.
    check_sources(cfg.dataset)
    local = runs_locally()
    if cfg.model.hf_token_secret:
        if local:
            hf_token(cfg.model.hf_token_secret)  # this machine's HF_TOKEN wins
        else:
            # A remote step never sees this machine's HF_TOKEN: the secret must exist.
            check_hf_secret(cfg.model.hf_token_secret)
    if not local:
        # Data folders, the hub and the model cache are those of the machines steps run on;
        # checkpoints are looked for in the artifact store, where the step will look.
        _check_resume(cfg)
        return
    attention = attention_problem(cfg.model.source())  # on this machine's device
    if attention:
        raise ConfigError(attention)
    check_engine(cfg)
    if not cfg.dataset.data_dir and cfg.dataset.source == "hub" and not hub_reachable():
        from utils.data.sources import DataError

        raise DataError(
            f"the Hugging Face hub is unreachable, so dataset {cfg.dataset.name!r} cannot be "
            "downloaded (dataset.source: hub): pass --data-dir PATH, or use "
            "dataset.source: embedded for the ViGGO files in data/viggo/"
        )
    # Every row, as prepare_data will read it (~1 s for ViGGO): missing splits or columns and
    # malformed rows stop the run here, not in a step after a model version exists.
    splits = load_task_splits(cfg.dataset)
    path = resolve_model_path(cfg.model.base_model_id)
    check_model_folder(path, cfg.model.allow_pickle_weights)
    token = hf_token(cfg.model.hf_token_secret)
    # The architecture from config.json alone: what LoRA, quantization and attention ask of
    # it is checked here, not at load time inside finetune after prepare_data ran.
    model = meta_model_of(path, cfg.model.trust_remote_code, token)
    check_lora_fits(model, cfg.lora, path)
    check_quantizable(
        path, cfg.model.quantization, cfg.model.trust_remote_code, token=token, model=model
    )
    check_launch(cfg, model)
    check_prompt_renders(path, cfg, token, splits["train"].rows[0]["input"])
    _check_resume(cfg)


def check_engine(cfg: PipelineConfig) -> None:
    """The evaluation's engine runs on this machine (vllm: the package and a CUDA GPU)."""
    if cfg.evaluation.engine == "vllm":
        from utils.inference.vllm_engine import vllm_problem

        problem = vllm_problem(cfg.model.quantization)
        if problem:
            raise ConfigError(problem)


def check_launch(cfg: PipelineConfig, model: Any) -> None:
    """The multi-process launch can be built: machines (config or this environment) and,
    for FSDP, a layer class to wrap and 4-bit weights that shard. `model`: the meta model."""
    from utils.modeling.architecture import decoder_layer_class, wrap_layer_problem
    from utils.modeling.precision import precision_for
    from utils.modeling.quantization import fsdp_4bit_problem
    from utils.training.distributed import machines_for

    if cfg.accelerate.num_processes > 1:
        machines_for(cfg.accelerate)
    if cfg.accelerate.strategy != "fsdp":
        return
    wrap = cfg.accelerate.fsdp.wrap_layer
    problem = wrap_layer_problem(model, wrap) if wrap else None
    if wrap is None:
        decoder_layer_class(model)  # raises, naming the key to set, if there is none
    if problem is None and cfg.model.quantization == "4bit":
        problem = fsdp_4bit_problem(precision_for(cfg.model.source()).dtype)
    if problem:
        raise ConfigError(problem)


def check_prompt_renders(
    path: str, cfg: PipelineConfig, token: str | None, task_input: str
) -> None:
    """The tokenizer's chat template renders the prompt every step builds. A template
    without a system role is no error (`build_prompt` folds the system prompt into the user
    turn); one that renders no conversation at all is."""
    from utils.data.prompts import build_prompt, system_prompt_for
    from utils.modeling.loader import load_tokenizer
    from utils.modeling.resolve import ModelLoadError

    tokenizer = load_tokenizer(path, cfg.model.trust_remote_code, token=token)
    system = system_prompt_for(cfg.dataset.task, cfg.dataset.system_prompt)
    try:
        build_prompt(tokenizer, task_input, system, cfg.dataset.enable_thinking)
    except Exception as e:  # jinja2's TemplateError, or what a template raises itself
        reason = one_line(e)
        raise ModelLoadError(
            f"model.base_model_id={cfg.model.base_model_id}: its chat template cannot render "
            f"the prompt (a user turn, with or without a system turn): {reason}"
        ) from e


def _check_resume(cfg: PipelineConfig) -> None:
    from utils.training.remote_checkpoints import check_resume

    checkpoint = check_resume(cfg)
    if checkpoint is not None:
        logger.info("finetune resumes from step %d (%s)", checkpoint.step, checkpoint.where)
