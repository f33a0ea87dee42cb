import json
import logging
from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.types import HTMLString

from utils.config import DatasetSection
from utils.core.names import DATA_REPORT, DATASET
from utils.data.prepare import DATA_REPORT_FILE, prepare_dataset
from utils.data.report_html import data_report_html
from utils.modeling.loader import load_tokenizer
from utils.modeling.resolve import resolve_model_path
from utils.zenml_ops.scratch import scratch_folder
from utils.zenml_ops.secrets import hf_token
from utils.zenml_ops.step_context import step_memory

logger = logging.getLogger(__name__)


@step
def prepare_data(
    dataset: DatasetSection,
    base_model_id: str,
    trust_remote_code: bool = False,
    hf_token_secret: str | None = None,
    synthetic: dict[str, Any] | None = None,
) -> tuple[Annotated[Path, DATASET], Annotated[HTMLString, DATA_REPORT]]:
    """Load the data (hub or local folder), report on it, clean and augment training rows
    if asked, add synthesize_data's rows (`synthetic`) to training, format prompts with the
    model's template, tokenize.

    Only the dataset section and the tokenizer's model id are parameters, so changing
    training or evaluation settings re-uses this step from the cache. The data report
    (duplicates, conflicts, lengths, slot counts, unfaithful references, test leaks, what
    cleaning removed, augmentation added and synthesis kept) is an HTML artifact; its
    counts are metadata.
    """
    with step_memory():
        tokenizer = load_tokenizer(
            resolve_model_path(base_model_id), trust_remote_code, token=hf_token(hf_token_secret)
        )
        out_dir = scratch_folder(DATASET)
        meta = prepare_dataset(dataset, tokenizer, out_dir, synthetic=synthetic)
        logger.info(
            "Prepared splits %s; token lengths %s", meta["split_sizes"], meta["token_lengths"]
        )
        log_metadata(metadata=meta)
        report = json.loads((out_dir / DATA_REPORT_FILE).read_text())
    return out_dir, HTMLString(data_report_html(report, f"Data report: {dataset.task}"))
