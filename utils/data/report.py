"""The data report: what is in each split and which rows deserve a look, before training.

Sections (each a key of the report dict): per-split rows and distinct inputs, exact
duplicates, one input with different labels (conflicts), token lengths against
`dataset.max_length`, slot and dialogue-act counts, test slot values never seen in
training, reference faithfulness (the slot checker on the references themselves) and test
inputs that (nearly) repeat a training input (leakage). Cleaning, augmentation and
synthetic data add what they removed and added. Row numbers count a split's usable rows from 0.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from utils.core.names import SYNTHETIC
from utils.core.tasks import TaskName, get_task
from utils.data.faithfulness import unfaithful_rows
from utils.data.mr_rows import mr_and_text
from utils.data.similarity import near_duplicates, normalize
from utils.viggo import DIALOGUE_ACTS, SLOTS, parse_mr

Rows = list[dict[str, Any]]
# Examples kept per section: the HTML shows them, the step metadata only counts.
MAX_EXAMPLES = 50
HISTOGRAM_BINS = 16


def split_counts(rows: Rows) -> dict[str, int]:
    return {"rows": len(rows), "distinct_inputs": len({r["input"] for r in rows})}


def duplicates(rows: Rows) -> dict[str, Any]:
    """Rows repeating an earlier row's input and target exactly."""
    first: dict[tuple[str, str], int] = {}
    found = []
    for i, r in enumerate(rows):
        key = (r["input"], r["target"])
        if key in first:
            found.append(
                {"row": i, "first_row": first[key], "input": r["input"], "target": r["target"]}
            )
        else:
            first[key] = i
    return {"count": len(found), "examples": found[:MAX_EXAMPLES]}


def _label_key(target: str, task: str) -> Any:
    # Two MRs in different slot order are the same label; two texts differing only in
    # case or punctuation too.
    return parse_mr(target) if task == TaskName.TEXT_TO_MR else normalize(target)


def conflicts(rows: Rows, task: str) -> dict[str, Any]:
    """Inputs that come with different labels.

    For data_to_text several references per MR are the point (many ways to say one
    thing), so that task reports them as `multi_reference_inputs`, not as conflicts."""
    labels: dict[str, dict[Any, int]] = defaultdict(dict)
    for i, r in enumerate(rows):
        labels[r["input"]].setdefault(_label_key(r["target"], task), i)
    several = {inp: found for inp, found in labels.items() if len(found) > 1}
    if task == TaskName.DATA_TO_TEXT:
        return {"count": 0, "multi_reference_inputs": len(several), "examples": []}
    examples = [
        {
            "input": inp,
            "rows": sorted(found.values()),
            "targets": [rows[i]["target"] for i in sorted(found.values())],
        }
        for inp, found in several.items()
    ]
    return {"count": len(several), "examples": examples[:MAX_EXAMPLES]}


def length_histogram(lengths: list[int], max_length: int) -> dict[str, Any]:
    """Token lengths binned from 0 to max(max_length, longest); rows at the cap are cut."""
    top = max([max_length, *lengths])
    width = max(1, -(-top // HISTOGRAM_BINS))
    counts = Counter(min(n // width, HISTOGRAM_BINS - 1) for n in lengths)
    bins = [[b * width, (b + 1) * width, counts.get(b, 0)] for b in range(HISTOGRAM_BINS)]
    truncated = [i for i, n in enumerate(lengths) if n >= max_length]
    return {
        "max_length": max_length,
        "bins": bins,
        "truncated": len(truncated),
        "truncated_rows": truncated[:MAX_EXAMPLES],
    }


def slot_and_act_counts(splits: dict[str, Rows], task: str) -> dict[str, dict[str, dict[str, int]]]:
    """{"slots": {slot: {split: rows with it}}, "acts": {act: {split: rows}}}."""
    slots: dict[str, Counter[str]] = {s: Counter() for s in SLOTS}
    acts: dict[str, Counter[str]] = {a: Counter() for a in DIALOGUE_ACTS}
    for split, rows in splits.items():
        for r in rows:
            mr = parse_mr(mr_and_text(r, task)[0])
            acts[mr.act][split] += 1
            for slot in mr.slot_names():
                slots[slot][split] += 1

    def keep(table: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
        return {k: {s: c.get(s, 0) for s in splits} for k, c in table.items() if c}

    return {"slots": keep(slots), "acts": keep(acts)}


def unseen_test_values(train: Rows, test: Rows, task: str) -> dict[str, Any]:
    """(slot, value) pairs of test MRs that no training MR has: the model never saw them."""
    seen = {p for r in train for p in parse_mr(mr_and_text(r, task)[0]).pairs()}
    unseen: Counter[tuple[str, str]] = Counter()
    for r in test:
        unseen.update(p for p in parse_mr(mr_and_text(r, task)[0]).pairs() if p not in seen)
    values = [{"slot": s, "value": v, "test_rows": n} for (s, v), n in unseen.most_common()]
    return {
        "count": len(values),
        "test_rows": sum(unseen.values()),
        "values": values[:MAX_EXAMPLES],
    }


def faithfulness(rows: Rows, task: str) -> dict[str, Any]:
    """How many references fail the slot checker; the worst of them first."""
    found = unfaithful_rows(rows, task)
    worst = sorted(found, key=lambda u: (-u.errors, u.row))[:MAX_EXAMPLES]
    examples = [
        {**u.as_dict(), "input": rows[u.row]["input"], "target": rows[u.row]["target"]}
        for u in worst
    ]
    return {
        "rows": len(rows),
        "unfaithful": len(found),
        "errors": sum(u.errors for u in found),
        "worst": examples,
    }


def leaks(train: Rows, test: Rows, threshold: float) -> dict[str, Any]:
    """Test inputs equal (after normalizing) or near-equal to a training input."""
    matches = near_duplicates([r["input"] for r in test], [r["input"] for r in train], threshold)
    examples = [
        {"test_row": m.query, "train_row": m.corpus, "similarity": round(m.similarity, 3),
         "test_input": test[m.query]["input"], "train_input": train[m.corpus]["input"]}
        for m in sorted(matches, key=lambda m: (-m.similarity, m.query))
    ]  # fmt: skip
    exact = sum(m.exact for m in matches)
    return {
        "threshold": threshold,
        "exact": exact,
        "near": len(matches) - exact,
        "examples": examples[:MAX_EXAMPLES],
    }


def build_report(
    splits: dict[str, Rows], task: str, near_duplicate_similarity: float
) -> dict[str, Any]:
    """Every section that needs only the rows (lengths, cleaning, augmentation come later)."""
    report: dict[str, Any] = {
        "task": str(task),
        "splits": {s: split_counts(rows) for s, rows in splits.items()},
        "duplicates": {s: duplicates(rows) for s, rows in splits.items()},
        "conflicts": {s: conflicts(rows, task) for s, rows in splits.items()},
        "leaks": leaks(splits["train"], splits["test"], near_duplicate_similarity),
    }
    if get_task(task).mr_role is not None:
        report.update(slot_and_act_counts(splits, task))
        report["unseen_test_values"] = unseen_test_values(splits["train"], splits["test"], task)
        report["faithfulness"] = {s: faithfulness(rows, task) for s, rows in splits.items()}
    return report


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The counts of every section, without example rows: small enough for step metadata."""

    def counts(section: Any) -> Any:
        if isinstance(section, dict):
            return {k: counts(v) for k, v in section.items() if not _is_listing(v)}
        return section

    return counts(report)


def _is_listing(value: Any) -> bool:
    # Example rows and row numbers; short lists of names (augmentation kinds) stay.
    return isinstance(value, list) and (
        len(value) > 10 or any(isinstance(v, dict | list) for v in value)
    )


def report_headline(report: dict[str, Any]) -> str:
    """One log line: the counts a user should look at before training."""
    train = report["splits"]["train"]
    parts = [
        f"train {train['rows']} rows ({train['distinct_inputs']} distinct inputs)",
        f"{report['duplicates']['train']['count']} exact duplicates",
        f"{report['conflicts']['train']['count']} conflicting inputs",
    ]
    if "faithfulness" in report:
        parts.append(f"{report['faithfulness']['train']['unfaithful']} unfaithful references")
    leaks = report["leaks"]
    parts.append(f"{leaks['exact']} exact + {leaks['near']} near test inputs seen in train")
    for key, sec in report.get("cleaning", {}).items():
        parts.append(f"{key} removed {sec['removed']}")
    if "augmentation" in report:
        parts.append(f"augmentation added {report['augmentation']['added']}")
    if SYNTHETIC in report:
        parts.append(f"synthetic added {report[SYNTHETIC]['kept']}")
    return "Data report: " + ", ".join(parts)
