"""The prompt prefix's K/V kept between decodes: the same K/V and outputs as computed afresh,
only the tokens past what it holds run again."""

import torch

from utils.data.prompts import build_prompt, encode_prompt
from utils.inference.prefix_memo import PrefixMemo
from utils.inference.transformers_engine import TransformersEngine
from utils.modeling.kv_cache import prefix_kv

MRS = ("inform(name[Tetris], release_year[1986])", "request(specifier[fun])", "give_opinion()")


def _rows_run(model, monkeypatch) -> list[int]:
    """Tokens each forward pass of `model` runs."""
    seen = []
    real = model.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["input_ids"].numel())
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    return seen


@torch.inference_mode()
def test_kv_of_a_longer_or_shorter_prefix_is_what_a_fresh_pass_gives(tiny, monkeypatch) -> None:
    model, tok = tiny
    a, b = (encode_prompt(tok, build_prompt(tok, mr, "SYS")) for mr in MRS[:2])
    memo = PrefixMemo()
    memo.kv(model, a[:-1], "cpu")
    ran = _rows_run(model, monkeypatch)
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    # (prefix, tokens that must run): past the shared template; nothing for a prefix held
    # whole (the memo then keeps its longer one); past the template again.
    for prefix, runs in (
        (b[:-1], len(b) - 1 - shared),
        (b[: shared - 3], 0),
        (a[:-1], len(a) - 1 - shared),
    ):
        ran.clear()
        got = memo.kv(model, prefix, "cpu")
        assert sum(ran) == runs
        want = prefix_kv(model, torch.tensor([prefix]))
        for (k, v), (wk, wv) in zip(got, want, strict=True):
            torch.testing.assert_close(k, wk, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(v, wv, rtol=1e-4, atol=1e-5)


def test_outputs_after_other_decodes_equal_a_fresh_engines(tiny) -> None:
    model, tok = tiny
    prompts = [build_prompt(tok, mr, "SYS") for mr in MRS]
    used = TransformersEngine(model, tok)
    for p in prompts:  # one served request after another
        used.generate([p], batch_size=1, max_new_tokens=10)
    for batch in ([prompts[1]], prompts):
        again = used.generate(batch, batch_size=2, max_new_tokens=10).texts
        fresh = TransformersEngine(model, tok).generate(batch, batch_size=2, max_new_tokens=10)
        assert again == fresh.texts


def test_a_prefix_longer_than_the_limit_is_not_kept(tiny) -> None:
    model, tok = tiny
    tokens = encode_prompt(tok, build_prompt(tok, MRS[0], "SYS"))
    memo = PrefixMemo(max_tokens=4)
    memo.kv(model, tokens[:3], "cpu")
    memo.kv(model, tokens, "cpu")
    assert memo._tokens == tuple(tokens[:3])
