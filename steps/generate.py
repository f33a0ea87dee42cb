from typing import Annotated, Any

from zenml import get_step_context, step

from utils.core.names import SERVED_SLOT_ERRORS, SERVED_TEXTS


@step(enable_cache=False)
def generate(
    inputs: list[str],
) -> tuple[
    Annotated[list[str], SERVED_TEXTS],
    Annotated[list[dict[str, Any] | None] | None, SERVED_SLOT_ERRORS],
]:
    """Outputs for task `inputs` from the model the pipeline's init hook loaded (the
    evaluation's prompt, stop rules, `max_new_tokens` and reranking), and for data_to_text
    each output's slot errors against its MR, so callers can reject bad generations."""
    served = get_step_context().pipeline_state
    if served is None:
        raise RuntimeError("no model loaded: run the pipeline built by build_inference_pipeline")
    texts = served.generate(inputs)
    return texts, served.slot_errors(inputs, texts)
