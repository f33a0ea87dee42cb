"""The dataset section: where rows come from, which columns hold them, how splits are made."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from utils.config.base import Section
from utils.core.names import VIGGO_HUB_DATASET
from utils.core.tasks import TaskName, get_task

# What `dataset.augment` may list (utils/data/augment.py implements them).
AUGMENTATIONS = ("substitute", "permute")


class ColumnMap(Section):
    """Which source columns hold the model's input, its target and (optionally) a list of
    extra references for evaluation."""

    input: str = Field(min_length=1)
    target: str = Field(min_length=1)
    references: str | None = Field(None, min_length=1)


class SplitRatio(Section):
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


class VersionRef(Section):
    """A model version of ZenML's Model Control Plane: a model name and a stage (staging,
    production, latest), a version number or a version name."""

    model: str = Field(min_length=1)
    version: str = Field("staging", min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _number_as_text(cls, value: object) -> object:
        # `version: 3` in YAML and `--set ...version=3` arrive as ints; ZenML takes a version
        # number as its text. A bool is not a version (`version: yes` is a YAML slip).
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    def label(self) -> str:
        return f"{self.model}:{self.version}"


class SyntheticSection(Section):
    """Round-trip-verified synthetic training rows (utils/data/synthetic.py): new MRs composed
    from the training split's acts, slot sets and values, sentences for them from a
    data_to_text `generator` version, kept only when the slot checker finds no error and a
    text_to_mr `parser` version reads the sentence back as the same MR."""

    generator: VersionRef
    parser: VersionRef
    # MRs composed (fewer when the training values run out of new combinations); the rows
    # kept are what both checks pass.
    rows: int = Field(500, gt=0, le=100_000)
    seed: int = 0


class DatasetSection(Section):
    # The hub dataset (`source: hub`); the embedded files are GEM/viggo.
    name: str = VIGGO_HUB_DATASET
    # embedded: the ViGGO CSVs shipped in data/viggo/ (sha256-checked, no network);
    # hub: datasets.load_dataset(name). A data_dir (--data-dir) wins over both.
    source: Literal["embedded", "hub"] = "embedded"
    data_dir: str | None = None
    task: TaskName = TaskName.DATA_TO_TEXT
    system_prompt: str | None = None
    # Reasoning templates (Qwen3) open the answer with a <think> block unless told not to:
    # the tasks here answer in one line, so thinking is off in training and generation.
    enable_thinking: bool = False
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
    # Seeded share of the (cleaned) training rows kept, before max_train_samples: how much
    # data is enough (bench/data_curve.py).
    train_fraction: float = Field(1.0, gt=0.0, le=1.0)
    # Cleaning of the training split, off by default; the data report lists what each
    # removed. drop_unfaithful: references failing the slot checker (ViGGO tasks).
    dedupe: bool = False
    drop_unfaithful: bool = False
    drop_test_leaks: bool = False
    # Word-set Jaccard from which a test input counts as a near-duplicate of a train input.
    near_duplicate_similarity: float = Field(0.9, gt=0.0, le=1.0)
    # Training-only augmentation (ViGGO tasks): `substitute` swaps a slot value found
    # verbatim in the sentence for another training value of that slot, in MR and sentence;
    # `permute` reorders the input MR's slots (data_to_text). augment_factor: new rows per
    # training row.
    augment: tuple[str, ...] = ()
    augment_factor: float = Field(1.0, gt=0.0, le=20.0)
    augment_seed: int = 0
    # null = off. Synthetic rows join the training split only, after augmentation.
    synthetic: SyntheticSection | None = None

    @field_validator("augment", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v

    @field_validator("augment")
    @classmethod
    def _known_augmentations(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if name not in AUGMENTATIONS:
                raise ValueError(
                    f"unknown augmentation {name!r}; valid: {', '.join(AUGMENTATIONS)}"
                )
        return tuple(dict.fromkeys(v))

    @model_validator(mode="after")
    def _checks_need_an_mr(self) -> DatasetSection:
        if get_task(self.task).mr_role is not None:
            if "permute" in self.augment and self.task == TaskName.TEXT_TO_MR:
                raise ValueError(
                    "augment 'permute' reorders an input MR; text_to_mr's MR is the target, "
                    "kept in one order: use 'substitute'"
                )
            return self
        for key in ("drop_unfaithful", "augment", "synthetic"):
            if getattr(self, key):
                raise ValueError(
                    f"{key} needs a ViGGO task (data_to_text or text_to_mr): it works on "
                    f"meaning representations, and task {self.task!r} has none"
                )
        return self

    @model_validator(mode="after")
    def _embedded_is_viggo(self) -> DatasetSection:
        # Without this a config naming another hub dataset would silently train on ViGGO.
        if self.source == "embedded" and not self.data_dir and self.name != VIGGO_HUB_DATASET:
            raise ValueError(
                f"dataset.name is {self.name!r} but dataset.source is 'embedded', which holds "
                f"{VIGGO_HUB_DATASET} only: set dataset.source: hub, or dataset.data_dir"
            )
        return self
