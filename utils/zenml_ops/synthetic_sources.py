"""The generator and parser of `dataset.synthetic` as model versions: checked before a run
(preflight), decoding inside synthesize_data.

Each decodes through its own version's config, the way `run.py generate` does: the prompt,
stop rules, engine, `max_new_tokens` and reranking its evaluation used.
"""

from __future__ import annotations

from typing import Any

from utils.config import DatasetSection, PipelineConfig, VersionRef
from utils.core.freed_memory import release_freed_memory
from utils.core.tasks import TaskName
from utils.data.synthetic import Decode, synthesize
from utils.zenml_ops.model_versions import (
    ModelVersionError,
    adapter_artifact,
    evaluated_max_new_tokens,
    extracted_adapter,
    find_version,
    version_config,
)

# The key of each source, and the task its version must have been trained for.
ROLES = {"generator": TaskName.DATA_TO_TEXT, "parser": TaskName.TEXT_TO_MR}


def resolve(ref: VersionRef, role: str) -> tuple[Any, PipelineConfig]:
    """The model version `ref` names and its config, or ModelVersionError in one line
    naming the key: no such version, no adapter or config, the wrong task."""
    key = f"dataset.synthetic.{role}"
    try:
        mv = find_version(ref.model, ref.version)
        cfg = version_config(mv)
        adapter_artifact(mv)
    except ModelVersionError as e:
        raise ModelVersionError(f"{key}: {e}") from None
    if cfg.dataset.task != ROLES[role]:
        raise ModelVersionError(
            f"{key}: model version {ref.model}:{mv.name} was trained for "
            f"{cfg.dataset.task}, a {role} must be a {ROLES[role]} version"
        )
    return mv, cfg


def check_sources(dataset: DatasetSection) -> None:
    """Both versions exist and fit their role (nothing loaded): preflight's check."""
    if dataset.synthetic is not None:
        for role in ROLES:
            resolve(getattr(dataset.synthetic, role), role)


def version_decode(mv: Any, cfg: PipelineConfig) -> Decode:
    """A function decoding inputs with the version's adapter: the model is loaded when it
    is called and gone when it returns, so generator and parser are never both loaded."""
    from utils.inference.adapters import AdapterGenerator

    def decode(inputs: list[str]) -> list[str]:
        with extracted_adapter(mv) as adapter:
            loaded = AdapterGenerator.load(cfg, adapter, evaluated_max_new_tokens(mv))
            texts = loaded.generate(inputs)
        del loaded
        release_freed_memory()  # before the next version's model loads
        return texts

    return decode


def synthesize_from_versions(dataset: DatasetSection) -> dict[str, Any]:
    """synthesize_data's work: the run's training rows as prepare_data chooses them, every
    split's MRs kept out, the named versions as generator and parser."""
    from utils.data.prepare import chosen_training_rows
    from utils.data.rows import load_task_splits
    from utils.data.synthetic import mrs_of

    section = dataset.synthetic
    if section is None:
        raise ValueError("synthesize_from_versions needs dataset.synthetic")
    splits = {split: loaded.rows for split, loaded in load_task_splits(dataset).items()}
    train, _ = chosen_training_rows(splits, dataset)
    (gen_mv, gen_cfg), (parse_mv, parse_cfg) = (
        resolve(getattr(section, role), role) for role in ROLES
    )
    rows, summary = synthesize(
        train, mrs_of(splits, dataset.task), dataset.task, section.rows, section.seed,
        generate=version_decode(gen_mv, gen_cfg), parse=version_decode(parse_mv, parse_cfg),
        sources={
            "generator": f"{section.generator.model}:{gen_mv.name}",
            "parser": f"{section.parser.model}:{parse_mv.name}",
        },
    )  # fmt: skip
    return {"rows": rows, "summary": summary}
