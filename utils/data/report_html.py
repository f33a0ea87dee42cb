"""The data report as one self-contained HTML page for the dashboard.

The dashboard shows it in a sandboxed iframe: inline CSS only, no scripts, nothing
fetched. Every text comes from the dataset, so all of it is escaped. Bars are CSS widths.
"""

from __future__ import annotations

import html
from typing import Any

from utils.core.names import SYNTHETIC

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px;
       margin: 16px; color: #1f2328; }
h1 { font-size: 18px; margin: 0 0 12px; } h2 { font-size: 15px; margin: 20px 0 6px; }
table { border-collapse: collapse; margin-bottom: 10px; }
th, td { border: 1px solid #d0d7de; padding: 3px 6px; vertical-align: top; text-align: left; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 48em; }
td.bad { background: hsl(0, 70%, 90%); } td.ok { background: hsl(120, 50%, 90%); }
div.bar { background: #54aeff; height: 10px; } div.cut { background: #cf222e; height: 10px; }
p.note { color: #57606a; margin: 4px 0; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(head: list[str], rows: list[list[Any]], text_cols: tuple[int, ...] = ()) -> str:
    if not rows:
        return '<p class="note">none</p>'
    out = ["<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            cls = "text" if i in text_cols else ("num" if isinstance(v, int | float) else "")
            cells.append(f'<td class="{cls}">{_esc(v)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _count_cell(n: int) -> str:
    return f'<td class="num {"bad" if n else "ok"}">{n}</td>'


def _overview(report: dict[str, Any]) -> str:
    splits = list(report["splits"])
    checks = [("rows", "splits", "rows"), ("distinct inputs", "splits", "distinct_inputs")]
    checks += [
        ("exact duplicates", "duplicates", "count"),
        ("conflicting labels", "conflicts", "count"),
    ]
    if "faithfulness" in report:
        checks.append(("unfaithful references", "faithfulness", "unfaithful"))
    out = ["<table><tr><th></th>" + "".join(f"<th>{_esc(s)}</th>" for s in splits) + "</tr>"]
    for label, section, key in checks:
        problem = section not in ("splits",)
        cells = []
        for s in splits:
            n = report[section][s][key]
            cells.append(_count_cell(n) if problem else f'<td class="num">{n}</td>')
        out.append(f"<tr><th>{_esc(label)}</th>{''.join(cells)}</tr>")
    return "".join(out) + "</table>"


def _histograms(lengths: dict[str, Any]) -> str:
    out = []
    for split, h in lengths.items():
        top = max((n for _, _, n in h["bins"]), default=0) or 1
        rows = []
        for lo, hi, n in h["bins"]:
            cls = "cut" if hi > h["max_length"] else "bar"
            bar = f'<div class="{cls}" style="width: {240 * n / top:.0f}px"></div>'
            rows.append(
                f'<tr><td class="num">{lo}-{hi - 1}</td><td class="num">{n}</td><td>{bar}</td></tr>'
            )
        out.append(
            f"<h3>{_esc(split)}</h3><p class=\"note\">{h['truncated']} row(s) at or over "
            f"dataset.max_length={h['max_length']} (cut; red: past the cap)"
            + (f": rows {_esc(h['truncated_rows'])}" if h["truncated"] else "") + "</p>"
            "<table><tr><th>tokens</th><th>rows</th><th></th></tr>" + "".join(rows) + "</table>"
        )  # fmt: skip
    return "".join(out)


# Example tables: (header, key in the example dict, shown as wrapped text).
Columns = list[tuple[str, str, bool]]
_ROW_PAIR: Columns = [("input", "input", True), ("target", "target", True)]
_COLUMNS: dict[str, Columns] = {
    "duplicates": [("row", "row", False), ("repeats row", "first_row", False), *_ROW_PAIR],
    "conflicts": [("rows", "rows", False), ("input", "input", True), ("labels", "targets", True)],
    "faithfulness": [
        ("row", "row", False), ("errors", "errors", False), ("missing", "missing", False),
        ("wrong", "wrong", False), ("invented", "hallucinated", False), *_ROW_PAIR,
    ],
    "leaks": [
        ("test row", "test_row", False), ("train row", "train_row", False),
        ("similarity", "similarity", False), ("test input", "test_input", True),
        ("train input", "train_input", True),
    ],
    "unseen": [
        ("slot", "slot", False), ("value", "value", False), ("test rows", "test_rows", False),
    ],
    "cleaning": [("row", "row", False), ("why", "why", True), *_ROW_PAIR],
    "augmentation": [
        ("source input", "source_input", True), ("source target", "source_target", True),
        ("augmented input", "input", True), ("augmented target", "target", True),
    ],
    "kept": [("composed MR", "mr", True), ("generated sentence", "text", True)],
    "rejected_by_checker": [
        ("composed MR", "mr", True), ("generated sentence", "text", True),
        ("slot checker", "why", True),
    ],
    "rejected_by_round_trip": [
        ("composed MR", "mr", True), ("generated sentence", "text", True),
        ("parsed back as", "parsed", True),
    ],
}  # fmt: skip
_SYNTHETIC_OUTCOMES = {
    "kept": "kept",
    "rejected_by_checker": "rejected by the slot checker",
    "rejected_by_round_trip": "rejected by the round trip",
}


def _section(heading: str, examples: list[dict[str, Any]], kind: str) -> str:
    columns = _COLUMNS[kind]
    rows = [
        [", ".join(map(str, v)) if isinstance(v := r[key], list) else v for _, key, _ in columns]
        for r in examples
    ]
    texts = tuple(i for i, (_, _, text) in enumerate(columns) if text)
    return f"<h2>{_esc(heading)}</h2>" + _table([h for h, _, _ in columns], rows, texts)


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _row_sections(report: dict[str, Any]) -> list[str]:
    parts = []
    for split, sec in report["duplicates"].items():
        if sec["count"]:
            heading = f"Exact duplicates in {split} ({sec['count']})"
            parts.append(_section(heading, sec["examples"], "duplicates"))
    for split, sec in report["conflicts"].items():
        if sec.get("multi_reference_inputs"):
            n = sec["multi_reference_inputs"]
            parts.append(_note(f"{split}: {n} inputs have several references (expected here)."))
        if sec["count"]:
            heading = f"One input, different labels, in {split} ({sec['count']})"
            parts.append(_section(heading, sec["examples"], "conflicts"))
    for split, sec in report.get("faithfulness", {}).items():
        heading = (
            f"Reference faithfulness, {split}: {sec['unfaithful']} of {sec['rows']} references "
            f"fail the slot checker ({sec['errors']} slot errors), worst first"
        )
        parts.append(_section(heading, sec["worst"], "faithfulness"))
    leaks = report["leaks"]
    heading = (
        f"Test inputs repeating a training input: {leaks['exact']} exact, {leaks['near']} "
        f"near (word Jaccard >= {leaks['threshold']})"
    )
    parts.append(_section(heading, leaks["examples"], "leaks"))
    return parts


def _count_sections(report: dict[str, Any]) -> list[str]:
    parts = []
    if "lengths" in report:
        parts.append("<h2>Token lengths (prompt + target)</h2>" + _histograms(report["lengths"]))
    if "unseen_test_values" in report:
        u = report["unseen_test_values"]
        heading = f"Test slot values never seen in training: {u['count']} ({u['test_rows']} uses)"
        parts.append(_section(heading, u["values"], "unseen"))
    splits = list(report["splits"])
    for key, label in (("acts", "Dialogue acts"), ("slots", "Slots")):
        if key in report:
            rows = [[name, *(c[s] for s in splits)] for name, c in report[key].items()]
            parts.append(f"<h2>{label} (rows per split)</h2>" + _table([key[:-1], *splits], rows))
    return parts


def _change_sections(report: dict[str, Any]) -> list[str]:
    parts = []
    for key, sec in report.get("cleaning", {}).items():
        heading = f"dataset.{key} removed {sec['removed']} training row(s)"
        parts.append(_section(heading, sec["rows"], "cleaning"))
    if "augmentation" in report:
        a = report["augmentation"]
        heading = (
            f"Augmentation ({'+'.join(a['kinds'])}): {a['added']} training rows added, "
            f"of {a['requested']} asked for"
        )
        parts.append(_section(heading, a["examples"], "augmentation"))
        parts.append(
            _note("Augmented rows carry `augmented` in train.jsonl; validation and test have none.")
        )
    if SYNTHETIC in report:
        parts += _synthetic_sections(report[SYNTHETIC])
    return parts


def _synthetic_sections(s: dict[str, Any]) -> list[str]:
    parts = [
        f"<h2>Synthetic data: {s['kept']} training rows added, of {s['composed']} new MRs "
        f"composed ({s['requested']} asked for)</h2>",
        _note(
            f"Sentences by {s.get('generator', '?')}, read back by {s.get('parser', '?')}; "
            f"{s['rejected_by_checker']} failed the slot checker, {s['rejected_by_round_trip']} "
            "parsed back as another MR. Synthetic rows carry `synthetic` in train.jsonl; "
            "validation and test have none, and no composed MR is one of theirs."
        ),
    ]
    for key, label in _SYNTHETIC_OUTCOMES.items():
        examples = s["examples"][key]
        if examples:
            heading = f"Synthetic, {label} ({s[key]}; first {len(examples)})"
            parts.append(_section(heading, examples, key))
    return parts


def data_report_html(report: dict[str, Any], title: str = "Data report") -> str:
    """The page: an overview table, then every section with its rows."""
    parts = [f"<h1>{_esc(title)}</h1><p>task: <code>{_esc(report['task'])}</code></p>"]
    parts += [_overview(report), *_change_sections(report), *_row_sections(report)]
    parts += _count_sections(report)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
        + "".join(parts)
        + "</body></html>\n"
    )
