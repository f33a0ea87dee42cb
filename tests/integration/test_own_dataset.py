"""The own-data example (docs/data.md) end to end: a question/answer CSV with only a train split,
configs/own_data.yaml, the tiny model."""

from pathlib import Path

import pandas as pd

import run

ROOT = Path(__file__).resolve().parents[2]


def _qa_csv(folder: Path, n: int = 60) -> Path:
    folder.mkdir(parents=True)
    rows = [{"question": f"What is {i} + {i % 7}?", "answer": str(i + i % 7)} for i in range(n)]
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    return folder


def test_own_csv_with_carved_splits_runs_end_to_end(
    zenml_env: Path, tiny_model_dir: Path, capsys
) -> None:
    from zenml.client import Client

    data = _qa_csv(zenml_env / "my_data")
    argv = ["--config", str(ROOT / "configs" / "own_data.yaml"), "--data-dir", str(data)]
    for pair in (
        f"model.base_model_id={tiny_model_dir}",
        "lora.last_n_layers=2",  # the config's 15 are for SmolLM2; preflight refuses more
        "training.max_steps=2",
        "training.batch_size=4",
        "evaluation.max_samples=4",
        "evaluation.max_new_tokens=4",
    ):
        argv += ["--set", pair]
    assert run.main(argv) == 0
    assert "rougeL" in capsys.readouterr().out

    version = Client().get_model_version("my-own-data-lora", "latest")
    meta = version.run_metadata
    for key in ("base_metrics", "finetuned_metrics"):
        assert {"rougeL", "bleu", "multiref_rougeL"} <= set(meta[key])
        assert not {"ser", "slot_f1"} & set(meta[key])  # ViGGO-only metrics
    assert meta["promotion"]["metric"] == "rougeL"
    run_steps = Client().get_pipeline_run(Client().list_pipeline_runs()[0].id).steps
    prep = run_steps["prepare_data"].run_metadata
    assert prep["split_sizes"] == {"train": 48, "validation": 6, "test": 6}
    assert prep["malformed_rows"] == {"train": 0, "validation": 0, "test": 0}
    assert "single number" in prep["formatted_examples"][0]  # the configured system prompt
    preds = version.get_artifact("finetuned_predictions").load()
    assert all(p["input"].startswith("What is ") for p in preds)
