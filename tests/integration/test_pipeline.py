"""End to end on a tiny random Llama: the whole pipeline, the metadata contract, caching."""

from pathlib import Path

import pytest

from tests.conftest import tiny_config


def _run(config: dict):
    from pipelines.finetuning import build_pipeline
    from utils.config import PipelineConfig

    cfg = PipelineConfig.model_validate(config)
    return build_pipeline(cfg)(config=cfg)


def _scratch_folders() -> set[Path]:
    import tempfile

    from utils.zenml_ops.scratch import PREFIX

    return set(Path(tempfile.gettempdir()).glob(PREFIX + "*"))


def _cached_steps(run) -> set[str]:
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)
    return {name for name, s in run.steps.items() if s.status.value == "cached"}


def test_pipeline_end_to_end_contract(zenml_env: Path, tiny_model_dir, viggo_subset) -> None:
    from zenml.client import Client

    before = _scratch_folders()
    run = _run(tiny_config(tiny_model_dir, viggo_subset))
    assert run.status.value == "completed"
    # The steps' output folders were stored as artifacts, then removed from the disk.
    assert _scratch_folders() == before
    assert set(run.steps) == {
        "prepare_data",
        "finetune",
        "evaluate_base",
        "evaluate_finetuned",
        "promote",
    }
    version = Client().get_model_version("tiny-test-model", "latest")
    meta = version.run_metadata
    for key in ("base_metrics", "finetuned_metrics"):
        for m in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
            assert isinstance(meta[key][m], float) and 0.0 <= meta[key][m] <= 1.0, (key, m)
        assert meta[key]["num_rows"] == 6
    promotion = meta["promotion"]
    assert isinstance(promotion["promoted"], bool) and promotion["reason"]
    assert meta["training"]["steps"] == 2 and meta["training"]["world_size"] == 1
    assert meta["training"]["tokens_seen"] > 0
    preds = version.get_artifact("finetuned_predictions").load()
    assert len(preds) == 6
    assert all({"input", "reference", "prediction"} <= set(p) for p in preds)
    assert version.get_artifact("base_predictions") is not None
    _assert_visualizations(version, preds)
    # Data-prep metadata: split sizes and token-length statistics.
    prep = Client().get_pipeline_run(run.id).steps["prepare_data"].run_metadata
    assert prep["split_sizes"] == {"train": 40, "validation": 4, "test": 16}
    assert prep["token_lengths"]["train"]["total"]["max"] < 512
    # The data report: its counts as metadata, its page as an HTML artifact of the step.
    assert prep["data_report"]["splits"]["train"] == {"rows": 40, "distinct_inputs": 40}
    assert "faithfulness" in prep["data_report"]
    report = Client().get_pipeline_run(run.id).steps["prepare_data"].outputs["data_report"][0]
    assert b"Reference faithfulness, train" in _visualization_text(report, "html")


def _visualization_text(artifact, kind: str) -> bytes:
    from zenml.io import fileio

    vis = [v for v in artifact.visualizations if v.type.value == kind]
    assert vis, f"{artifact.name} has no {kind} visualization"
    with fileio.open(vis[0].uri, "rb") as f:
        return f.read()


def _assert_visualizations(version, preds: list[dict]) -> None:
    import html

    report = _visualization_text(version.get_artifact("finetuned_report"), "html").decode()
    for row in preds:
        assert html.escape(row["input"]) in report
        assert html.escape(row["prediction"]) in report
    assert "base" in report.lower()  # the finetuned report shows the base model's column
    png = _visualization_text(version.get_artifact("loss_curve"), "image")
    assert png.startswith(b"\x89PNG")
    base_report = _visualization_text(version.get_artifact("base_report"), "html").decode()
    assert html.escape(preds[0]["input"]) in base_report


def test_learning_rate_change_reuses_data_and_base_evaluation(
    zenml_env: Path, tiny_model_dir, viggo_subset
) -> None:
    from zenml.client import Client

    first = _run(tiny_config(tiny_model_dir, viggo_subset))
    second = _run(tiny_config(tiny_model_dir, viggo_subset, training={"learning_rate": 5e-4}))
    assert _cached_steps(first) == set()
    cached = _cached_steps(second)
    assert {"prepare_data", "evaluate_base"} <= cached
    assert not {"finetune", "evaluate_finetuned", "promote"} & cached
    # Each run is its own model version, and both carry the full metadata.
    versions = Client().list_model_versions("tiny-test-model")
    assert len(versions) == 2
    for v in versions:
        assert (
            "base_metrics" in Client().get_model_version("tiny-test-model", v.number).run_metadata
        )


def _fix_scores(monkeypatch: pytest.MonkeyPatch, scores: dict[str, float]) -> None:
    """Pin rougeL per stage (steps run in-process on the local orchestrator)."""
    import steps.evaluate as evaluate_module

    real = evaluate_module.evaluate_on_split

    def pinned(*args, **kwargs):
        metrics, records = real(*args, **kwargs)
        adapter = args[4] if len(args) > 4 else kwargs.get("adapter_dir")
        metrics["rougeL"] = scores["finetuned" if adapter is not None else "base"]
        return metrics, records

    monkeypatch.setattr(evaluate_module, "evaluate_on_split", pinned)


def test_promotion_compares_with_staging_not_itself(
    zenml_env: Path, tiny_model_dir, viggo_subset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml.client import Client
    from zenml.enums import ModelStages

    cfg = tiny_config(tiny_model_dir, viggo_subset)
    cfg["enable_cache"] = False
    staged = []
    for base, tuned, expect in (
        (0.1, 0.3, True),
        (0.1, 0.5, True),
        (0.1, 0.5, False),
        (0.1, 0.4, False),
    ):
        _fix_scores(monkeypatch, {"base": base, "finetuned": tuned})
        _run(cfg)
        version = Client().get_model_version("tiny-test-model", "latest")
        decision = version.run_metadata["promotion"]
        assert decision["promoted"] is expect, decision
        if expect:
            staged.append(version.id)
    # Run 3 ties staging (0.5 vs 0.5) and run 4 is worse: staging stays on run 2.
    assert decision["staging_before"] == pytest.approx(0.5)
    assert "staging" in decision["reason"]
    assert Client().get_model_version("tiny-test-model", ModelStages.STAGING).id == staged[-1]
    # Scores on another evaluation set are never compared, however good they look.
    cfg["evaluation"]["max_samples"] = 4
    _fix_scores(monkeypatch, {"base": 0.1, "finetuned": 0.9})
    _run(cfg)
    decision = Client().get_model_version("tiny-test-model", "latest").run_metadata["promotion"]
    assert decision["promoted"] is False and "evaluated on" in decision["reason"]
    assert Client().get_model_version("tiny-test-model", ModelStages.STAGING).id == staged[-1]


def test_text_to_mr_task_end_to_end(zenml_env: Path, tiny_model_dir, viggo_subset) -> None:
    from zenml.client import Client

    _run(
        tiny_config(
            tiny_model_dir,
            viggo_subset,
            dataset={"task": "text_to_mr"},
            promotion={"metric": "slot_f1"},
        )
    )
    meta = Client().get_model_version("tiny-test-model", "latest").run_metadata
    for key in ("base_metrics", "finetuned_metrics"):
        for m in ("exact_match", "act_accuracy", "slot_f1", "rougeL"):
            assert 0.0 <= meta[key][m] <= 1.0
    preds = (
        Client()
        .get_model_version("tiny-test-model", "latest")
        .get_artifact("finetuned_predictions")
        .load()
    )
    # The references are MRs in this direction.
    assert all(p["reference"].split("(")[0] in p["reference"] for p in preds)
    assert preds[0]["reference"].endswith(")")


def test_promote_command_moves_the_stage(zenml_env: Path, tiny_model_dir, viggo_subset) -> None:
    from zenml.client import Client
    from zenml.enums import ModelStages

    import run as cli

    _run(tiny_config(tiny_model_dir, viggo_subset))
    args = ["promote", "--model", "tiny-test-model", "--to", "production", "--version", "1"]
    assert cli.main(args) == 0
    assert Client().get_model_version("tiny-test-model", ModelStages.PRODUCTION).number == 1
    assert cli.main([*args[:-1], "7"]) == 2  # no such version: one-line error, exit 2


def test_reranked_evaluation_and_validation_are_recorded(
    zenml_env: Path, tiny_model_dir, viggo_subset
) -> None:
    from zenml.client import Client

    cfg = tiny_config(
        tiny_model_dir,
        viggo_subset,
        training={"validation_steps": 1, "validation_samples": 3, "select_best": True},
        evaluation={"rerank": {"candidates": 2}},
    )
    _run(cfg)
    meta = Client().get_model_version("tiny-test-model", "latest").run_metadata
    tuned, base = meta["finetuned_metrics"], meta["base_metrics"]
    assert tuned["decoding"] == "rerank:sample up to 2, failing inputs"
    assert base["decoding"] == "greedy"  # rerank.apply_to: finetuned
    assert tuned["ser"] <= tuned["greedy"]["ser"]
    assert tuned["rerank_inputs_resampled"] >= tuned["rerank_still_failing"]
    assert 0 < tuned["greedy_seconds"] <= tuned["generation_seconds"]
    assert [c["step"] for c in meta["training"]["validation_history"]] == [1, 2]
    assert meta["training"]["selected_step"] in (1, 2)
