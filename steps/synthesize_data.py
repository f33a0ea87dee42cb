import logging
from typing import Annotated, Any

from zenml import log_metadata, step

from utils.config import DatasetSection
from utils.core.names import SYNTHETIC, SYNTHETIC_DATA
from utils.data.prepare import chosen_training_rows
from utils.data.rows import load_task_splits
from utils.data.synthetic import mrs_of, synthesize
from utils.inference.adapters import version_decode
from utils.zenml_ops.step_context import step_memory
from utils.zenml_ops.synthetic_sources import ROLES, resolve

logger = logging.getLogger(__name__)


# Never cached: its output depends on which version a stage (`staging`) names when it runs,
# which is not among its inputs.
@step(enable_cache=False)
def synthesize_data(dataset: DatasetSection) -> Annotated[dict[str, Any], SYNTHETIC_DATA]:
    """New MRs composed from the training split's acts, slot sets and values; sentences for
    them from the `dataset.synthetic.generator` version; kept when the slot checker finds no
    error and the `parser` version reads the sentence back as the same MR.

    The output (`rows` and `summary`) goes to prepare_data, which adds the rows to training
    only; the summary (counts of each outcome, examples) is this step's metadata too.
    """
    with step_memory():
        result = synthesize_from_versions(dataset)
        s = result["summary"]
        logger.info(
            "Synthetic data: %d of %d composed MRs kept (%d rejected by the slot checker, "
            "%d by the round trip)",
            s["kept"], s["composed"], s["rejected_by_checker"], s["rejected_by_round_trip"],
        )  # fmt: skip
        log_metadata(metadata={SYNTHETIC: s})
    return result


def synthesize_from_versions(dataset: DatasetSection) -> dict[str, Any]:
    """synthesize_data's work: the run's training rows as prepare_data chooses them, every
    split's MRs kept out, the named versions as generator and parser."""
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
