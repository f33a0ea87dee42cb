"""Speculative steps of few rows: guessed tokens kept only where the model picks them, so
the outputs are the plain decode's, in fewer forward passes."""

from pathlib import Path

import pytest

from tests.conftest import load_varied_on_cpu
from utils.data.prompts import build_prompt
from utils.inference import speculative
from utils.inference.continuous import decode_continuous
from utils.inference.draft_index import DraftIndex
from utils.inference.engine import Sampling

INPUTS = [
    "inform(name[A])",
    "give_opinion(name[Portal 2], rating[excellent], genres[puzzle, platformer])",
    "request(specifier[fun], has_multiplayer[yes])",
    "verify_attribute(name[Dirt: Showdown], rating[average])",
]


class _Bar:
    def update(self, n: int) -> None:
        pass


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    model, tok = load_varied_on_cpu(tiny_model_dir)
    encoded = [tok(build_prompt(tok, i, "SYS"))["input_ids"] for i in INPUTS]
    return model, tok, encoded


def _counting(monkeypatch) -> dict[str, int]:
    """Counts the speculative steps and the tokens they gave."""
    seen = {"steps": 0, "tokens": 0}
    original = speculative.verify_step

    def counted(*args, **kwargs):
        new, scores = original(*args, **kwargs)
        seen["steps"] += 1
        seen["tokens"] += sum(map(len, new))
        return new, scores

    monkeypatch.setattr("utils.inference.continuous.verify_step", counted)
    return seen


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_greedy_outputs_are_the_plain_decodes_in_fewer_steps(tiny, monkeypatch, batch_size):
    model, tok, encoded = tiny
    args = (model, encoded, batch_size, 14, [tok.eos_token_id], tok.pad_token_id, _Bar())
    plain = decode_continuous(*args, scores=True)
    # Taught the plain outputs, the index guesses most tokens right; its wrong guesses (the
    # prompt's n-grams come first) are rejected.
    drafts = DraftIndex()
    for tokens in plain.tokens:
        drafts.learn(tokens)
    seen = _counting(monkeypatch)
    fast = decode_continuous(*args, scores=True, drafts=drafts, max_guess=4)
    assert fast.tokens == plain.tokens
    assert fast.logprobs == pytest.approx(plain.logprobs, abs=1e-4)
    assert seen["steps"] and seen["tokens"] > 1.5 * seen["steps"]  # guesses were kept


def test_sampled_rows_draw_the_same_tokens(tiny, monkeypatch) -> None:
    """A sampled row draws its j-th number for its j-th token, guessed or not."""
    model, tok, encoded = tiny
    prompts = [encoded[1]] * 3 + [encoded[3]]
    args = (model, prompts, 2, 14, [tok.eos_token_id], tok.pad_token_id, _Bar())
    sampling = Sampling(temperature=0.7, top_k=20, top_p=0.95, seed=3)
    seeds = [11, 12, 13, None]
    plain = decode_continuous(*args, sampling=sampling, scores=True, seeds=seeds)
    drafts = DraftIndex()
    for tokens in plain.tokens:
        drafts.learn(tokens)
    seen = _counting(monkeypatch)
    fast = decode_continuous(
        *args, sampling=sampling, scores=True, seeds=seeds, drafts=drafts, max_guess=3
    )
    assert fast.tokens == plain.tokens
    assert len(set(map(tuple, plain.tokens[:3]))) > 1  # the draws really differ
    assert seen["tokens"] > seen["steps"]


def test_rows_stop_at_max_new_tokens_and_at_stops(tiny) -> None:
    model, tok, encoded = tiny
    plain = decode_continuous(model, encoded, 2, 20, [tok.eos_token_id], tok.pad_token_id, _Bar())
    drafts = DraftIndex()
    for tokens in plain.tokens:
        drafts.learn(tokens)
    # A token every output has after its first makes rows stop early, mid-guess.
    stop = plain.tokens[0][2]
    stops = [tok.eos_token_id, stop]
    for max_new in (3, 7):
        want = decode_continuous(model, encoded, 2, max_new, stops, tok.pad_token_id, _Bar())
        got = decode_continuous(
            model, encoded, 2, max_new, stops, tok.pad_token_id, _Bar(),
            drafts=drafts, max_guess=4,
        )  # fmt: skip
        assert got.tokens == want.tokens
        assert all(len(t) <= max_new for t in got.tokens)
        assert any(t[-1] == stop for t in got.tokens)


def test_guess_length_shrinks_with_the_batch() -> None:
    assert speculative.guess_length(1, 4) == 4
    assert speculative.guess_length(2, 4) == 3
    assert speculative.guess_length(4, 4) == 1
    assert speculative.guess_length(8, 4) == 0
    assert speculative.guess_length(1, 0) == 0


def test_draft_index_prefers_the_rows_own_context_then_earlier_outputs() -> None:
    drafts = DraftIndex()
    # The row's own context: what followed the latest earlier "5 6".
    assert drafts.guess([5, 6, 7, 8, 1, 5, 6], 2) == [7, 8]
    assert drafts.guess([1, 2, 3], 4) == []
    drafts.learn([1, 2, 3, 9, 9, 4])
    assert drafts.guess([7, 1, 2], 3) == [3, 9, 9]
    # The longest match wins: "9 9" was followed by 4, a lone 9 most recently by 4 too.
    assert drafts.guess([0, 9, 9], 1) == [4]


def test_draft_index_forgets_the_oldest_ngrams_past_its_bound() -> None:
    drafts = DraftIndex(max_entries=10)
    drafts.learn(list(range(20)))
    assert len(drafts) == 10
    assert drafts.guess([16, 17, 18], 1) == [19]  # the newest kept (the 3-grams, last)
    assert drafts.guess([0], 1) == []  # the oldest forgotten
