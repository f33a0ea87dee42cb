"""Slot-aware decoding: candidates are checked like the scorer checks, the fewest errors win,
then the model's score; greedy stays where nothing beats it."""

import pytest

from utils.config import ConfigError, RerankSection, load_config
from utils.data.prompts import build_prompt
from utils.inference.candidates import InputDraws, output_errors
from utils.inference.engine import Engine, Generations
from utils.inference.rerank import generate_reranked
from utils.inference.transformers_engine import TransformersEngine, generate

TETRIS = "inform(name[Tetris], release_year[1986])"
PORTAL = "inform(name[Portal 2], rating[excellent])"


def test_checks_are_the_scorers() -> None:
    assert output_errors("data_to_text", TETRIS, "Tetris came out in 1986.") == 0
    assert output_errors("data_to_text", TETRIS, "Tetris is a game.") == 1  # year missing
    assert output_errors("data_to_text", TETRIS, "Tetris came out in 1990.") == 1  # wrong year
    assert output_errors("text_to_mr", "Tetris came out in 1986.", TETRIS) == 0
    assert output_errors("text_to_mr", "Tetris came out in 1986.", "inform(name[Tetris]") == 1
    with pytest.raises(ValueError, match="no output check"):
        output_errors("text_to_text", "2+2", "4")


class _Scripted(Engine):
    """An engine with scripted outputs: greedy texts per prompt, then, for a watched decode,
    each prompt's candidates in draw order, run as the continuous engine runs them with a
    batch wider than a wave (in `order`; a wave's rows start together, so `wanted` is asked
    once per wave; dropped rows never start). Records which candidates were decoded."""

    steerable = True
    tokenizer = None

    def __init__(self, greedy: dict, draws: dict, wide: bool = False) -> None:
        self.greedy, self.draws, self.decoded = greedy, draws, []
        self.calls = 0
        # wide: every row starts at once (a batch with room for all waves), so `wanted` is
        # asked before any candidate finishes, and later waves finish first.
        self.wide = wide

    def generate(self, prompts, sampling=None, *, watch=None, **kw):
        self.calls += 1
        if watch is None:
            texts = [self.greedy[p][0] for p in prompts]
            scores = [self.greedy[p][1] for p in prompts]
            return Generations(texts, len(prompts), len(set(prompts)), scores)
        # A row's draw index: its prompt's occurrences among the sampled rows before it.
        draw, seen = {}, {}
        for row, p in enumerate(prompts):
            if not watch.greedy(row):
                draw[row] = seen.get(p, 0)
                seen[p] = draw[row] + 1
        rows = sorted(range(len(prompts)), key=lambda r: watch.order(r, len(prompts[r])))
        waves: dict[int, list[int]] = {}
        for row in rows:
            waves.setdefault(watch.order(row, len(prompts[row]))[0], []).append(row)
        if self.wide:  # all start at once; the last in order finish first
            waves = {0: [row for row in rows if watch.wanted(row)][::-1]}
        for wave in waves.values():
            started = [row for row in wave if watch.wanted(row)]
            for row in started:
                if not watch.wanted(row):  # stopped while running
                    continue
                if row not in draw:
                    text, score = self.greedy[prompts[row]]
                else:
                    text, score = self.draws[prompts[row]][draw[row]]
                    self.decoded.append((prompts[row], text))
                watch.finished(row, text, score)
        n = len(set(prompts))
        return Generations([""] * len(prompts), len(self.decoded), n, [0.0] * len(prompts))


def _rerank(scripted, prompts, inputs, task="data_to_text", **cfg):
    section = RerankSection(**{"candidates": 2, **cfg})
    return generate_reranked(
        scripted, prompts, inputs, task, section, batch_size=4, max_new_tokens=8
    )


def test_only_failing_inputs_draw_and_a_passing_wave_ends_it() -> None:
    scripted = _Scripted(
        greedy={"p1": ("Tetris is a game.", -0.1), "p2": ("Portal 2 is excellent.", -0.2)},
        draws={
            "p1": [
                ("Tetris came out in 1986.", -0.9),
                ("Tetris, from 1986.", -0.5),
                ("unused", -0.1),
                ("unused", -0.1),
            ]
        },
    )
    out = _rerank(scripted, ["p1", "p2", "p1"], [TETRIS, PORTAL, TETRIS], candidates=4)
    # Both pass; the higher model score wins.
    assert out.generations.texts == [
        "Tetris, from 1986.",
        "Portal 2 is excellent.",
        "Tetris, from 1986.",
    ]
    assert out.greedy_texts == ["Tetris is a game.", "Portal 2 is excellent.", "Tetris is a game."]
    # p2's greedy output has no error: it draws nothing; p1 stops after its first wave of two.
    assert scripted.decoded == [("p1", "Tetris came out in 1986."), ("p1", "Tetris, from 1986.")]
    assert out.stats["rerank_inputs_resampled"] == 1 and out.stats["rerank_changed"] == 1
    assert out.stats["rerank_candidates_drawn"] == 2 and out.stats["rerank_still_failing"] == 0


def test_later_waves_decoded_alongside_do_not_change_the_choice() -> None:
    """A wide batch starts all of an input's waves together and a later wave may finish
    first; candidates of waves after the first that passed are not offered, so the choice
    is the wave-by-wave decode's."""
    draws = {
        "p1": [
            ("Tetris came out in 1986.", -0.9),
            ("Tetris is a game.", -0.5),
            # Wave 2: error-free with a better score.
            ("Tetris, a game from 1986.", -0.1),
            ("Tetris, a game from 1986.", -0.1),
        ]
    }
    texts = {}
    for wide in (False, True):
        scripted = _Scripted({"p1": ("Tetris.", -0.3)}, draws, wide=wide)
        out = _rerank(scripted, ["p1"], [TETRIS], candidates=4)
        texts[wide] = out.generations.texts
        assert len(scripted.decoded) == (4 if wide else 2)
    assert texts[True] == texts[False] == ["Tetris came out in 1986."]


_SEVERAL = {
    "p1": [
        ("Tetris came out in 1986.", -0.9),  # wave 1 passes
        ("Tetris.", -0.5),
        ("Tetris, a game from 1986.", -0.1),  # wave 2: passes with a better score
        ("Tetris is a game.", -0.05),  # best score, but an error
        ("Tetris, 1986.", -0.01),  # wave 3: passes with the best score
        ("Tetris!", -0.01),
    ]
}


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize(
    ("stop_after", "decoded", "chosen"),
    [
        (1, 2, "Tetris came out in 1986."),
        (2, 4, "Tetris, a game from 1986."),
        (3, 6, "Tetris, 1986."),
        (None, 6, "Tetris, 1986."),
    ],
)
def test_a_failing_input_draws_until_enough_pass_and_the_best_score_wins(
    wide, stop_after, decoded, chosen
) -> None:
    greedy = {"p1": ("Tetris.", -0.3), "p2": ("Portal 2 is excellent.", -0.2)}
    scripted = _Scripted(greedy, _SEVERAL, wide=wide)
    out = _rerank(scripted, ["p1", "p2"], [TETRIS, PORTAL], candidates=6,
                  stop_after_passing=stop_after)  # fmt: skip
    assert out.generations.texts == [chosen, "Portal 2 is excellent."]
    # Only the failing input draws; a wide decode starts every wave at once, but only the
    # counted waves' candidates are offered and counted.
    assert {p for p, _ in scripted.decoded} == {"p1"}
    assert len(scripted.decoded) == (6 if wide else decoded)
    assert out.stats["rerank_candidates_drawn"] == len(scripted.decoded)
    if stop_after is None:
        assert "every draw" in out.stats["decoding"]


def test_draws_finishing_out_of_order_count_as_in_order() -> None:
    """A later wave's pass that finishes first must not end the draws early: with two
    wanted, the passes of waves 0 and 2 end them at wave 2, whatever finished first."""
    in_order, reversed_order = InputDraws(2), InputDraws(2)
    draws = [("a", 1, -1.0), ("b", 1, -1.0), ("c", 0, -1.0), ("d", 1, -1.0), ("e", 0, -1.0)]
    for j, d in enumerate(draws):
        in_order.record(j, *d)
    for j in (4, 2, 0, 1, 3):
        reversed_order.record(j, *draws[j])
    assert in_order.passed == reversed_order.passed == 2
    assert [in_order.wanted(j) for j in range(8)] == [True] * 6 + [False] * 2


def test_candidates_beside_greedy_stop_for_a_passing_input_whatever_stop_after() -> None:
    """`together_rows`: candidates start beside greedy; a greedy output that passes stops
    its input's candidates (only_failing), even when a failing one would draw them all."""
    draws = {"p1": [("Tetris came out in 1986.", -0.9), ("Tetris, from 1986.", -0.2)]}
    for greedy, decoded in ((("Tetris came out in 1986.", -0.3), 0), (("Tetris.", -0.3), 2)):
        scripted = _Scripted({"p1": greedy}, draws)
        out = _rerank(scripted, ["p1"], [TETRIS], stop_after_passing=None, together_rows=4)
        assert scripted.calls == 1  # one decode: greedy and candidates together
        assert len(scripted.decoded) == decoded
    assert out.generations.texts == ["Tetris, from 1986."]


def test_stop_after_passing_is_for_failing_inputs_only() -> None:
    assert RerankSection().stop_after_passing == 1
    assert RerankSection(only_failing=False).stop_after_passing is None
    assert RerankSection(select="consensus").stop_after_passing is None
    with pytest.raises(ConfigError, match=r"rerank\.stop_after_passing .* set it to null"):
        load_config(None, ["evaluation.rerank={only_failing: false, stop_after_passing: 2}"])
    with pytest.raises(ConfigError, match="stop_after_passing"):
        load_config(None, ["evaluation.rerank.stop_after_passing=0"])


def test_more_errors_never_win_and_ties_go_to_the_model_score() -> None:
    scripted = _Scripted(
        greedy={"p1": ("Tetris is a game.", -2.0)},
        draws={"p1": [("A game.", -0.05), ("Tetris is from 1990.", -0.1)]},
    )
    out = _rerank(scripted, ["p1"], [TETRIS])
    # Greedy misses the year (1 error), "A game." misses both slots (2 errors) despite the
    # best score, "1990" is a wrong year (1 error): the tie goes to the higher score.
    assert out.generations.texts == ["Tetris is from 1990."]
    assert out.stats["rerank_still_failing"] == 1


def test_draws_come_in_waves_of_two_across_inputs() -> None:
    scripted = _Scripted(
        greedy={"p1": ("Tetris.", -0.1), "p2": ("Portal 2.", -0.1)},
        draws={
            "p1": [("Tetris, 1986.", -1.0), ("Tetris.", -1.0), ("unused", -1.0)],
            "p2": [("Portal 2.", -1.0), ("Portal.", -1.0), ("Portal 2, excellent.", -1.0)],
        },
    )
    out = _rerank(scripted, ["p1", "p2"], [TETRIS, PORTAL], candidates=3)
    # Two draws of every input (side by side: they share a prefill), then the next wave of
    # those still failing; the last wave is cut to `candidates`.
    assert [p for p, _ in scripted.decoded] == ["p1", "p1", "p2", "p2", "p2"]
    assert out.generations.texts == ["Tetris, 1986.", "Portal 2, excellent."]


def test_all_inputs_draw_every_candidate_without_only_failing() -> None:
    scripted = _Scripted(
        greedy={"p1": ("Tetris came out in 1986.", -0.5)},
        draws={"p1": [("Tetris.", -0.1), ("Tetris was released in 1986.", -0.2)]},
    )
    out = _rerank(scripted, ["p1"], [TETRIS], only_failing=False)
    assert len(scripted.decoded) == 2
    assert out.generations.texts == ["Tetris was released in 1986."]  # same errors, higher score


def test_consensus_picks_the_error_free_candidate_the_others_agree_with() -> None:
    agreed = "Tetris came out in 1986 and people still play it."
    scripted = _Scripted(
        greedy={"p1": ("Tetris, released in 1986.", -0.1)},
        draws={
            "p1": [
                ("Tetris came out in 1986, people still play it.", -0.9),
                (agreed, -0.8),
                ("Tetris came out in 1990 and people still play it.", -0.2),  # wrong year
                ("Tetris came out in 1986 and many people still play it.", -0.7),
            ]
        },
    )
    out = _rerank(scripted, ["p1"], [TETRIS], candidates=4, select="consensus")
    # Greedy passes the check, yet every input draws all its candidates; the wrong-year one
    # cannot win but still counts as evidence; greedy has the best score but least support.
    assert len(scripted.decoded) == 4
    assert out.generations.texts == [agreed]
    by_score = _rerank(_Scripted(scripted.greedy, scripted.draws), ["p1"], [TETRIS],
                       candidates=4, only_failing=False)  # fmt: skip
    assert by_score.generations.texts == ["Tetris, released in 1986."]


def test_consensus_never_trades_an_error_for_agreement() -> None:
    wrong = "Tetris is a game."
    scripted = _Scripted(
        greedy={"p1": (wrong, -0.1)},
        draws={"p1": [(wrong, -0.1), (wrong, -0.1), ("Tetris came out in 1986.", -3.0)]},
    )
    out = _rerank(scripted, ["p1"], [TETRIS], candidates=3, select="consensus")
    assert out.generations.texts == ["Tetris came out in 1986."]
    assert "consensus" in out.stats["decoding"]


def test_consensus_draws_for_every_input_and_refuses_only_failing() -> None:
    assert RerankSection(select="consensus").only_failing is False
    assert RerankSection().only_failing is True
    with pytest.raises(ConfigError, match=r"rerank\.only_failing=false"):
        load_config(None, ["evaluation.rerank={select: consensus, only_failing: true}"])


def test_text_to_mr_candidates_that_do_not_parse_lose() -> None:
    scripted = _Scripted(
        greedy={"p1": ("inform(name[Tetris], release_year[1986]", -0.1)},
        draws={"p1": [("inform(name[Tetris]) extra", -0.2), (TETRIS, -0.9)]},
    )
    out = _rerank(scripted, ["p1"], ["Tetris came out in 1986."], "text_to_mr")
    assert out.generations.texts == [TETRIS]


@pytest.mark.parametrize("only_failing", [True, False])
def test_on_a_model_reranked_outputs_never_have_more_slot_errors(tiny, only_failing) -> None:
    model, tok = tiny
    mrs = [TETRIS, PORTAL, "request(specifier[fun], has_multiplayer[yes])"]
    prompts = [build_prompt(tok, mr, "SYS") for mr in mrs]
    section = RerankSection(candidates=4, temperature=1.5, only_failing=only_failing)
    engine = TransformersEngine(model, tok)
    out = generate_reranked(
        engine, prompts, mrs, "data_to_text", section, batch_size=4, max_new_tokens=6
    )
    greedy = generate(model, tok, prompts, 4, 6, stop_at_newline=True)
    assert out.greedy_texts == greedy.texts  # the greedy pass is plain greedy decoding
    for mr, chosen, first in zip(mrs, out.generations.texts, greedy.texts, strict=True):
        assert output_errors("data_to_text", mr, chosen) <= output_errors("data_to_text", mr, first)
    assert out.stats["rerank_candidates_drawn"] >= 3  # random outputs fail: several draws
    again = generate_reranked(
        engine, prompts, mrs, "data_to_text", section, batch_size=4, max_new_tokens=6
    )
    assert again.generations.texts == out.generations.texts  # seeded: reproducible


def test_sampled_candidates_are_seeded_and_differ(tiny) -> None:
    from utils.inference.engine import Sampling

    model, tok = tiny
    prompts = [build_prompt(tok, TETRIS, "SYS")] * 6
    a = generate(model, tok, prompts, 4, 6, sampling=Sampling(1.5, 1.0, seed=1))
    b = generate(model, tok, prompts, 4, 6, sampling=Sampling(1.5, 1.0, seed=1))
    c = generate(model, tok, prompts, 4, 6, sampling=Sampling(1.5, 1.0, seed=2))
    assert a.texts == b.texts and a.texts != c.texts
    assert len(set(a.texts)) > 1  # one prompt, several different candidates
    assert all(s <= 0.0 for s in a.scores)  # mean log-probabilities


def test_rerank_is_refused_where_outputs_cannot_be_checked() -> None:
    assert (
        load_config(None, ["evaluation.rerank={candidates: 4}"]).evaluation.rerank.candidates == 4
    )
    with pytest.raises(ConfigError, match=r"evaluation\.rerank needs a task"):
        load_config(None, ["dataset.task=text_to_text", "evaluation.rerank={}"])


def test_identical_prompts_in_one_refill_share_a_prefill_and_decode_alike(tiny) -> None:
    from utils.inference.continuous import decode_continuous
    from utils.inference.prefill import Prefill

    model, tok = tiny
    a, b = (tok(build_prompt(tok, mr, "SYS"))["input_ids"] for mr in (TETRIS, PORTAL))
    pad = tok.pad_token_id

    class _Bar:
        def update(self, n: int) -> None:
            pass

    alone = decode_continuous(model, [a, b], 8, 6, [tok.eos_token_id], pad, _Bar())
    twice = decode_continuous(model, [a, b, a, b, a], 8, 6, [tok.eos_token_id], pad, _Bar())
    assert twice.tokens == alone.tokens + alone.tokens + alone.tokens[:1]
    runs = []
    prefill = Prefill(model, [a, b], pad, "cpu")
    original = prefill._run
    prefill._run = lambda prompts: runs.append(len(prompts)) or original(prompts)
    _, mask, logits = prefill([a, b, a, a])
    assert runs == [2] and mask.shape[0] == 4  # two distinct prompts run, four rows come back
    assert (logits[0] == logits[2]).all() and (logits[0] == logits[3]).all()


def test_a_prompt_in_later_refills_reuses_its_first_prefill(tiny, monkeypatch) -> None:
    """Waves of candidates: each distinct prompt runs through the model once, however many
    refills later its draws start, and decodes exactly as alone."""
    from utils.inference.continuous import decode_continuous
    from utils.inference.prefill import Prefill

    model, tok = tiny
    a, b = (tok(build_prompt(tok, mr, "SYS"))["input_ids"] for mr in (TETRIS, PORTAL))
    pad, stops = tok.pad_token_id, [tok.eos_token_id]

    class _Bar:
        def update(self, n: int) -> None:
            pass

    alone = decode_continuous(model, [a, b], 8, 6, stops, pad, _Bar())
    runs: list[int] = []
    original = Prefill._run
    monkeypatch.setattr(
        Prefill, "_run", lambda self, prompts: runs.append(len(prompts)) or original(self, prompts)
    )
    # Two slots: the six rows need several refills.
    waves = decode_continuous(model, [a, b, a, b, a, b], 2, 6, stops, pad, _Bar())
    assert waves.tokens == alone.tokens * 3
    assert sum(runs) == 2, runs
    # Without room to keep them, prompts simply run again, with the same outputs.
    runs.clear()
    again = decode_continuous(model, [a, b, a, b, a, b], 2, 6, stops, pad, _Bar(), memo_bytes=0)
    assert again.tokens == waves.tokens and sum(runs) > 2


def test_a_sampled_candidate_depends_on_its_prompt_and_draw_not_its_batch(tiny) -> None:
    from utils.inference.engine import Sampling

    model, tok = tiny
    a, b = (build_prompt(tok, mr, "SYS") for mr in (TETRIS, PORTAL))
    sampling = Sampling(1.5, 1.0, seed=1)
    alone = generate(model, tok, [a, a, a], 4, 8, sampling=sampling).texts
    # Other rows around it, a narrower batch (so other refills): the same three candidates.
    mixed = generate(model, tok, [b, a, b, a, b, a], 2, 8, sampling=sampling).texts
    assert mixed[1::2] == alone and len(set(alone)) > 1


def test_a_reranked_output_is_the_same_alone_and_inside_a_batch(tiny) -> None:
    """What serving relies on: a request's input gets the text the evaluation gave it,
    whatever other requests' inputs were decoded with it."""
    model, tok = tiny
    mrs = [TETRIS, PORTAL, "request(specifier[fun], has_multiplayer[yes])",
           "inform(name[Dirt: Showdown], release_year[2012])"]  # fmt: skip
    prompts = [build_prompt(tok, mr, "SYS") for mr in mrs]
    # Consensus: the chosen text depends on every candidate the input drew (a random model's
    # outputs all fail, and by score greedy would win).
    section = RerankSection(candidates=6, temperature=1.5, select="consensus")
    engine = TransformersEngine(model, tok)

    def rerank(ps: list[str], xs: list[str], batch_size: int = 4) -> list[str]:
        out = generate_reranked(
            engine, ps, xs, "data_to_text", section, batch_size=batch_size, max_new_tokens=6
        )
        return out.generations.texts

    together = generate_reranked(
        engine, prompts, mrs, "data_to_text", section, batch_size=4, max_new_tokens=6
    )
    assert together.stats["rerank_candidates_drawn"] > len(mrs)  # candidates were drawn
    assert together.stats["rerank_changed"] > 0  # and chosen over greedy
    for i in range(len(mrs)):
        assert rerank([prompts[i]], [mrs[i]]) == [together.generations.texts[i]]
    assert rerank(prompts[::-1], mrs[::-1], batch_size=3) == together.generations.texts[::-1]


@pytest.mark.parametrize("greedy_passes", [False, True])
def test_a_small_decode_draws_beside_greedy_with_the_same_outcome(greedy_passes) -> None:
    greedy = "Tetris came out in 1986." if greedy_passes else "Tetris."
    draws = {"p1": [("Tetris is a game.", -0.5), ("Tetris, from 1986.", -0.4)]}
    outcome = {}
    for together in (False, True):
        scripted = _Scripted({"p1": (greedy, -0.3)}, draws)
        out = _rerank(scripted, ["p1"], [TETRIS], together_rows=8 if together else 0)
        outcome[together] = (out.generations.texts, out.greedy_texts, out.stats["rerank_changed"])
        # Together: one decode, and a passing greedy output stops its candidates.
        assert scripted.calls == (1 if together else 1 + (not greedy_passes))
        assert len(scripted.decoded) == (0 if greedy_passes else 2)
    assert outcome[True] == outcome[False]
    assert outcome[True][0] == [greedy if greedy_passes else "Tetris, from 1986."]


@pytest.mark.parametrize("select", ["score", "consensus"])
def test_on_a_model_drawing_beside_greedy_changes_no_output(tiny, select) -> None:
    model, tok = tiny
    mrs = [TETRIS, PORTAL]
    prompts = [build_prompt(tok, mr, "SYS") for mr in mrs]
    engine = TransformersEngine(model, tok)
    texts = {}
    for together in (False, True):
        section = RerankSection(
            candidates=3, temperature=1.5, select=select, only_failing=select == "score",
            together_rows=8 if together else 0,
        )  # fmt: skip
        out = [
            generate_reranked(
                engine, [p], [mr], "data_to_text", section, batch_size=8, max_new_tokens=6
            ).generations.texts[0]
            for p, mr in zip(prompts, mrs, strict=True)
        ]
        texts[together] = out
    assert texts[True] == texts[False]


@pytest.mark.parametrize("metric", ["rougeL", "bleu", "chrf"])
def test_consensus_by_each_metric_is_the_minimum_bayes_risk_choice(metric: str) -> None:
    """The chosen candidate has the highest summed agreement (hypothesis against each
    candidate, by the metric itself, computed here with sacrebleu / rouge_score) among
    those with the fewest errors."""
    from sacrebleu.metrics import BLEU, CHRF

    from utils.inference.candidates import CandidatePool
    from utils.metrics.text_metrics import rouge_l

    direct = {
        "rougeL": rouge_l,
        "bleu": lambda h, r: BLEU(effective_order=True).sentence_score(h, [r]).score,
        "chrf": lambda h, r: CHRF().sentence_score(h, [r]).score,
    }[metric]
    texts = [
        "Tetris is a 1986 puzzle game you can still play.",
        "Tetris is a puzzle game from 1986.",
        "Released in 1986, Tetris is a puzzle game.",
        "Tetris, a puzzle game, came out in 1986.",
        "Tetris is a puzzle game that came out in 1986.",
    ]
    pool = CandidatePool(texts[0], 0, -0.1)
    for i, text in enumerate(texts[1:]):
        pool.offer(text, 0, -0.5 - i)
    pool.offer("Tetris is a 1990 puzzle game.", 1, 0.0)  # evidence, never the choice
    everything = [c.text for c in pool.candidates]
    best = max(texts, key=lambda t: sum(direct(t, o) for o in everything))
    assert pool.choice("consensus", metric).text == best


def test_consensus_metrics_disagree_somewhere_and_are_named() -> None:
    """BLEU rewards shared 4-grams, ROUGE-L the longest common subsequence: on these
    candidates they pick differently, so the switch changes something."""
    from utils.inference.candidates import CandidatePool
    from utils.inference.rerank import describe

    texts = [
        "Tetris is a puzzle game released in 1986 on the Game Boy.",
        "Tetris is a puzzle game released in 1986.",
        "On the Game Boy, Tetris is a puzzle game released in 1986.",
        "Tetris came out on the Game Boy in 1986 as a puzzle game.",
        "The Game Boy puzzle game Tetris was released in 1986.",
    ]
    pool = CandidatePool(texts[0], 0, 0.0)
    for text in texts[1:]:
        pool.offer(text, 0, 0.0)
    picks = {m: pool.choice("consensus", m).text for m in ("rougeL", "bleu", "chrf")}
    assert len(set(picks.values())) > 1, picks
    section = RerankSection(select="consensus", consensus_metric="bleu")
    assert describe(section).endswith("consensus by bleu")
    with pytest.raises(ValueError, match="consensus_metric"):
        RerankSection(select="consensus", consensus_metric="meteor")
