from pathlib import Path

import pytest
import torch

from utils.generation import generate_batched, max_new_tokens_for, stop_token_ids
from utils.models import load_model, load_tokenizer
from utils.prompts import build_prompt


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    tok = load_tokenizer(str(tiny_model_dir), padding_side="left")
    model = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    # Default init (std 0.02) makes a 32-wide model print one token whatever the prompt;
    # larger weights give prompt-dependent outputs, which these tests need.
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    return model, tok


def test_batched_equals_one_by_one_and_keeps_order(tiny) -> None:
    model, tok = tiny
    inputs = ["inform(name[A])", "request(specifier[fun], has_multiplayer[yes])", "x", "a b c d"]
    prompts = [build_prompt(tok, i, "SYS") for i in inputs]
    batched = generate_batched(model, tok, prompts, batch_size=4, max_new_tokens=6)
    single = [generate_batched(model, tok, [p], batch_size=1, max_new_tokens=6)[0] for p in prompts]
    assert batched == single
    assert len(set(batched)) > 1  # a random model still gives prompt-dependent outputs


def test_duplicate_prompts_generated_once(tiny, monkeypatch) -> None:
    model, tok = tiny
    calls = []
    real = model.generate

    def counting(**kw):
        calls.append(kw["input_ids"].shape[0])
        return real(**kw)

    monkeypatch.setattr(model, "generate", counting)
    prompts = [build_prompt(tok, i, "SYS") for i in ["a", "b", "a", "a", "b"]]
    out = generate_batched(model, tok, prompts, batch_size=8, max_new_tokens=3)
    assert calls == [2]
    assert out[0] == out[2] == out[3] and out[1] == out[4]


def test_stop_ids_include_eos(tiny) -> None:
    model, tok = tiny
    assert tok.eos_token_id in stop_token_ids(tok, model)


def test_max_new_tokens_follows_references(tiny) -> None:
    _, tok = tiny
    short = max_new_tokens_for(tok, ["Hi."])
    long = max_new_tokens_for(tok, ["word " * 60])
    assert short < 20 < long <= 256
