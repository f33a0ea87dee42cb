"""`evaluation.one_row_kernel: native`: one-row decode steps, and only those, skip oneDNN."""

import pytest
import torch

from utils.config import EvaluationSection
from utils.data.prompts import build_prompt
from utils.inference.one_row import one_row_kernel
from utils.inference.transformers_engine import TransformersEngine


def _onednn_during_forwards(model, monkeypatch) -> list[tuple[int, int, bool]]:
    """Per forward pass: (rows, query length, whether oneDNN was on)."""
    seen = []
    real = model.forward

    def spy(*args, **kwargs):
        ids = kwargs["input_ids"]
        seen.append((ids.shape[0], ids.shape[1], torch._C._get_mkldnn_enabled()))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    return seen


@pytest.mark.parametrize("kernel", ["onednn", "native"])
def test_only_one_row_decode_steps_skip_onednn(tiny, kernel: str, monkeypatch) -> None:
    model, tok = tiny
    prompts = [build_prompt(tok, mr, "SYS") for mr in ("inform(name[A])", "x y z")]
    engine = TransformersEngine(model, tok, one_row_kernel=kernel)
    seen = _onednn_during_forwards(model, monkeypatch)
    engine.generate(prompts[:1], batch_size=1, max_new_tokens=4)
    engine.generate(prompts, batch_size=2, max_new_tokens=4)
    assert torch._C._get_mkldnn_enabled()  # restored
    # Prefills (of several tokens, or rows) and steps of two rows keep oneDNN.
    assert all(on for rows, q_len, on in seen if rows > 1 or q_len > 1)
    skipped = sum(not on for _, _, on in seen)
    if kernel == "onednn":
        assert skipped == 0
    else:
        # The one-row decode's 3 steps after its first token, and those of the two-row
        # decode once one row remains; its last prefill token (1 row, 1 token) keeps oneDNN.
        assert skipped >= 3 and skipped < sum(rows == 1 and q_len == 1 for rows, q_len, _ in seen)


def test_float32_outputs_do_not_change(tiny) -> None:
    """float32 matmuls never go through oneDNN here: the switch changes no output."""
    model, tok = tiny
    prompts = [build_prompt(tok, "give_opinion(name[B], rating[poor])", "SYS")]
    texts = {
        kernel: TransformersEngine(model, tok, one_row_kernel=kernel)
        .generate(prompts, batch_size=1, max_new_tokens=8)
        .texts
        for kernel in ("onednn", "native")
    }
    assert texts["onednn"] == texts["native"]


def test_unknown_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown one-row kernel"), one_row_kernel("fast", 1):
        pass
    assert EvaluationSection(one_row_kernel="native").one_row_kernel == "native"
    with pytest.raises(ValueError):
        EvaluationSection(one_row_kernel="fast")
