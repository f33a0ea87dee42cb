"""Round-trip-verified synthetic rows: new MRs composed from the training distribution, kept
only when a generated sentence passes the slot checker and parses back to the same MR.

Composition draws, seeded: a dialogue act as often as training MRs have it, then a slot
set (with its order, and which slots are empty, as in `request_attribute(esrb[])`) that
training MRs of that act have, then for each non-empty slot a value training MRs give it
(a list slot's whole list, so combinations stay ones ViGGO uses). Only training values are
drawn, and an MR of any split (or one already composed) is drawn again: the new rows teach
new combinations and never hold a validation or test MR. Distinct MRs are counted, not
rows, since ViGGO has ~3 references per MR.

Generating and parsing come in as plain functions (texts of inputs, in order), so the
filters are tested without a model; `utils.inference.adapters.version_decode` makes them from
model versions.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate
from typing import Any

from utils.core.names import SYNTHETIC
from utils.data.faithfulness import check_reference
from utils.data.mr_rows import join_mr, mr_and_text, split_mr, with_mr_and_text
from utils.viggo import MeaningRepresentation, parse_mr, try_parse_mr

Rows = list[dict[str, Any]]
# Texts of inputs, in order: a generator (MR -> sentence) or a parser (sentence -> MR).
Decode = Callable[[list[str]], list[str]]
# (slot, empty) in the order a training MR wrote them.
Shape = tuple[tuple[str, bool], ...]
# Draws per requested MR before composition gives up (the new combinations ran out).
_TRIES_PER_ROW = 50
# Examples of each outcome kept in the summary (the data report shows them).
MAX_EXAMPLES = 10


def _weighted(counts: Counter[Any]) -> tuple[list[Any], list[int]]:
    # Sorted, so the draws depend on the rows' contents, not on their order.
    keys = sorted(counts)
    return keys, list(accumulate(counts[k] for k in keys))


@dataclass(frozen=True)
class MRDistribution:
    """How often training MRs have each act, each slot set per act, each value per slot."""

    acts: Counter[str]
    shapes: dict[str, Counter[Shape]]
    values: dict[str, Counter[tuple[str, ...]]]

    @classmethod
    def of(cls, rows: Rows, task: str) -> MRDistribution:
        acts: Counter[str] = Counter()
        shapes: dict[str, Counter[Shape]] = defaultdict(Counter)
        values: dict[str, Counter[tuple[str, ...]]] = defaultdict(Counter)
        seen: set[MeaningRepresentation] = set()
        for row in rows:
            text = mr_and_text(row, task)[0]
            parsed = parse_mr(text)
            if parsed in seen:
                continue
            seen.add(parsed)
            act, slots = split_mr(text)
            acts[act] += 1
            shapes[act][tuple((slot, not items) for slot, items in slots)] += 1
            for slot, items in slots:
                if items:
                    values[slot][tuple(items)] += 1
        return cls(acts, dict(shapes), dict(values))

    @cached_property
    def _tables(self) -> dict[Any, tuple[list[Any], list[int]]]:
        # Keys and cumulative weights of every draw, sorted once (a draw per MR would sort
        # the hundreds of names again).
        tables: dict[Any, tuple[list[Any], list[int]]] = {None: _weighted(self.acts)}
        tables.update({("act", a): _weighted(c) for a, c in self.shapes.items()})
        tables.update({("slot", s): _weighted(c) for s, c in self.values.items()})
        return tables

    def _pick(self, rng: random.Random, table: Any) -> Any:
        keys, cumulative = self._tables[table]
        return rng.choices(keys, cum_weights=cumulative)[0]

    def draw(self, rng: random.Random) -> str:
        act = self._pick(rng, None)
        slots = [
            (slot, [] if empty else list(self._pick(rng, ("slot", slot))))
            for slot, empty in self._pick(rng, ("act", act))
        ]
        return join_mr((act, slots))


def compose(
    dist: MRDistribution, n: int, seed: int, exclude: set[MeaningRepresentation]
) -> list[str]:
    """Up to `n` distinct MRs drawn from `dist`, none of them (slot order aside) in `exclude`."""
    rng = random.Random(seed)
    taken = set(exclude)
    out: list[str] = []
    for _ in range(n * _TRIES_PER_ROW):
        if len(out) >= n:
            break
        mr = dist.draw(rng)
        parsed = parse_mr(mr)
        if parsed not in taken:
            taken.add(parsed)
            out.append(mr)
    return out


def mrs_of(splits: dict[str, Rows], task: str) -> set[MeaningRepresentation]:
    """Every MR of every split: what composition must not produce."""
    return {parse_mr(mr_and_text(r, task)[0]) for rows in splits.values() for r in rows}


def _slot_problems(mr: str, text: str) -> str | None:
    found = check_reference(mr, text)
    if found is None:
        return None
    kinds = (("missing", found.missing), ("wrong", found.wrong), ("invented", found.hallucinated))
    return "; ".join(f"{kind} {', '.join(slots)}" for kind, slots in kinds if slots)


def verify(mrs: list[str], generate: Decode, parse: Decode) -> dict[str, list[dict[str, str]]]:
    """Each composed MR with its sentence, sorted into `kept`, `rejected_by_checker` (the
    sentence misses, gets wrong or invents a slot: `why`) and `rejected_by_round_trip` (the
    parser read it as another MR: `parsed`). MRs compare as the exact-match metric does."""
    texts = generate(mrs) if mrs else []
    out: dict[str, list[dict[str, str]]] = {
        "kept": [], "rejected_by_checker": [], "rejected_by_round_trip": [],
    }  # fmt: skip
    passed = []
    for mr, text in zip(mrs, texts, strict=True):
        why = _slot_problems(mr, text) if text.strip() else "empty sentence"
        if why is None:
            passed.append({"mr": mr, "text": text})
        else:
            out["rejected_by_checker"].append({"mr": mr, "text": text, "why": why})
    parsed = parse([p["text"] for p in passed]) if passed else []
    for pair, back in zip(passed, parsed, strict=True):
        if try_parse_mr(back) == parse_mr(pair["mr"]):
            out["kept"].append(pair)
        else:
            out["rejected_by_round_trip"].append({**pair, "parsed": back})
    return out


def synthesize(
    train: Rows,
    exclude: set[MeaningRepresentation],
    task: str,
    n: int,
    seed: int,
    generate: Decode,
    parse: Decode,
    sources: dict[str, str] | None = None,
) -> tuple[Rows, dict[str, Any]]:
    """The kept rows as `task` rows (each marked `synthetic`: the generator that wrote it) and
    a summary: counts of each outcome, a few examples of each. `sources`: the generator and
    parser versions, as names for the summary and the mark."""
    sources = sources or {}
    mrs = compose(MRDistribution.of(train, task), n, seed, exclude)
    outcome = verify(mrs, generate, parse)
    mark = sources.get("generator", "generator")
    kept = outcome["kept"]
    rows = [{**with_mr_and_text({}, task, p["mr"], p["text"]), SYNTHETIC: mark} for p in kept]
    summary: dict[str, Any] = {
        **sources, "requested": n, "seed": seed, "composed": len(mrs),
        "generated": sum(bool(r["text"].strip()) for found in outcome.values() for r in found),
        **{key: len(found) for key, found in outcome.items()},
        "examples": {key: found[:MAX_EXAMPLES] for key, found in outcome.items()},
    }  # fmt: skip
    return rows, summary
