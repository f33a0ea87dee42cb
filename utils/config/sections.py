"""The config schema: one section per concern, assembled into `PipelineConfig`.

Each section is also what the code that uses it takes as a parameter (the evaluate step
gets `ModelSource` and `EvaluationSection`, the loader `ModelSource`, ...).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, field_validator, model_validator

from utils.config.base import Section
from utils.config.constrain_section import ConstrainSection, constrain_value
from utils.config.data_sections import DatasetSection
from utils.config.launch_sections import GPU_AUTOCAST_FOR_DTYPE, AccelerateSection
from utils.config.remote_sections import RemoteSection
from utils.config.service_sections import ServingSection, SweepSection, TrackingSection
from utils.core.names import PROMOTION_STAGES, Stage
from utils.core.tasks import METRICS, ROUGE_L, TaskName, get_task


class ModelSource(Section):
    """Which base model, and how it is loaded: everything that decides its weights and
    outputs (and nothing that only names it), so it is what loading code takes."""

    base_model_id: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    quantization: Literal["none", "4bit", "8bit"] = "none"
    # auto: bf16 on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX), else float32.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # auto: transformers' default (sdpa), but eager for bf16 on a CPU (faster there).
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    trust_remote_code: bool = False
    # The NAME of a ZenML secret with a `token` key, read by the steps where they run (the
    # HF_TOKEN environment variable wins). Never the token itself: the config is stored as
    # metadata and step parameters.
    hf_token_secret: str | None = Field(None, min_length=1)
    # Pickle weights (.bin/.pt) can run code when loaded; only safetensors load unless this
    # says the folder is trusted.
    allow_pickle_weights: bool = False


class ModelSection(ModelSource):
    name: str = Field("viggo-lora", description="Model name in ZenML's Model Control Plane.")
    license: str = "apache-2.0"
    description: str = "LoRA adapter finetuned on ViGGO."

    def source(self) -> ModelSource:
        return ModelSource.model_validate(self.model_dump(include=set(ModelSource.model_fields)))


class LoraSection(Section):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # None = every linear projection of the transformer blocks, found from the architecture.
    target_modules: list[str] | None = None
    # Adapt only the last N blocks (None = all). Backpropagation then stops at the first
    # adapted block: on a CPU, LoRA on the top half of SmolLM2 trains ~1.5x faster per step.
    last_n_layers: int | None = Field(None, gt=0)


class TrainingSection(Section):
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
    # random: the Trainer's shuffled (length-grouped) rows; distinct_first: every distinct
    # input once before any twice (ViGGO has ~3 references per MR), then the next round.
    row_order: Literal["random", "distinct_first"] = "random"
    # Padding-free batches (rows concatenated, attention kept within each row). Pays with
    # flash attention on a GPU; on a CPU, length-grouped padded batches waste less.
    packing: bool = False
    # Padded batches run the prompt prefix all rows share (chat template + system prompt,
    # ~20% of a ViGGO row) once per batch; the rows attend to it through the KV cache. Same
    # loss and gradients. Off with packing, activation checkpointing or sliding-window caches.
    share_prompt_prefix: bool = True
    # A padded batch of more tokens (rows x longest row) runs as row slices within one
    # optimizer step: the same gradients, the activation memory of the largest slice.
    # None = whole batches. Splitting costs time on short batches (~8% per step on a CPU).
    max_batch_tokens: int | None = Field(None, gt=0)
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
    # Generative validation: every N optimizer steps (and at the last), decode up to
    # `validation_samples` distinct validation inputs and score them (SER and ROUGE-L for
    # data_to_text). None = off.
    validation_steps: int | None = Field(None, gt=0)
    validation_samples: int = Field(48, gt=0)
    # Save the weights of the best validation check, not the last step's.
    select_best: bool = False

    @model_validator(mode="after")
    def _select_needs_validation(self) -> TrainingSection:
        if self.select_best and self.validation_steps is None:
            raise ValueError("select_best needs validation_steps (how often to validate)")
        return self


class RerankSection(Section):
    """Slot-aware decoding: inputs whose greedy output fails the task's check (ViGGO slot
    errors for data_to_text; an MR that does not parse for text_to_mr) get more candidates;
    the one with the fewest errors wins, then (`select`) the one the model scores highest or
    the one the other candidates agree with most."""

    # sample: candidates drawn inside the continuous engine, one wave at a time, until one
    # passes the check; beam: transformers' beam search, all candidates at once (slow).
    method: Literal["sample", "beam"] = "sample"
    # At most this many candidates per failing input (the beam width for `beam`).
    candidates: int = Field(8, ge=1, le=64)
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    # Among the candidates with the fewest errors: `score` = the highest mean token
    # log-probability; `consensus` = the highest summed ROUGE-L against all candidates of
    # the input (minimum-Bayes-risk selection: the output closest to what the model would
    # say on average, which is what a held-out reference rewards). Consensus needs
    # candidates of every input, so it costs `candidates` draws per input.
    select: Literal["score", "consensus"] = "score"
    # The agreement `consensus` sums: ROUGE-L F (symmetric), sentence BLEU or chrF of the
    # candidate against each other candidate (expected utility under the model's samples).
    consensus_metric: Literal["rougeL", "bleu", "chrf"] = "rougeL"
    # false = candidates for every input (a greedy output with no error can still lose);
    # true = only for inputs whose greedy output fails the check. Unset: true for `score`,
    # false for `consensus`.
    only_failing: bool | None = None
    # A failing input's candidates are drawn in waves of two, up to the wave that brings
    # its error-free ones to this many; the best of those drawn wins by `select`. 1 = the
    # cheapest (stop at the first that passes); more = error-free candidates compete on
    # score; null = all `candidates` draws. Inputs that draw for every input
    # (`only_failing: false`) draw all their candidates.
    stop_after_passing: int | None = Field(1, ge=1)
    # The base model fails most inputs: reranking it costs several times its greedy pass.
    apply_to: Literal["finetuned", "both"] = "finetuned"
    seed: int = 0
    # Up to this many rows (inputs x (1 + candidates)), candidates start beside the greedy
    # rows instead of after them (same outputs): one decode instead of greedy then draws.
    # Pays where a step of a few rows costs about one row's (a GPU). Off by default: on a
    # 2-core Zen 3 CPU a 9-row step (greedy + 8 candidates) costs 1.5x a 1-row step, and with
    # 5 rows served p50 went 2.2 -> 3.8 s.
    together_rows: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _draws_for_select(self) -> RerankSection:
        if self.only_failing is None:
            self.only_failing = self.select == "score"
        elif self.only_failing and self.select == "consensus":
            raise ValueError(
                "rerank.select=consensus compares the candidates of every input: set "
                "rerank.only_failing=false (or leave it unset)"
            )
        if not self.only_failing and self.stop_after_passing is not None:
            if "stop_after_passing" in self.model_fields_set:
                raise ValueError(
                    "rerank.stop_after_passing stops a failing input's draws; with "
                    "rerank.only_failing=false every input draws all its candidates: "
                    "set it to null (or leave it unset)"
                )
            self.stop_after_passing = None
        return self


class EvaluationSection(Section):
    split: Literal["test", "validation"] = "test"
    max_samples: int | None = Field(None, gt=0)
    batch_size: int = Field(32, gt=0)
    # MiB the decode's KV cache and prefill memo may hold beside the weights; the batch
    # shrinks to fit it (utils/inference/memory_budget.py). null = batch_size rows whatever
    # they hold.
    memory_budget_mb: float | None = Field(None, gt=0)
    # None = derived from the reference lengths of the evaluated split.
    max_new_tokens: int | None = Field(None, gt=0)
    # continuous: finished rows leave the batch and waiting prompts take their slots (same
    # greedy outputs as `generate`, far fewer wasted steps); generate: transformers' generate;
    # vllm: vLLM on a GPU, the adapter unmerged (`pip install -r requirements-vllm.txt`).
    engine: Literal["continuous", "generate", "vllm"] = "continuous"
    # Answers are one line: stop there rather than let an untuned model comment on itself.
    stop_at_newline: bool = True
    # native: a decode step of one row (one served request) skips oneDNN's bf16 matmul,
    # slow at that shape on a CPU (1.7x per token on Zen 4); opt-in because about 1 logit in
    # 10,000 differs by one bf16 step from the default's (utils/inference/one_row.py).
    one_row_kernel: Literal["onednn", "native"] = "onednn"
    # Decode steps of few rows (a served request) feed up to this many guessed tokens per row
    # and keep those the model picks itself: the same outputs in fewer steps (~1.8 tokens per
    # step on ViGGO; utils/inference/speculative.py). 0 = one token per step.
    draft_tokens: int = Field(4, ge=0, le=15)
    # null = greedy decoding only.
    rerank: RerankSection | None = None
    # Grammar-constrained decoding (utils/config/constrain_section.py): null = off.
    constrain: Literal["mr"] | ConstrainSection | None = None

    @field_validator("constrain", mode="before")
    @classmethod
    def _constrain_shape(cls, v: object) -> object:
        return constrain_value(v)

    @model_validator(mode="after")
    def _vllm_samples(self) -> EvaluationSection:
        if self.engine == "vllm" and self.rerank is not None and self.rerank.method == "beam":
            raise ValueError(
                "evaluation.engine=vllm draws sampled candidates: set "
                "evaluation.rerank.method=sample"
            )
        return self

    @model_validator(mode="after")
    def _constrain_needs_a_mask(self) -> EvaluationSection:
        # The grammar is a mask on each picked token: vLLM and beam search pick their own.
        if self.constrain is None:
            return self
        if self.engine == "vllm":
            raise ValueError(
                "evaluation.constrain needs the continuous or generate engine, not vllm: set "
                "evaluation.engine=continuous or evaluation.constrain: null"
            )
        if self.rerank is not None and self.rerank.method == "beam":
            raise ValueError(
                "evaluation.constrain masks greedy and sampled tokens, not beam search: set "
                "evaluation.rerank.method=sample"
            )
        return self

    def rerank_for(self, finetuned: bool) -> RerankSection | None:
        """The reranking a model's decoding uses: none for the base model unless
        `rerank.apply_to: both`."""
        if self.rerank is None or (not finetuned and self.rerank.apply_to == "finetuned"):
            return None
        return self.rerank

    def for_base(self) -> EvaluationSection:
        """What the base model's evaluation depends on: without reranking settings it does not
        use, so a sweep over them re-uses the cached base scores."""
        if self.rerank_for(finetuned=False) is self.rerank:
            return self
        return self.model_copy(update={"rerank": None})


class PromotionSection(Section):
    metric: str = ROUGE_L.name
    min_improvement: float = Field(0.0, ge=0.0)
    stage: Stage = Stage.STAGING
    # false = record the decision's figures but never move a stage. A sweep sets it for the
    # variants it scores on a subset when it re-scores the best on the full split: a subset
    # score holding `staging` would make every full-split score incomparable with it.
    enabled: bool = True

    @field_validator("metric")
    @classmethod
    def _metric_known(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; valid: {', '.join(sorted(METRICS))}")
        return v

    @field_validator("stage")
    @classmethod
    def _stage_promotable(cls, v: Stage) -> Stage:
        if v not in PROMOTION_STAGES:
            valid = ", ".join(s.value for s in PROMOTION_STAGES)
            raise ValueError(f"the pipeline promotes to {valid}, not {Stage(v).value!r}")
        return v


class PipelineConfig(Section):
    model: ModelSection = ModelSection()
    lora: LoraSection = LoraSection()
    dataset: DatasetSection = DatasetSection()
    training: TrainingSection = TrainingSection()
    accelerate: AccelerateSection = AccelerateSection()
    evaluation: EvaluationSection = EvaluationSection()
    promotion: PromotionSection = PromotionSection()
    serving: ServingSection = ServingSection()
    enable_cache: bool = True
    remote: RemoteSection = RemoteSection()
    tracking: TrackingSection = TrackingSection()
    # Read by `run.py sweep` only; a plain run ignores it.
    sweep: SweepSection = SweepSection()

    @model_validator(mode="after")
    def _rerank_has_a_check(self) -> PipelineConfig:
        if self.evaluation.rerank is not None and get_task(self.dataset.task).mr_role is None:
            raise ValueError(
                f"evaluation.rerank needs a task whose outputs can be checked (data_to_text, "
                f"text_to_mr), not {self.dataset.task!r}; set evaluation.rerank: null"
            )
        return self

    @model_validator(mode="after")
    def _mr_constraint_needs_mrs(self) -> PipelineConfig:
        if self.evaluation.constrain == "mr" and self.dataset.task != TaskName.TEXT_TO_MR:
            raise ValueError(
                f"evaluation.constrain=mr makes outputs ViGGO MRs: it needs dataset.task="
                f"text_to_mr, not {self.dataset.task!r} (a regex or json_schema fits any task)"
            )
        return self

    @model_validator(mode="after")
    def _mixed_precision_follows_dtype(self) -> PipelineConfig:
        # Autocast is decided once, from model.dtype; a launcher flag that said otherwise
        # would make N processes compute differently from one.
        given = self.accelerate.mixed_precision
        implied = GPU_AUTOCAST_FOR_DTYPE[self.model.dtype]
        if given not in ("auto", implied):
            raise ValueError(
                f"accelerate.mixed_precision={given} contradicts model.dtype={self.model.dtype} "
                f"(which means {implied}, in 1 process and N alike): set model.dtype instead, "
                "and accelerate.mixed_precision to auto or leave it out"
            )
        return self

    @model_validator(mode="after")
    def _fsdp_combinations(self) -> PipelineConfig:
        # Config-level refusals; what needs the architecture is checked in preflight.
        if self.accelerate.strategy != "fsdp":
            return self
        if self.model.quantization == "8bit":
            raise ValueError(
                "model.quantization=8bit cannot be sharded with accelerate.strategy=fsdp "
                "(bitsandbytes' int8 weights are not FSDP-shardable): use 4bit (FSDP-QLoRA) "
                "or none, or strategy ddp"
            )
        if self.training.validation_steps is not None:
            raise ValueError(
                "training.validation_steps is not supported with accelerate.strategy=fsdp "
                "(generative validation decodes outside the sharded forward pass): set "
                "training.validation_steps: null"
            )
        return self

    @model_validator(mode="after")
    def _metric_exists_for_task(self) -> PipelineConfig:
        # Otherwise the mismatch surfaces only in the promote step, after all the training.
        valid = [m.name for m in get_task(self.dataset.task).metrics]
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


# The sections that shape the adapter (and so the finetune step's cache and checkpoints).
TRAINING_SECTIONS = {"model", "lora", "dataset", "training", "accelerate"}
