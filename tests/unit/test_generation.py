from pathlib import Path

import pytest
import torch

from tests.conftest import load_on_cpu
from utils.data.prompts import build_prompt
from utils.inference.stops import max_new_tokens_for, newline_token_ids, stop_token_ids
from utils.inference.transformers_engine import generate

INPUTS = [
    "inform(name[A])",
    "request(specifier[fun], has_multiplayer[yes])",
    "x",
    "a b c d",
    "give_opinion(name[Portal 2], rating[excellent], genres[puzzle, platformer])",
    "yes",
    "verify_attribute(name[Dirt: Showdown], rating[average])",
    "q r",
]


@pytest.mark.parametrize("engine", ["continuous", "generate"])
def test_batched_equals_one_by_one_and_keeps_order(tiny, engine: str) -> None:
    model, tok = tiny
    prompts = [build_prompt(tok, i, "SYS") for i in INPUTS[:4]]
    batched = generate(model, tok, prompts, 4, 6, engine=engine).texts
    single = [generate(model, tok, [p], 1, 6, engine=engine).texts[0] for p in prompts]
    assert batched == single
    assert len(set(batched)) > 1  # a random model still gives prompt-dependent outputs


def test_continuous_engine_matches_generate_through_refills(tiny) -> None:
    """Rows stop at different steps and waiting prompts of other lengths take their slots;
    the spliced KV cache must give exactly what `model.generate` gives."""
    model, tok = tiny
    eos = tok.eos_token_id
    prompts = [build_prompt(tok, i, "SYS") for i in INPUTS]
    reference = generate(model, tok, prompts, 8, 12, engine="generate")
    # Make some rows stop early: treat tokens the model emits as stops.
    first_tokens = {tok(t, add_special_tokens=False)["input_ids"][0] for t in reference.texts if t}
    model.generation_config.eos_token_id = [eos, *sorted(first_tokens)[:2]]
    try:
        for batch_size in (2, 3, 8):
            got = generate(model, tok, prompts, batch_size, 12, engine="continuous")
            want = generate(model, tok, prompts, batch_size, 12, engine="generate")
            assert got.texts == want.texts, batch_size
            assert got.new_tokens == want.new_tokens
        lengths = {len(t) for t in want.texts}
        assert len(lengths) > 1  # rows really stopped at different steps
    finally:
        model.generation_config.eos_token_id = eos


def test_new_tokens_are_counted_once_per_distinct_prompt(tiny) -> None:
    model, tok = tiny
    prompts = [build_prompt(tok, i, "SYS") for i in INPUTS[:3]]
    once = generate(model, tok, prompts, 4, 5)
    repeated = generate(model, tok, prompts + prompts[:2], 4, 5)
    assert once.distinct_prompts == repeated.distinct_prompts == 3
    assert once.new_tokens == repeated.new_tokens
    # Each distinct prompt yields between 1 and max_new_tokens tokens, and no stops fire
    # on this random model before the cap (its texts are non-empty).
    assert all(once.texts)
    assert 3 <= once.new_tokens <= 3 * 5


def test_newline_stop_cuts_the_first_line(tiny) -> None:
    model, tok = tiny
    newline_ids = newline_token_ids(tok)
    assert newline_ids and all("\n" in tok.decode([i]) for i in newline_ids)
    prompts = [build_prompt(tok, i, "SYS") for i in INPUTS]
    # Make the random model emit line breaks: boost one newline token in the LM head.
    head = model.get_output_embeddings()
    nl = tok("\n", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        saved = head.weight[nl].clone()
        head.weight[nl] = head.weight[nl] * 3 + 0.5
    try:
        free = generate(model, tok, prompts, 4, 12)
        cut = generate(model, tok, prompts, 4, 12, stop_at_newline=True)
    finally:
        with torch.no_grad():
            head.weight[nl] = saved
    assert any("\n" in t for t in free.texts)
    assert not any("\n" in t for t in cut.texts)
    assert cut.new_tokens < free.new_tokens
    for long, short in zip(free.texts, cut.texts, strict=True):
        assert long.lstrip().startswith(short)


def test_duplicate_prompts_generated_once(tiny, monkeypatch) -> None:
    model, tok = tiny
    calls = []
    real = model.generate

    def counting(**kw):
        calls.append(kw["input_ids"].shape[0])
        return real(**kw)

    monkeypatch.setattr(model, "generate", counting)
    prompts = [build_prompt(tok, i, "SYS") for i in ["a", "b", "a", "a", "b"]]
    out = generate(model, tok, prompts, 8, 3, engine="generate").texts
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


def test_common_prefix_leaves_every_prompt_a_token() -> None:
    from utils.modeling.kv_cache import common_prefix

    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == [1, 2]
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == [1, 2]
    assert common_prefix([[7], [7, 8]]) == []
    assert common_prefix([[1, 2], [3, 4]]) == []
    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5]], limit=2) == [1, 2]


def test_growing_cache_layer_matches_concatenation() -> None:
    """The decode cache writes new columns into spare room; its contents must equal plain
    concatenation through growth, row selection and dropped leading columns."""
    import torch

    from utils.inference.growing_cache import growing_layer_class

    layer = growing_layer_class()()
    layer.SPARE = 3
    expected_k = torch.zeros(4, 2, 0, 5)
    for step in range(10):
        width = 4 if step == 0 else 1
        k = torch.randn(4, 2, width, 5)
        keys, values = layer.update(k, -k)
        expected_k = torch.cat([expected_k, k], dim=-2)
        assert torch.equal(keys, expected_k) and torch.equal(values, -expected_k)
    assert layer.get_seq_length() == 13
    rows = torch.tensor([0, 2])
    layer.select(rows, first_col=2)
    expected_k = expected_k[rows, :, 2:]
    assert torch.equal(layer.keys, expected_k) and layer.get_seq_length() == 11
    k = torch.randn(2, 2, 1, 5)
    keys, values = layer.update(k, -k)
    assert torch.equal(keys, torch.cat([expected_k, k], dim=-2))
    assert torch.equal(values, -keys)


def test_growing_cache_compact_moves_only_the_rows_it_is_told() -> None:
    """Dropping finished rows moves the last running rows into their slots: the kept rows'
    K/V must equal an index select in the new order, before and after further updates."""
    import torch

    from utils.inference.growing_cache import growing_layer_class

    layer = growing_layer_class()()
    layer.SPARE = 2
    k = torch.randn(5, 2, 4, 3)
    layer.update(k, -k)
    buffer = layer._k
    # Slots 1 and 3 finished: slot 4 moves into 1, slot 3 is past the kept rows.
    layer.compact([(4, 1)], rows=3, first_col=1)
    expected = k[torch.tensor([0, 4, 2]), :, 1:]
    assert torch.equal(layer.keys, expected) and torch.equal(layer.values, -expected)
    assert layer._k.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()
    assert layer.get_seq_length() == 3
    for _ in range(3):  # through a growth of the buffer
        new = torch.randn(3, 2, 1, 3)
        keys, values = layer.update(new, -new)
        expected = torch.cat([expected, new], dim=-2)
        assert torch.equal(keys, expected) and torch.equal(values, -expected)


def test_growing_cache_spare_room_stops_at_max_columns() -> None:
    import torch

    from utils.inference.growing_cache import growing_layer_class

    layer = growing_layer_class()()
    layer.max_columns = 6
    k = torch.randn(2, 1, 4, 3)
    layer.update(k, -k)
    assert layer._k.shape[-2] == 6  # 4 + SPARE capped at 6
    for _ in range(3):  # past the cap (a speculative step's masked columns): still correct
        k = torch.randn(2, 1, 1, 3)
        keys, _ = layer.update(k, -k)
        assert torch.equal(keys[..., -1:, :], k)
    # ... and the buffer grew once, with spare room, not by one column per step.
    assert layer.get_seq_length() == 7 and layer._k.shape[-2] == 7 + layer.SPARE


def test_continuous_engine_matches_generate_with_eager_attention(tiny_model_dir: Path) -> None:
    """bf16 on a CPU decodes with eager attention (utils.modeling.precision): the spliced
    cache must give `model.generate`'s outputs there too."""
    model, tok = load_on_cpu(tiny_model_dir, padding_side="left", attn_implementation="eager")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    assert model.config._attn_implementation == "eager"
    prompts = [build_prompt(tok, i, "SYS") for i in INPUTS]
    got = generate(model, tok, prompts, 3, 10, engine="continuous")
    want = generate(model, tok, prompts, 3, 10, engine="generate")
    assert got.texts == want.texts


def test_newline_tokens_are_found_once_per_tokenizer(
    tiny, tiny_model_dir: Path, monkeypatch
) -> None:
    """Finding them decodes the whole vocabulary (128k entries for Llama 3): once per
    tokenizer, not per decode."""
    from utils.modeling.loader import load_tokenizer

    model, _ = tiny
    tok = load_tokenizer(str(tiny_model_dir), padding_side="left")  # one no decode has seen
    decodes = []
    real = type(tok).batch_decode
    monkeypatch.setattr(
        type(tok), "batch_decode", lambda self, *a, **k: decodes.append(1) or real(self, *a, **k)
    )
    prompts = [build_prompt(tok, "inform(name[Tetris])", "SYS")]
    first = generate(model, tok, prompts, 2, 3, stop_at_newline=True).texts
    assert generate(model, tok, prompts, 2, 3, stop_at_newline=True).texts == first
    assert len(decodes) == 1


def test_refills_of_many_rows_return_the_free_heap(tiny, monkeypatch) -> None:
    """After the prefill of a large refill the heap's free pages go back to the system;
    small refills (served requests) skip it, and outputs are the same either way."""
    from utils.inference import continuous

    model, tok = tiny
    encoded = [tok(build_prompt(tok, i, "SYS"))["input_ids"] for i in INPUTS[:4]]
    calls: list[int] = []
    monkeypatch.setattr(continuous, "return_free_heap", lambda: calls.append(1) or True)
    monkeypatch.setattr(continuous, "TRIM_AFTER_ROWS", 3)

    class _Bar:
        def update(self, n: int) -> None:
            pass

    args = (model, encoded)
    rest = (6, [tok.eos_token_id], tok.pad_token_id, _Bar())
    wide = continuous.decode_continuous(*args, 4, *rest)
    assert calls == [1]  # one refill of 4 rows
    narrow = continuous.decode_continuous(*args, 2, *rest)
    assert calls == [1]  # refills of 2 rows: none
    assert wide.tokens == narrow.tokens
