"""Few-row linear layers as `W @ x.T`: same values, same greedy outputs, only where it applies."""

import copy

import pytest
import torch

from utils.data.prompts import build_prompt
from utils.inference import skinny_matmul
from utils.inference.transformers_engine import TransformersEngine


def _forced(model, monkeypatch, faster: bool):
    """A copy of `model` with `install` run as if the transposed form timed faster (or not)."""
    model = copy.deepcopy(model)
    plain, transposed = (1.0, 0.5) if faster else (1.0, 1.0)
    monkeypatch.setattr(skinny_matmul, "_timings", lambda layers, rows: (plain, transposed))
    return model, skinny_matmul.install(model)


@pytest.mark.parametrize("rows", [1, 2, 7, 64])
def test_transposed_form_computes_the_linear_layer(rows: int) -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 80)
    x = torch.randn(1, rows, 48)
    with torch.inference_mode():
        got = skinny_matmul._transposed(layer.weight, layer.bias, x, one_row=True)
        want = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_greedy_outputs_do_not_change(tiny, monkeypatch) -> None:
    model, tok = tiny
    fast, chosen = _forced(model, monkeypatch, faster=True)
    assert chosen.startswith("W @ x.T for 2-")
    patched = [m for m in fast.modules() if "forward" in vars(m)]
    assert patched and all(type(m) is torch.nn.Linear for m in patched)
    mrs = ("inform(name[A], rating[good])", "request(specifier[B])", "x y z", "give_opinion()")
    prompts = [build_prompt(tok, mr, "SYS") for mr in mrs]
    for batch_size in (1, 4):
        want = TransformersEngine(model, tok).generate(
            prompts, batch_size=batch_size, max_new_tokens=12
        )
        got = TransformersEngine(fast, tok).generate(
            prompts, batch_size=batch_size, max_new_tokens=12
        )
        assert got.texts == want.texts


def test_slower_form_is_not_installed(tiny, monkeypatch) -> None:
    model, _ = tiny
    kept, chosen = _forced(model, monkeypatch, faster=False)
    assert chosen.startswith("F.linear for 2-")
    assert not [m for m in kept.modules() if "forward" in vars(m)]
    # Timed once per model: a second install answers from the model.
    monkeypatch.setattr(skinny_matmul, "_timings", lambda *a: pytest.fail("timed again"))
    assert skinny_matmul.install(kept) == chosen


def test_training_and_other_dtypes_keep_f_linear(tiny, monkeypatch) -> None:
    model, _ = tiny
    fast, _ = _forced(model, monkeypatch, faster=True)
    layer = next(m for m in fast.modules() if "forward" in vars(m))
    x = torch.randn(1, 3, layer.in_features, requires_grad=True)
    calls = []
    real = skinny_matmul._transposed
    monkeypatch.setattr(skinny_matmul, "_transposed", lambda *a: calls.append(1) or real(*a))
    layer(x).sum().backward()  # autograd on: F.linear
    assert not calls and x.grad is not None
    with torch.inference_mode():
        layer(x.detach())
    assert calls == [1]
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    assert skinny_matmul.install(bf16).startswith("F.linear (no float32")
