"""The dataset section: where rows come from, which columns hold them, how splits are made."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from utils.config.base import Section
from utils.core.names import VIGGO_HUB_DATASET
from utils.core.tasks import TaskName


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

    @model_validator(mode="after")
    def _embedded_is_viggo(self) -> DatasetSection:
        # Without this a config naming another hub dataset would silently train on ViGGO.
        if self.source == "embedded" and not self.data_dir and self.name != VIGGO_HUB_DATASET:
            raise ValueError(
                f"dataset.name is {self.name!r} but dataset.source is 'embedded', which holds "
                f"{VIGGO_HUB_DATASET} only: set dataset.source: hub, or dataset.data_dir"
            )
        return self
