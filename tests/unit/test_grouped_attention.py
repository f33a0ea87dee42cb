"""The continuous engine's attention: eager's results, without copying K/V per query head."""

from pathlib import Path

import pytest
import torch

from tests.conftest import load_on_cpu
from utils.data.prompts import build_prompt
from utils.inference.grouped_attention import grouped_attention, grouped_eager_attention


class _Attention:
    num_key_value_groups = 3
    training = False


def _eager(*args):
    from transformers.models.llama.modeling_llama import eager_attention_forward

    return eager_attention_forward(*args)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("batch", "q_len", "kv_len"), [(1, 1, 40), (5, 1, 33), (3, 7, 20)])
def test_same_bits_as_eager(dtype: torch.dtype, batch: int, q_len: int, kv_len: int) -> None:
    torch.manual_seed(0)
    query = torch.randn(batch, q_len, 9, 16).to(dtype).transpose(1, 2)  # as the model's view
    key, value = (torch.randn(batch, 3, kv_len, 16).to(dtype) for _ in range(2))
    mask = torch.zeros(batch, 1, q_len, kv_len, dtype=dtype)
    mask[0, ..., :4] = torch.finfo(dtype).min  # left padding in one row
    want, _ = _eager(_Attention(), query, key, value, mask, 0.25)
    got, _ = grouped_eager_attention(_Attention(), query, key, value, mask, 0.25)
    assert got.shape == want.shape and got.is_contiguous()
    assert torch.equal(got, want)


def test_each_query_head_reads_its_own_kv_head() -> None:
    """Heads 0-2 read K/V head 0, heads 3-5 head 1 (repeat_kv's layout): with only K/V
    head 1 non-zero, only heads 3-5 see it."""
    query = torch.ones(1, 9, 1, 4, dtype=torch.bfloat16)
    key = torch.zeros(1, 3, 2, 4, dtype=torch.bfloat16)
    value = torch.zeros(1, 3, 2, 4, dtype=torch.bfloat16)
    value[:, 1] = 1.0
    out, _ = grouped_eager_attention(_Attention(), query, key, value, None, 1.0)
    seen = out[0, 0].float().sum(-1)  # (heads,)
    assert seen.tolist() == [0, 0, 0, 4, 4, 4, 0, 0, 0]


@pytest.fixture(scope="module")
def bf16_eager(tiny_model_dir: Path):
    model, tok = load_on_cpu(tiny_model_dir, padding_side="left", attn_implementation="eager")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    return model.to(torch.bfloat16), tok


def test_switches_an_eager_model_and_restores_it(bf16_eager) -> None:
    model, tok = bf16_eager
    prompts = [build_prompt(tok, mr, "SYS") for mr in ("inform(name[A])", "request(x[y]) z w")]
    batch = tok(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        want = model(**batch).logits
        with grouped_attention(model) as switched:
            assert switched and model.config._attn_implementation == "grouped_eager"
            got = model(**batch).logits
    assert model.config._attn_implementation == "eager"
    assert torch.equal(got, want)


def test_leaves_other_attention_alone(tiny_model_dir: Path) -> None:
    model, _ = load_on_cpu(tiny_model_dir, attn_implementation="sdpa")
    with grouped_attention(model) as switched:
        assert not switched and model.config._attn_implementation == "sdpa"
