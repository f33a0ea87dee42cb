"""A short real run on SmolLM2-135M-Instruct through `run.main()` on the default (embedded)
data, like HF's run_clm test."""

from pathlib import Path

import run


def test_run_main_on_the_real_small_model(zenml_env: Path, smollm2_dir, capsys) -> None:
    from zenml.client import Client

    rc = run.main(
        [
            "--set",
            "training.max_steps=2",
            "--set",
            "training.batch_size=4",
            "--set",
            "dataset.max_validation_samples=4",
            "--set",
            "evaluation.max_samples=4",
            "--set",
            "evaluation.max_new_tokens=24",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "rougeL" in out and "promotion:" in out
    version = Client().get_model_version("viggo-smollm2-135m-lora", "latest")
    meta = version.run_metadata
    assert meta["training"]["steps"] == 2
    assert meta["base_metrics"]["num_rows"] == meta["finetuned_metrics"]["num_rows"] == 4
    preds = version.get_artifact("finetuned_predictions").load()
    # A real instruct model writes real words, not an empty string.
    assert all(p["prediction"].strip() for p in preds)


def test_dry_run_prints_resolved_config(capsys) -> None:
    assert run.main(["--dry-run", "--set", "training.max_steps=3"]) == 0
    out = capsys.readouterr().out
    assert "max_steps: 3" in out and "base_model_id: HuggingFaceTB/SmolLM2-135M-Instruct" in out


def test_bad_key_exits_2_with_one_line(capsys) -> None:
    assert run.main(["--dry-run", "--set", "training.lerning_rate=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training.learning_rate" in err[0]


def test_no_hub_no_data_dir_says_pass_data_dir(monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from utils.modeling.hub import hub_reachable

    hub_reachable.cache_clear()
    # The embedded files need no hub; the hub source without it stops before any step.
    assert run.main(["--set", "dataset.source=hub", "--set", "dataset.data_dir=null"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data-dir" in err[-1]
