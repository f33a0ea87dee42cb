"""One typed, validated configuration object: YAML -> `PipelineConfig` -> step parameters.

Every user-facing mistake (unknown key, wrong type, bad value, missing file) is raised as
`ConfigError` with the dotted key named, before any step runs.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# text_to_text: any local or hub dataset (ROUGE/BLEU only; no ViGGO MR checks or SER).
TASKS = ("data_to_text", "text_to_mr", "text_to_text")
QUANTIZATIONS = ("none", "4bit", "8bit")


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message names the key and the valid values."""


class _Section(BaseModel):
    # Unknown keys are typos far more often than intent: reject them.
    # NaN/inf pass `gt`/`ge` bounds unnoticed (inf > 0) and poison training: reject them.
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )


class ModelSection(_Section):
    name: str = Field("viggo-lora", description="Model name in ZenML's Model Control Plane.")
    base_model_id: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    quantization: Literal["none", "4bit", "8bit"] = "none"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    license: str = "apache-2.0"
    description: str = "LoRA adapter finetuned on ViGGO."
    # The NAME of a ZenML secret with a `token` key, read by the steps where they run (the
    # HF_TOKEN environment variable wins). Never the token itself: the config is stored as
    # metadata and step parameters.
    hf_token_secret: str | None = Field(None, min_length=1)
    # Pickle weights (.bin/.pt) can run code when loaded; only safetensors load unless this
    # says the folder is trusted.
    allow_pickle_weights: bool = False


class LoraSection(_Section):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # None = every linear projection of the transformer blocks, found from the architecture.
    target_modules: list[str] | None = None
    # Adapt only the last N blocks (None = all). Backpropagation then stops at the first
    # adapted block: on a CPU, LoRA on the top half of SmolLM2 trains ~1.5x faster per step.
    last_n_layers: int | None = Field(None, gt=0)


class ColumnMap(_Section):
    """Which source columns hold the model's input, its target and (optionally) a list of
    extra references for evaluation."""

    input: str = Field(min_length=1)
    target: str = Field(min_length=1)
    references: str | None = Field(None, min_length=1)


class SplitRatio(_Section):
    """Fractions of the train split carved out (seeded) for splits the source lacks."""

    validation: float = Field(0.1, ge=0.0, lt=1.0)
    test: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _train_keeps_rows(self) -> SplitRatio:
        if self.validation + self.test >= 1.0:
            raise ValueError(
                f"validation + test must be below 1 so train keeps rows "
                f"(got {self.validation} + {self.test})"
            )
        return self


class DatasetSection(_Section):
    name: str = "GEM/viggo"
    data_dir: str | None = None
    task: Literal["data_to_text", "text_to_mr", "text_to_text"] = "data_to_text"
    system_prompt: str | None = None
    max_train_samples: int | None = Field(None, gt=0)
    max_validation_samples: int | None = Field(None, gt=0)
    # Safety cap only; batches are padded dynamically to their longest row.
    max_length: int = Field(512, gt=8)
    # None = the GEM ViGGO names for the task (input/target for text_to_text).
    columns: ColumnMap | None = None
    # None = every split must exist; otherwise missing validation/test come out of train.
    split_ratio: SplitRatio | None = None
    # Rows with an empty input/target or an unparsable ViGGO MR are skipped and reported;
    # more than this fraction of a split means the wrong file or column, so the run stops.
    max_malformed_fraction: float = Field(0.01, ge=0.0, le=1.0)


class TrainingSection(_Section):
    max_steps: int = Field(100, gt=0)
    learning_rate: float = Field(2e-4, gt=0.0, lt=1.0)
    batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    logging_steps: int = Field(10, gt=0)
    eval_steps: int | None = Field(None, gt=0)
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    # Padding-free batches (rows concatenated, attention kept within each row). Pays with
    # flash attention on a GPU; on a CPU, length-grouped padded batches waste less.
    packing: bool = False
    # Padded batches run the prompt prefix all rows share (chat template + system prompt,
    # ~20% of a ViGGO row) once per batch; the rows attend to it through the KV cache. Same
    # loss and gradients. Off with packing, activation checkpointing or sliding-window caches.
    share_prompt_prefix: bool = True
    seed: int = 42
    # Checkpoint (adapter + optimizer + scheduler + RNG) every N optimizer steps into a
    # folder keyed by this config, so a killed run loses at most N steps. None = never.
    save_steps: int | None = Field(10, gt=0)
    # auto: continue from a matching checkpoint when one exists; always: fail if none
    # (what `run.py --resume` sets); never: delete matching checkpoints and start over.
    resume: Literal["auto", "always", "never"] = "auto"
    # Root of the per-config checkpoint folders (default: $LORA_CHECKPOINT_DIR, else
    # ~/.cache/viggo-lora/checkpoints).
    checkpoint_dir: str | None = None


class AccelerateSection(_Section):
    # 1 = train in the step's own process (no launcher). >1 = `accelerate launch` children:
    # one per GPU, or CPU processes talking over gloo where no GPU exists.
    num_processes: int = Field(1, ge=1)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    main_process_port: int | None = Field(None, gt=0, lt=65536)


class EvaluationSection(_Section):
    split: Literal["test", "validation"] = "test"
    max_samples: int | None = Field(None, gt=0)
    batch_size: int = Field(32, gt=0)
    # None = derived from the reference lengths of the evaluated split.
    max_new_tokens: int | None = Field(None, gt=0)
    # continuous: finished rows leave the batch and waiting prompts take their slots (same
    # greedy outputs as `generate`, far fewer wasted steps); generate: transformers' generate.
    engine: Literal["continuous", "generate"] = "continuous"
    # Answers are one line: stop there rather than let an untuned model comment on itself.
    stop_at_newline: bool = True


class PromotionSection(_Section):
    metric: str = "rougeL"
    min_improvement: float = Field(0.0, ge=0.0)
    stage: str = "staging"


# --- remote stacks: image, step operator, per-step resources and retries --------------------
# Translated into ZenML options by utils/remote.py; the local orchestrator ignores them.

# ZenML's ResourceSettings memory format (zenml.config.resource_settings.MEMORY_REGEX).
MEMORY_PATTERN = r"^[0-9]+(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB|PB|PiB)$"
# Flavor-specific settings keys ZenML resolves against the active stack, e.g.
# `orchestrator.kubernetes` or `step_operator.sagemaker` (a bare type = the stack's own).
COMPONENT_SETTINGS_KEY = (
    r"^(orchestrator|step_operator|experiment_tracker|deployer)(\.[a-z0-9_-]+)?$"
)


def _check_component_settings(v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for key in v:
        if not re.match(COMPONENT_SETTINGS_KEY, key):
            raise ValueError(
                f"settings key {key!r} is not '<component type>[.<flavor>]' (e.g. "
                "'orchestrator.kubernetes'); image and resources have their own keys "
                "(remote.docker, remote.steps.<step>.resources)"
            )
    return v


class DockerSection(_Section):
    """ZenML DockerSettings: the image remote orchestrators and step operators run."""

    # Relative paths are taken from the project root, not the cwd.
    dockerfile: str | None = None
    build_context_root: str | None = None
    # Used when no dockerfile is given (e.g. a prebuilt image of this project).
    parent_image: str | None = None
    # Skip ZenML's own layer on top (the image must then contain the code already).
    skip_build: bool = False
    target_repository: str | None = None


class ResourcesSection(_Section):
    """ZenML ResourceSettings for one step."""

    cpu_count: float | None = Field(None, gt=0)
    gpu_count: int | None = Field(None, ge=0)
    memory: str | None = Field(None, pattern=MEMORY_PATTERN)


class RetrySection(_Section):
    """ZenML StepRetryConfig: waits `delay` s, then `delay * backoff` s, ... between tries."""

    max_retries: int = Field(0, ge=0)  # 0 = fail at once
    delay: int = Field(60, ge=0)
    backoff: int = Field(2, ge=1)


class StepRemoteSection(_Section):
    resources: ResourcesSection = ResourcesSection()
    retry: RetrySection = RetrySection()
    # Run this step on a step operator (remote.step_operator, or the stack's only one).
    step_operator: bool = False
    settings: dict[str, dict[str, Any]] = {}

    _component_keys = field_validator("settings")(_check_component_settings)


class RemoteStepsSection(_Section):
    prepare_data: StepRemoteSection = StepRemoteSection()
    finetune: StepRemoteSection = StepRemoteSection()
    evaluate_base: StepRemoteSection = StepRemoteSection()
    evaluate_finetuned: StepRemoteSection = StepRemoteSection()
    promote: StepRemoteSection = StepRemoteSection()


class RemoteSection(_Section):
    docker: DockerSection = DockerSection()
    # Name of the stack's step operator for steps with `step_operator: true`.
    step_operator: str | None = Field(None, min_length=1)
    # Pipeline-level component settings (see COMPONENT_SETTINGS_KEY).
    settings: dict[str, dict[str, Any]] = {}
    steps: RemoteStepsSection = RemoteStepsSection()

    _component_keys = field_validator("settings")(_check_component_settings)


class PipelineConfig(_Section):
    model: ModelSection = ModelSection()
    lora: LoraSection = LoraSection()
    dataset: DatasetSection = DatasetSection()
    training: TrainingSection = TrainingSection()
    accelerate: AccelerateSection = AccelerateSection()
    evaluation: EvaluationSection = EvaluationSection()
    promotion: PromotionSection = PromotionSection()
    enable_cache: bool = True
    remote: RemoteSection = RemoteSection()

    @field_validator("promotion")
    @classmethod
    def _metric_known(cls, v: PromotionSection) -> PromotionSection:
        if v.metric not in PROMOTION_METRICS:
            raise ValueError(
                f"unknown metric {v.metric!r}; valid: {', '.join(sorted(PROMOTION_METRICS))}"
            )
        return v

    @model_validator(mode="after")
    def _metric_exists_for_task(self) -> PipelineConfig:
        # Otherwise the mismatch surfaces only in the promote step, after all the training.
        valid = TASK_METRICS[self.dataset.task]
        if self.promotion.metric not in valid:
            raise ValueError(
                f"promotion.metric {self.promotion.metric!r} is not computed for task "
                f"{self.dataset.task!r}; valid: {', '.join(valid)}"
            )
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    def training_json(self) -> str:
        """Only the sections that shape the adapter, so that changing evaluation or promotion
        settings re-uses a cached finetune step."""
        return self.model_dump_json(include=TRAINING_SECTIONS)

    @classmethod
    def from_json(cls, text: str) -> PipelineConfig:
        return cls.model_validate(json.loads(text))


TRAINING_SECTIONS = {"model", "lora", "dataset", "training", "accelerate"}

# Metrics where higher is better can be promoted on; `ser` is an error rate (lower is better).
PROMOTION_METRICS = {
    "rouge1": "max",
    "rouge2": "max",
    "rougeL": "max",
    "rougeLsum": "max",
    "bleu": "max",
    "ser": "min",
    "exact_match": "max",
    "slot_f1": "max",
    "act_accuracy": "max",
}
_ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")
TASK_METRICS = {
    "data_to_text": (*_ROUGE, "bleu", "ser"),
    "text_to_mr": (*_ROUGE, "exact_match", "slot_f1", "act_accuracy"),
    "text_to_text": (*_ROUGE, "bleu"),
}


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        # Optional sections (`ColumnMap | None`) have their keys too.
        for ann in (field.annotation, *get_args(field.annotation)):
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                keys.extend(_known_keys(ann, prefix + name + "."))
    return keys


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    valid = _known_keys(PipelineConfig)
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            # Siblings first: in deep sections the parent key is often the closest string.
            parent = key.rpartition(".")[0]
            siblings = [k for k in valid if k.rpartition(".")[0] == parent]
            close = difflib.get_close_matches(key, siblings, n=1) or difflib.get_close_matches(
                key, valid, n=1
            )
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"unknown key {key!r}{hint}")
        elif e["type"] == "value_error":
            # Our own validators already say what they got and what is valid.
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg}" if key else msg)
        else:
            got = e.get("input")
            lines.append(f"{key}: {e['msg']} (got {got!r})")
    return f"invalid config {source}: " + "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`training.max_steps=4` -> (["training", "max_steps"], 4); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"config file {path} is not valid YAML: {problem}{where}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def validate_config(data: Any, source: str = "") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: expected a mapping")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, source)) from None


def load_config(
    path: Path | str | None,
    overrides: list[str] | None = None,
    data_dir: str | None = None,
) -> PipelineConfig:
    """Read YAML, apply `--set` overrides and `--data-dir`, validate once."""
    data = read_yaml(Path(path)) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    if data_dir is not None:
        data.setdefault("dataset", {})
        if not isinstance(data["dataset"], dict):
            raise ConfigError("'dataset' must be a section")
        data["dataset"]["data_dir"] = str(data_dir)
    return validate_config(data, str(path) if path else "(defaults)")
