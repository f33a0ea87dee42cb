"""The configuration: YAML -> `load_config` -> one validated, typed `PipelineConfig`."""

from utils.config.base import ConfigError, Section
from utils.config.loading import load_config, parse_override, read_yaml, validate_config
from utils.config.remote_sections import (
    DockerSection,
    RemoteSection,
    ResourcesSection,
    RetrySection,
    StepRemoteSection,
)
from utils.config.sections import (
    TRAINING_SECTIONS,
    AccelerateSection,
    ColumnMap,
    DatasetSection,
    EvaluationSection,
    LoraSection,
    ModelSection,
    ModelSource,
    PipelineConfig,
    PromotionSection,
    RerankSection,
    SplitRatio,
    SweepSection,
    TrainingSection,
)

__all__ = [
    "TRAINING_SECTIONS",
    "AccelerateSection",
    "ColumnMap",
    "ConfigError",
    "DatasetSection",
    "DockerSection",
    "EvaluationSection",
    "LoraSection",
    "ModelSection",
    "ModelSource",
    "PipelineConfig",
    "PromotionSection",
    "RemoteSection",
    "RerankSection",
    "ResourcesSection",
    "RetrySection",
    "Section",
    "SplitRatio",
    "StepRemoteSection",
    "SweepSection",
    "TrainingSection",
    "load_config",
    "parse_override",
    "read_yaml",
    "validate_config",
]
