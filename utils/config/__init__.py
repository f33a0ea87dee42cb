"""The configuration: YAML -> `load_config` -> one validated, typed `PipelineConfig`."""

from utils.config.base import ConfigError, Section
from utils.config.data_sections import (
    ColumnMap,
    DatasetSection,
    SplitRatio,
    SyntheticSection,
    VersionRef,
)
from utils.config.launch_sections import AccelerateSection, FsdpSection
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
    EvaluationSection,
    LoraSection,
    ModelSection,
    ModelSource,
    PipelineConfig,
    PromotionSection,
    RerankSection,
    TrainingSection,
)
from utils.config.service_sections import ServingSection, SweepSection, TrackingSection

__all__ = [
    "TRAINING_SECTIONS",
    "AccelerateSection",
    "ColumnMap",
    "ConfigError",
    "DatasetSection",
    "DockerSection",
    "EvaluationSection",
    "FsdpSection",
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
    "ServingSection",
    "SplitRatio",
    "StepRemoteSection",
    "SweepSection",
    "SyntheticSection",
    "TrackingSection",
    "TrainingSection",
    "VersionRef",
    "load_config",
    "parse_override",
    "read_yaml",
    "validate_config",
]
