"""A sweep's grid: parsing, merging with `sweep.grid`, the variants, their validation."""

import argparse
import itertools
from pathlib import Path

import pytest

from tests.conftest import ROOT
from utils.config import ConfigError, load_config
from utils.experiments.grid import (
    check_grid,
    expand,
    merge_grids,
    parse_grid_arg,
    section_grid,
    set_text,
    split_values,
)
from utils.experiments.progress import duration, eta_seconds, progress_line


def test_values_split_on_top_level_commas_only() -> None:
    assert split_values("3e-4, 1e-3") == ["3e-4", "1e-3"]
    assert split_values("[q_proj,v_proj],[o_proj]") == ["[q_proj,v_proj]", "[o_proj]"]
    assert split_values("'a,b',c") == ["'a,b'", "c"]
    assert split_values("{r: 4, alpha: 8},x") == ["{r: 4, alpha: 8}", "x"]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("training.learning_rate", "expected dotted.key=value1,value2"),
        ("=1,2", "expected dotted.key"),
        ("training..lr=1", "expected dotted.key"),
        ("lora.r=8,,16", "empty value"),
        ("lora.r=", "empty value"),
    ],
)
def test_malformed_grid_args_are_one_line_errors(text: str, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase):
        parse_grid_arg(text)


def test_cartesian_product_first_key_slowest() -> None:
    grid = [parse_grid_arg("training.learning_rate=3e-4,1e-3"), parse_grid_arg("lora.r=8,16")]
    variants = expand(grid)
    assert [v.index for v in variants] == [1, 2, 3, 4]
    assert variants[0].sets == ["training.learning_rate=3e-4", "lora.r=8"]
    assert variants[1].label == "training.learning_rate=3e-4 lora.r=16"
    assert variants[3].sets == ["training.learning_rate=1e-3", "lora.r=16"]
    assert [v.sets for v in expand([])] == [[]]  # no grid: the config itself


def test_section_values_read_back_as_themselves_through_set() -> None:
    values = {"model.base_model_id": ["org/model-1", "/tmp/x"], "lora.r": [8, 16],
              "lora.target_modules": [["q_proj", "v_proj"], None]}  # fmt: skip
    grid = section_grid(values)
    assert grid[0] == ("model.base_model_id", ["org/model-1", "/tmp/x"])  # plain where it can
    assert (
        set_text("true") == '"true"' and set_text("a: b") == '"a: b"' and set_text(1e-3) == "0.001"
    )
    read_back = []
    for variant in expand(grid):
        cfg = load_config(None, variant.sets)
        read_back.append((cfg.model.base_model_id, cfg.lora.r, cfg.lora.target_modules))
    # Every combination once, each value as written in the section (not a default, not a
    # neighbour's value, not a string where a list was given).
    assert sorted(map(repr, read_back)) == sorted(map(repr, itertools.product(*values.values())))


def test_command_line_replaces_a_key_of_the_file_and_adds_others() -> None:
    base = [("lora.r", ["8", "16"]), ("training.max_steps", ["10"])]
    merged = merge_grids(base, [("lora.r", ["4"]), ("training.seed", ["1", "2"])])
    assert merged == [("lora.r", ["4"]), ("training.max_steps", ["10"]),
                      ("training.seed", ["1", "2"])]  # fmt: skip


def test_repeated_values_and_set_on_a_swept_key_are_refused() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        check_grid([("lora.r", ["8", "8"])], [])
    with pytest.raises(ConfigError, match="either fixed or swept"):
        check_grid([("lora.r", ["8", "16"])], ["lora.r=4"])
    check_grid([("lora.r", ["8", "16"])], ["lora.alpha=4"])


def test_sweep_section_is_validated_with_the_config() -> None:
    cfg = load_config(None, ["sweep.grid={lora.r: [8, 16]}", "sweep.final_top_k=1"])
    assert cfg.sweep.grid == {"lora.r": [8, 16]} and cfg.sweep.eval_samples == 200
    for bad, phrase in (
        ("sweep.grid={sweep.eval_samples: [1]}", "cannot vary its own"),
        ("sweep.grid={lora.r: []}", "has no values"),
        ("sweep.eval_samples=0", "greater than 0"),
        ("sweep.final_top_k=-1", "greater than or equal"),
        ("sweep.grid=[1, 2]", "valid dictionary"),
    ):
        with pytest.raises(ConfigError, match=phrase):
            load_config(None, [bad])
    with pytest.raises(ConfigError, match="final_top_k re-evaluates"):
        load_config(None, ["sweep.eval_samples=null", "sweep.final_top_k=2"])


def _args(tmp_path: Path, grid: list[str], sets: list[str] = ()) -> argparse.Namespace:
    from utils.cli.sweep import parser

    config = tmp_path / "c.yaml"
    config.write_text("sweep:\n  grid: {training.learning_rate: [0.001, 0.002]}\n")
    argv = ["--config", str(config), *(f"--grid={g}" for g in grid)]
    return parser().parse_args(argv + [f"--set={s}" for s in sets])


def test_plan_sets_the_subset_before_the_users_flags(tmp_path: Path) -> None:
    from utils.cli.run_command import load_run_config
    from utils.cli.sweep import plan

    args = _args(tmp_path, ["lora.r=4,8"])
    planned = plan(args, load_run_config(args))
    assert [p.variant.label for p in planned][:2] == [
        "training.learning_rate=0.001 lora.r=4",
        "training.learning_rate=0.001 lora.r=8",
    ]
    assert len(planned) == 4
    assert {p.cfg.evaluation.max_samples for p in planned} == {200}
    assert {p.final_cfg.evaluation.max_samples for p in planned} == {None}
    assert planned[3].cfg.training.learning_rate == 0.002 and planned[3].cfg.lora.r == 8
    assert all(p.cfg.promotion.enabled for p in planned)  # no final_top_k: subset may promote
    # An explicit --set wins over the sweep's subset.
    args = _args(tmp_path, [], ["evaluation.max_samples=50", "sweep.final_top_k=1"])
    planned = plan(args, load_run_config(args))
    assert {p.cfg.evaluation.max_samples for p in planned} == {50}
    assert not any(p.cfg.promotion.enabled for p in planned)


def test_a_bad_variant_names_itself_before_anything_runs(tmp_path: Path) -> None:
    from utils.cli.run_command import load_run_config
    from utils.cli.sweep import plan

    args = _args(tmp_path, ["lora.r=8,-1"])
    with pytest.raises(ConfigError, match=r"sweep variant 2/4 \(.*lora.r=-1\).*lora.r"):
        plan(args, load_run_config(args))


def test_dry_run_lists_the_variants(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import run as cli

    config = tmp_path / "c.yaml"
    config.write_text("sweep: {eval_samples: 100, final_top_k: 1}\n")
    rc = cli.main(["sweep", "--config", str(config), "--grid", "lora.r=4,8", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "2 variant(s)" in out and "1/2  lora.r=4  [eval test:100" in out
    assert "then the best 1 by promotion.metric again on test:all" in out
    rc = cli.main(["sweep", "--config", str(config), "--grid", "lora.rr=4", "--dry-run"])
    assert rc == 2
    assert "did you mean 'lora.r'" in capsys.readouterr().err


def test_progress_estimates_from_the_variants_after_the_first() -> None:
    assert eta_seconds([], 3) is None
    assert eta_seconds([100.0], 2) == 200.0
    assert eta_seconds([100.0, 20.0, 40.0], 2) == 60.0  # the first filled the cache
    line = progress_line(3, 4, "lora.r=8", 125.0, [100.0, 20.0])
    assert line == "[sweep 3/4] lora.r=8 · elapsed 2m05s · ETA 40s"
    assert duration(3725) == "1h02m" and duration(59.4) == "59s"


def test_plain_run_ignores_the_sweep_section(tmp_path: Path, capsys) -> None:
    """`run.py` (no `sweep`) with a sweep section in the file: the section is read and
    validated, and the run is the file's own config, step inputs included."""
    import yaml

    import run as cli

    grid = {"lora.r": [4, 8], "training.learning_rate": [0.01]}
    plain_doc = {"lora": {"r": 32}, "training": {"learning_rate": 0.0005}}
    configs = {}
    for name, doc in {"plain": plain_doc, "swept": {**plain_doc, "sweep": {"grid": grid}}}.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        assert cli.main(["run", "--config", str(path), "--dry-run"]) == 0
        configs[name] = (yaml.safe_load(capsys.readouterr().out), load_config(path))
    (plain, plain_cfg), (swept, swept_cfg) = configs["plain"], configs["swept"]
    assert swept["sweep"]["grid"] == grid and plain["sweep"]["grid"] != grid
    assert swept["lora"]["r"] == 32 and swept["training"]["learning_rate"] == 0.0005
    assert {k: v for k, v in swept.items() if k != "sweep"} == {
        k: v for k, v in plain.items() if k != "sweep"
    }
    # No step's input carries the section (the finetune step's cache key included).
    assert swept_cfg.training_json() == plain_cfg.training_json()
    assert swept_cfg.evaluation == plain_cfg.evaluation


def test_base_evaluation_does_not_depend_on_reranking_it_does_not_use() -> None:
    """evaluate_base's parameters: a sweep over finetuned-only rerank settings keeps its
    cache key (the same section), one that reranks the base too does not."""
    a = load_config(None, ["evaluation.rerank={candidates: 4}"]).evaluation
    b = load_config(None, ["evaluation.rerank={candidates: 8, temperature: 0.5}"]).evaluation
    assert a != b and a.for_base() == b.for_base()
    assert a.for_base().rerank is None and a.rerank is not None  # the original is untouched
    both = load_config(None, ["evaluation.rerank={apply_to: both}"]).evaluation
    assert both.for_base() == both


def test_the_ladder_config_plans_its_rungs_smallest_first(capsys: pytest.CaptureFixture) -> None:
    import run as cli

    rc = cli.main(["sweep", "--config", str(ROOT / "configs" / "ladder.yaml"), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "6 variant(s)" in out
    assert "1/6  model.base_model_id=HuggingFaceTB/SmolLM2-135M-Instruct  [eval test:200" in out
    assert "then the best 1 by promotion.metric again on test:all" in out
