"""Synthetic data: composition is seeded, follows the training distribution and draws only
training values; a sentence is kept only when the slot checker and the round trip agree;
the rows reach train only, marked; every key fails in one line."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.unit.test_data_report import _row
from utils.config import DatasetSection
from utils.config.base import ConfigError
from utils.data.synthetic import MRDistribution, compose, mrs_of, synthesize, verify
from utils.viggo import parse_mr

NAMES = [f"Game {c}" for c in "ABCDEFGHIJKLMNOPQRST"]  # 20
YEARS = [str(1990 + i) for i in range(10)]
SPECIFIERS = ["fun", "hard", "relaxing", "scary", "long"]


def _train() -> list[dict]:
    """15 inform MRs to 5 request MRs (3:1), one request_attribute with an empty slot."""
    inform = [
        _row(f"inform(name[{n}], release_year[{y}])", f"{n} came out in {y}.")
        for n, y in zip(NAMES[:15], YEARS + YEARS, strict=False)
    ]
    request = [
        _row(f"request(release_year[{y}], specifier[{s}])", f"Any {s} game from {y}?")
        for y, s in zip(YEARS[5:], SPECIFIERS, strict=True)
    ]
    # A second reference of an MR counts once: distinct MRs make the distribution.
    extra = [_row(inform[0]["input"], "Another sentence.")]
    return inform + request + extra


def test_composition_is_seeded_and_follows_the_training_distribution() -> None:
    train = _train()
    dist = MRDistribution.of(train, "data_to_text")
    assert dist.acts == Counter({"inform": 15, "request": 5})
    exclude = mrs_of({"train": train}, "data_to_text")
    mrs = compose(dist, 120, seed=0, exclude=exclude)
    assert mrs == compose(dist, 120, seed=0, exclude=exclude)
    assert mrs != compose(dist, 120, seed=1, exclude=exclude)
    acts = Counter(parse_mr(m).act for m in mrs)
    assert len(mrs) == 120 and 75 <= acts["inform"] <= 105  # 90 expected (3:1)
    train_pairs = {p for r in train for p in parse_mr(r["input"]).pairs()}
    shapes = {(mr.act, mr.slot_names()) for mr in (parse_mr(r["input"]) for r in train)}
    parsed = [parse_mr(m) for m in mrs]
    assert len(set(parsed)) == 120 and not set(parsed) & exclude
    for mr in parsed:
        assert (mr.act, mr.slot_names()) in shapes  # slot sets the act has in training
        assert mr.pairs() <= train_pairs  # training values only


def test_composition_keeps_other_splits_out_and_stops_when_new_mrs_run_out() -> None:
    train = [
        _row("inform(name[Tetris], release_year[1984])", "Tetris came out in 1984."),
        _row("inform(name[Portal 2], release_year[2011])", "Portal 2 came out in 2011."),
        _row("request_attribute(esrb[])", "What rating do you like?"),
    ]
    test = [_row("inform(name[Tetris], release_year[2011])", "Tetris came out in 2011.")]
    splits = {"train": train, "validation": [], "test": test}
    dist = MRDistribution.of(train, "data_to_text")
    # The one new combination left: the test MR and every training MR are never drawn.
    assert compose(dist, 5, 0, mrs_of(splits, "data_to_text")) == [
        "inform(name[Portal 2], release_year[1984])"
    ]


def _template(mr: str) -> str:
    # A stand-in generator that realises exactly the MRs of `_train()`'s inform act.
    m = parse_mr(mr)
    return f"{m.get('name')[0]} came out in {m.get('release_year')[0]}."


def _read_back(text: str) -> str:
    # A stand-in parser for `_template`'s sentences (slots in the other order: still equal).
    name, year = re.match(r"(.+) came out in (\d+)\.", text).groups()
    return f"inform(release_year[{year}], name[{name}])"


MRS = [f"inform(name[{n}], release_year[{y}])" for n, y in [("Game A", "1999"), ("Game B", "1998")]]


def test_a_faithful_sentence_that_parses_back_is_kept() -> None:
    out = verify(
        MRS, lambda mrs: [_template(m) for m in mrs], lambda ts: [_read_back(t) for t in ts]
    )
    assert [k["mr"] for k in out["kept"]] == MRS
    assert out["rejected_by_checker"] == out["rejected_by_round_trip"] == []


def test_a_planted_unfaithful_sentence_is_rejected_by_the_checker() -> None:
    def generate(mrs: list[str]) -> list[str]:
        texts = [_template(m) for m in mrs]
        return [texts[0].replace("1999", "2005"), "  "]  # wrong year; nothing at all

    parsed: list[list[str]] = []
    out = verify(MRS, generate, lambda ts: parsed.append(ts) or [_read_back(t) for t in ts])
    assert out["kept"] == [] and parsed == []  # the parser never sees rejected sentences
    whys = [r["why"] for r in out["rejected_by_checker"]]
    assert whys == ["wrong release_year", "empty sentence"]


def test_a_planted_bad_round_trip_is_rejected() -> None:
    def parse(texts: list[str]) -> list[str]:
        back = [_read_back(t) for t in texts]
        return [back[0], "inform(name[Game B], release_year[1990])"]  # misread year

    out = verify(MRS, lambda mrs: [_template(m) for m in mrs], parse)
    assert [k["mr"] for k in out["kept"]] == MRS[:1]
    (bad,) = out["rejected_by_round_trip"]
    assert bad["mr"] == MRS[1] and bad["parsed"] == "inform(name[Game B], release_year[1990])"


@pytest.mark.parametrize("task", ["data_to_text", "text_to_mr"])
def test_synthesize_makes_marked_task_rows_and_counts_each_outcome(task: str) -> None:
    train = [r for r in _train() if r["input"].startswith("inform")]
    if task == "text_to_mr":
        train = [_row(r["target"], r["input"]) for r in train]
    exclude = mrs_of({"train": train}, task)
    calls: list[int] = []

    def generate(mrs: list[str]) -> list[str]:
        calls.append(len(mrs))
        return [_template(m) if i % 3 else "" for i, m in enumerate(mrs)]

    def parse(texts: list[str]) -> list[str]:
        back = [_read_back(t) for t in texts]
        return ["request(specifier[fun])" if i % 4 == 0 else b for i, b in enumerate(back)]

    sources = {"generator": "gen:3", "parser": "parse:1"}
    rows, s = synthesize(train, exclude, task, 12, 0, generate, parse, sources)
    assert calls == [12] and s["composed"] == s["requested"] == 12
    assert s["rejected_by_checker"] == 4 and s["generated"] == 8  # every third is empty
    assert s["rejected_by_round_trip"] == 2 and s["kept"] == len(rows) == 6
    assert s["generator"] == "gen:3" and len(s["examples"]["kept"]) == 6
    mr_side = "input" if task == "data_to_text" else "target"
    for row in rows:
        assert row["synthetic"] == "gen:3" and row["references"] == [row["target"]]
        assert parse_mr(row[mr_side]) not in exclude
    assert rows == synthesize(train, exclude, task, 12, 0, generate, parse, sources)[0]


def _jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps({"meaning_representation": r["input"], "target": r["target"]}))
            f.write("\n")


def test_synthetic_rows_reach_train_only_and_the_report(tmp_path: Path, smollm2_dir: Path) -> None:
    from utils.data.jsonl import read_jsonl
    from utils.data.prepare import DATA_REPORT_FILE, prepare_dataset
    from utils.data.report_html import data_report_html
    from utils.modeling.loader import load_tokenizer

    train = [r for r in _train() if r["input"].startswith("inform")][:6]
    for split in ("train", "validation", "test"):
        _jsonl(tmp_path / f"{split}.jsonl", train)
    cfg = DatasetSection(data_dir=str(tmp_path))
    generate = lambda mrs: [_template(m) for m in mrs]  # noqa: E731
    parse = lambda ts: [_read_back(t) for t in ts]  # noqa: E731
    exclude = mrs_of({"train": train}, "data_to_text")
    rows, summary = synthesize(train, exclude, "data_to_text", 3, 0, generate, parse)
    out = tmp_path / "out"
    meta = prepare_dataset(
        cfg, load_tokenizer(str(smollm2_dir)), out, synthetic={"rows": rows, "summary": summary}
    )
    prepared = read_jsonl(out / "train.jsonl")
    assert len(prepared) == 9 and sum("synthetic" in r for r in prepared) == 3
    assert all("input_ids" in r for r in prepared)  # tokenized like every training row
    for split in ("validation", "test"):
        assert not any("synthetic" in r for r in read_jsonl(out / f"{split}.jsonl"))
    report = json.loads((out / DATA_REPORT_FILE).read_text())
    assert report["synthetic"]["kept"] == 3 and meta["data_report"]["synthetic"]["kept"] == 3
    # Step metadata: the counts, not the rows.
    assert rows[0]["target"] not in json.dumps(meta["data_report"])
    page = data_report_html(report)
    assert "Synthetic data: 3 training rows added, of 3 new MRs composed" in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.synthetic={generator: {model: g}}"], "dataset.synthetic.parser: Field required"),
        (["dataset.synthetic.generator.model=''"], "dataset.synthetic.generator.model: String"),
        (["dataset.synthetic.rows=0"], "dataset.synthetic.rows: Input should be greater than 0"),
        (["dataset.synthetic.generater={model: g}"], "did you mean 'dataset.synthetic.generator'"),
        (["dataset.task=text_to_text"], "synthetic needs a ViGGO task"),
    ],
)
def test_bad_synthetic_keys_fail_in_one_line(overrides: list[str], message: str) -> None:
    from utils.config import load_config

    complete = ["dataset.synthetic={generator: {model: g}, parser: {model: p}}"]
    with pytest.raises(ConfigError) as err:
        load_config(Path("configs/smollm2_cpu.yaml"), complete + overrides, None)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_a_version_number_may_be_written_as_a_number() -> None:
    from utils.config import load_config

    # As users type them: `--set ...version=3`, `version: 3` in YAML; both arrive as ints.
    overrides = [
        "dataset.synthetic={generator: {model: g, version: 3}, parser: {model: p}}",
        "dataset.synthetic.parser.version=12",
    ]
    synthetic = load_config(Path("configs/smollm2_cpu.yaml"), overrides, None).dataset.synthetic
    assert (synthetic.generator.label(), synthetic.parser.label()) == ("g:3", "p:12")
    with pytest.raises(ConfigError) as err:  # a YAML boolean is a slip, not version 1
        load_config(
            Path("configs/smollm2_cpu.yaml"),
            [*overrides[:1], "dataset.synthetic.parser.version=true"],
            None,
        )
    assert "dataset.synthetic.parser.version: Input should be a valid string" in str(err.value)


def test_a_version_that_does_not_exist_is_refused_in_one_line(zenml_env: Path) -> None:
    from utils.config import load_config
    from utils.zenml_ops.model_versions import ModelVersionError
    from utils.zenml_ops.synthetic_sources import check_sources

    complete = "dataset.synthetic={generator: {model: nope}, parser: {model: p, version: '3'}}"
    cfg = load_config(None, [complete])
    with pytest.raises(ModelVersionError) as err:
        check_sources(cfg.dataset)
    assert str(err.value) == "dataset.synthetic.generator: model 'nope' has no version 'staging'"
    check_sources(DatasetSection())  # off: nothing to check
