"""Training-only augmentation of ViGGO rows, seeded and deterministic.

`substitute`: a slot value that appears verbatim in the sentence is replaced, in the MR and
in the sentence alike, by another value of that slot seen in the training rows (a game
name, developer, year, release date, ESRB class, platform or perspective: values a sentence
quotes as they are). `permute`: the input MR's slots (and list items) in another order; the
sentence is unchanged, and the MR means the same. Both apply to text_to_mr the other way
round (substitute only: its MR is the target). Every new row must pass the slot checker,
and only rows whose own reference passes it are used as sources, so augmentation never
multiplies label noise.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from utils.data.faithfulness import check_reference
from utils.data.mr_rows import OrderedMR, join_mr, mr_and_text, split_mr, with_mr_and_text

if TYPE_CHECKING:
    from utils.config import DatasetSection

logger = logging.getLogger(__name__)

Rows = list[dict[str, Any]]
# Booleans, ratings, genres and specifiers are phrased ("not on Steam", "an RPG", "a
# masterpiece"), not quoted: swapping the word would break the sentence or its grammar.
SUBSTITUTABLE = (
    "name", "developer", "release_year", "exp_release_date", "esrb", "platforms",
    "player_perspective",
)  # fmt: skip
# Tries per new row before a source row is given up (its values may all be unquoted).
_TRIES = 4


def _verbatim(value: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(value) + r"(?!\w)")


def slot_values(rows: Rows, task: str) -> dict[str, list[str]]:
    """The values each substitutable slot takes in `rows`, sorted (the seeded draws' pool)."""
    values: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        for slot, items in split_mr(mr_and_text(row, task)[0])[1]:
            if slot in SUBSTITUTABLE:
                values[slot].update(items)
    return {slot: sorted(v) for slot, v in values.items()}


def substitute(
    mr: OrderedMR, text: str, pool: dict[str, list[str]], rng: random.Random
) -> tuple[OrderedMR, str] | None:
    """One quoted value swapped for another of its slot, or None when none is quoted."""
    act, slots = mr
    quoted = [
        (k, j) for k, (slot, items) in enumerate(slots) if slot in SUBSTITUTABLE
        for j, item in enumerate(items) if _verbatim(item).search(text)
    ]  # fmt: skip
    if not quoted:
        return None
    k, j = rng.choice(quoted)
    slot, items = slots[k]
    options = [v for v in pool.get(slot, ()) if v not in items and not _verbatim(v).search(text)]
    if not options:
        return None
    new = rng.choice(options)
    text = _verbatim(items[j]).sub(lambda _: new, text)
    slots = [*slots[:k], (slot, [*items[:j], new, *items[j + 1 :]]), *slots[k + 1 :]]
    return (act, slots), text


def permute(mr: OrderedMR, rng: random.Random) -> OrderedMR | None:
    """The same MR with its slots and list items shuffled; None when only one order exists."""
    act, slots = mr
    shuffled = [(slot, rng.sample(items, len(items))) for slot, items in slots]
    rng.shuffle(shuffled)
    return None if shuffled == slots else (act, shuffled)


def _augment_row(
    row: dict[str, Any], kinds: tuple[str, ...], task: str, pool: dict[str, list[str]],
    rng: random.Random,
) -> dict[str, Any] | None:  # fmt: skip
    mr_text, text = mr_and_text(row, task)
    mr = split_mr(mr_text)
    for kind in kinds:
        if kind == "substitute":
            done = substitute(mr, text, pool, rng)
            if done is None:
                return None
            mr, text = done
        else:
            shuffled = permute(mr, rng)
            if shuffled is None:
                return None
            mr = shuffled
    new_mr = join_mr(mr)
    if check_reference(new_mr, text) is not None:
        return None
    return with_mr_and_text(row, task, new_mr, text)


def augment_rows(train: Rows, cfg: DatasetSection) -> tuple[Rows, dict[str, Any]]:
    """`augment_factor` x len(train) new rows (fewer if sources run out), and a summary.

    Each new row applies every listed augmentation to one faithful source row and carries
    `augmented` (what was applied) and `source_row` (its row in `train`)."""
    kinds = tuple(cfg.augment)
    target = round(cfg.augment_factor * len(train))
    sources = [i for i, r in enumerate(train) if check_reference(*mr_and_text(r, cfg.task)) is None]
    pool = slot_values(train, cfg.task)
    rng = random.Random(cfg.augment_seed)
    seen = {(r["input"], r["target"]) for r in train}
    added: Rows = []
    order = rng.sample(sources, len(sources))
    # Passes over the shuffled sources until enough rows are made or a pass adds none.
    while len(added) < target and order:
        before = len(added)
        for i in order:
            if len(added) >= target:
                break
            for _ in range(_TRIES):
                new = _augment_row(train[i], kinds, cfg.task, pool, rng)
                if new is not None and (new["input"], new["target"]) not in seen:
                    seen.add((new["input"], new["target"]))
                    added.append({**new, "augmented": "+".join(kinds), "source_row": i})
                    break
        if len(added) == before:
            break
    if len(added) < target:
        logger.warning("augmentation made %d of %d rows: the sources ran out", len(added), target)
    examples = [
        {"source_input": train[r["source_row"]]["input"],
         "source_target": train[r["source_row"]]["target"],
         "input": r["input"], "target": r["target"]}
        for r in added[:20]
    ]  # fmt: skip
    summary = {
        "kinds": list(kinds), "factor": cfg.augment_factor, "seed": cfg.augment_seed,
        "requested": target, "added": len(added), "faithful_sources": len(sources),
        "examples": examples,
    }  # fmt: skip
    return added, summary
