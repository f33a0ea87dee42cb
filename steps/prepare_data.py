import logging
import tempfile
from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step

from utils.config import DatasetSection
from utils.dataset_prep import prepare_dataset
from utils.models import load_tokenizer, resolve_model_path
from utils.secrets import hf_token

logger = logging.getLogger(__name__)


@step
def prepare_data(
    dataset: dict[str, Any],
    base_model_id: str,
    trust_remote_code: bool = False,
    hf_token_secret: str | None = None,
) -> Annotated[Path, "dataset"]:
    """Load ViGGO (hub or local folder), format prompts with the model's template, tokenize.

    Only the dataset section and the tokenizer's model id are parameters, so changing
    training or evaluation settings re-uses this step from the cache.
    """
    cfg = DatasetSection.model_validate(dataset)
    tokenizer = load_tokenizer(
        resolve_model_path(base_model_id), trust_remote_code, token=hf_token(hf_token_secret)
    )
    out_dir = Path(tempfile.mkdtemp(prefix="viggo-prepared-"))
    meta = prepare_dataset(cfg, tokenizer, out_dir)
    logger.info("Prepared splits %s; token lengths %s", meta["split_sizes"], meta["token_lengths"])
    log_metadata(metadata=meta)
    return out_dir
