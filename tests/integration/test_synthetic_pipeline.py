"""`dataset.synthetic` end to end on a tiny random model: two earlier runs' versions as
generator (data_to_text) and parser (text_to_mr), a third run whose synthesize_data step
feeds prepare_data; versions that do not exist or fit are refused before any step runs.

Tiny random models write garbage, so few or no rows are kept here; the keep path is in
tests/unit/test_synthetic.py with stand-in generators."""

from pathlib import Path

import pytest

from tests.conftest import tiny_config
from tests.integration.test_pipeline import _run

GENERATOR, PARSER = "tiny-generator", "tiny-parser"


def _synthetic(tiny_model_dir: Path, viggo_subset: Path, **synthetic: object) -> dict:
    section = {
        "generator": {"model": GENERATOR, "version": "latest"},
        "parser": {"model": PARSER, "version": "latest"},
        "rows": 6,
        **synthetic,
    }
    return tiny_config(
        tiny_model_dir, viggo_subset, dataset={"synthetic": section}, model={"name": "tiny-student"}
    )


@pytest.fixture
def sources(zenml_env: Path, tiny_model_dir, viggo_subset) -> None:
    _run(tiny_config(tiny_model_dir, viggo_subset, model={"name": GENERATOR}))
    _run(
        tiny_config(
            tiny_model_dir,
            viggo_subset,
            model={"name": PARSER},
            dataset={"task": "text_to_mr"},
            promotion={"metric": "slot_f1"},
        )
    )


# One test: the two source runs are most of its time.
def test_synthetic_rows_join_training_and_unusable_versions_are_refused_first(
    sources, tiny_model_dir, viggo_subset, tmp_path: Path, capsys
) -> None:
    import yaml
    from zenml.client import Client

    import run as cli

    refused = {
        f"dataset.synthetic.generator: model '{GENERATOR}' has no version '7'": {
            "generator": {"model": GENERATOR, "version": "7"}
        },
        f"dataset.synthetic.parser: model version {GENERATOR}:1 was trained for data_to_text, "
        "a parser must be a text_to_mr version": {
            "parser": {"model": GENERATOR, "version": "latest"}
        },
    }
    runs = len(Client().list_pipeline_runs(size=50))
    for message, synthetic in refused.items():
        config = tmp_path / "synthetic.yaml"
        config.write_text(yaml.safe_dump(_synthetic(tiny_model_dir, viggo_subset, **synthetic)))
        assert cli.main(["--config", str(config)]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    assert len(Client().list_pipeline_runs(size=50)) == runs  # refused before any run

    run = Client().get_pipeline_run(_run(_synthetic(tiny_model_dir, viggo_subset)).id)
    assert run.status.value == "completed"
    assert list(run.steps)[:2] == ["synthesize_data", "prepare_data"]
    summary = run.steps["synthesize_data"].run_metadata["synthetic"]
    assert summary["composed"] == 6 and summary["generator"] == f"{GENERATOR}:1"
    outcomes = ("kept", "rejected_by_checker", "rejected_by_round_trip")
    assert sum(summary[k] for k in outcomes) == 6
    prep = run.steps["prepare_data"].run_metadata
    assert prep["split_sizes"]["train"] == 40 + summary["kept"]
    assert prep["split_sizes"]["test"] == 16 and prep["data_report"]["synthetic"]["composed"] == 6
    rows = run.steps["synthesize_data"].outputs["synthetic_data"][0].load()
    assert rows["summary"]["parser"] == f"{PARSER}:1" and len(rows["rows"]) == summary["kept"]
