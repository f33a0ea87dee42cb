"""Names that users' scripts, the dashboard and the config rely on, written once.

Step invocation ids (also the keys of `remote.steps`), artifact names, model-version
metadata keys, stages, and the files a prepared dataset holds.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

# --- steps: invocation ids in the pipeline, names in the dashboard, `remote.steps.<id>` ---
# Only in runs with `dataset.synthetic` set; before prepare_data, which trains on its rows.
SYNTHESIZE_DATA = "synthesize_data"
PREPARE_DATA = "prepare_data"
FINETUNE = "finetune"
EVALUATE_BASE = "evaluate_base"
EVALUATE_FINETUNED = "evaluate_finetuned"
PROMOTE = "promote"
STEPS = (SYNTHESIZE_DATA, PREPARE_DATA, FINETUNE, EVALUATE_BASE, EVALUATE_FINETUNED, PROMOTE)


class EvalStage(StrEnum):
    """Which model an evaluation scores; `{stage}` in the evaluation artifacts' names."""

    BASE = "base"
    FINETUNED = "finetuned"


# --- artifacts ---
# synthesize_data: {"rows": the kept rows, "summary": counts and examples}. `synthetic` keys
# the summary in the step's metadata and in the data report, and marks the rows in train.jsonl.
SYNTHETIC_DATA = "synthetic_data"
SYNTHETIC = "synthetic"
DATASET = "dataset"  # prepare_data: the prepared splits (a folder)
DATA_REPORT = "data_report"  # prepare_data: the data report (HTML); also its metadata key
ADAPTER = "adapter"  # finetune: the LoRA adapter with its tokenizer (a folder)
TRAINING_SUMMARY = "training_summary"
LOSS_CURVE = "loss_curve"
PROMOTION = "promotion"
# The evaluate step runs twice; ZenML substitutes `{stage}` (base / finetuned).
STAGE_METRICS = "{stage}_metrics"
STAGE_PREDICTIONS = "{stage}_predictions"
STAGE_REPORT = "{stage}_report"


def metrics_name(stage: EvalStage | str) -> str:
    """`base_metrics` / `finetuned_metrics`: artifact name and model-version metadata key."""
    return STAGE_METRICS.format(stage=EvalStage(stage).value)


def predictions_name(stage: EvalStage | str) -> str:
    return STAGE_PREDICTIONS.format(stage=EvalStage(stage).value)


# --- serving: the inference pipeline's step and outputs (the keys of `outputs` in the
# response of `POST <url>/invoke`) ---
GENERATE = "generate"
SERVED_TEXTS = "texts"
SERVED_SLOT_ERRORS = "slot_errors"
# The deployment's default endpoints, which the request checks guard and `serve` prints:
# `INVOKE_PATH`, `SUBMIT_PATH`, `HEALTH_PATH`, read from ZenML's `DeploymentSettings`
# defaults on first use (importing ZenML costs ~1.5 s), so a rename in ZenML moves them too.
_ENDPOINT_FIELDS = {
    "INVOKE_PATH": "invoke_url_path",
    "SUBMIT_PATH": "submit_url_path",
    "HEALTH_PATH": "health_url_path",
}
# Model-version metadata key of a running deployment's counters (requests, inputs, errors
# by status, latency p50/p95), rewritten every `serving.stats_every_s`.
SERVING_STATS = "serving_stats"


def __getattr__(name: str) -> str:
    if name not in _ENDPOINT_FIELDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from zenml.config.deployment_settings import DeploymentSettings

    return DeploymentSettings.model_fields[_ENDPOINT_FIELDS[name]].default


# --- model-version metadata keys (besides the two metrics_name keys) ---
CONFIG = "config"
TRAINING = "training"  # the training summary; also the finetune step's metadata key
LOSS_HISTORY = "loss_history"
# Only in the summary Accelerate's children return (they have no step context, so no
# tracker): the experiment tracker's metric rows, which the parent step logs and removes.
TRACKER_METRICS = "tracker_metrics"
# In every metrics dict: what was scored, e.g. "test:all" or "test:100". Promotion compares
# only scores taken on the same set.
EVAL_SET = "eval_set"
# Cost figures the leaderboard reads: in the training summary (tokens, seconds, trainable
# parameters) and in every metrics dict (seconds); both carry the peak memory.
TOKENS_SEEN = "tokens_seen"
TRAIN_RUNTIME_S = "train_runtime_s"
TRAINABLE_PARAMS = "trainable_params"
GENERATION_SECONDS = "generation_seconds"
PEAK_MEMORY_MB = "peak_memory_mb"
# Each step's own memory (utils.core.peak_memory.StepMemory): its step metadata key, and in
# the training summary and every metrics dict, so the model version carries it too.
STEP_MEMORY = "step_memory"
# A sweep variant's version: {dotted key: value} of what it varied, and where it belongs
# ({id, variant, variants, phase, status}); its versions are tagged `sweep:<id>`.
SWEEP_OVERRIDES = "sweep_overrides"
SWEEP = "sweep"
SWEEP_TAG_PREFIX = "sweep:"
# The leaderboard of a model's versions (HTML: sortable table + quality-vs-cost scatter).
LEADERBOARD = "leaderboard"
# In every metrics dict: the decoding engine that ran, e.g. "continuous", or
# "generate (fallback: sliding-window cache)" where the model's cache ruled continuous out.
ENGINE = "engine"


# --- stages of the Model Control Plane ---
class Stage(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


# What the pipeline may promote to (archiving is a human decision).
PROMOTION_STAGES = (Stage.STAGING, Stage.PRODUCTION)

# --- files ---
# The checkout: relative paths in configs (Dockerfile, build context) are taken from here, and
# Accelerate's children import the project from here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "validation", "test")
# ViGGO on the Hugging Face hub; the files in data/viggo/ are the same rows (`dataset.source`).
VIGGO_HUB_DATASET = "GEM/viggo"
VIGGO_EMBEDDED_DIR = PROJECT_ROOT / "data" / "viggo"


def split_file(split: str) -> str:
    """A prepared split inside the `dataset` folder."""
    return f"{split}.jsonl"
