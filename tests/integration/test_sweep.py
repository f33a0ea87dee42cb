"""`run.py sweep` and `run.py compare` on a tiny random Llama: three variants, one failing
inside its finetune step, the shared steps served from ZenML's cache."""

import json
from pathlib import Path

import pytest

from tests.conftest import tiny_config

MODEL = "tiny-test-model"
FAILING_LR = 0.5


def _write_config(folder: Path, config: dict) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _fail_at(monkeypatch: pytest.MonkeyPatch, lr: float) -> None:
    """The finetune step raises for one learning rate (steps run in this process)."""
    import steps.finetune as finetune_module

    real = finetune_module.train_lora

    def train_or_fail(cfg, *args, **kwargs):
        if cfg.training.learning_rate == lr:
            raise RuntimeError("deliberate failure of this variant")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "train_lora", train_or_fail)


def _step_statuses(step: str) -> list[str]:
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate

    statuses = []
    for run in depaginate(Client().list_pipeline_runs):
        steps = Client().get_pipeline_run(run.id).steps
        if step in steps:
            statuses.append(steps[step].status.value)
    return statuses


def test_sweep_of_three_one_failing_then_compare(
    zenml_env: Path, tiny_model_dir, viggo_subset, monkeypatch, capsys
) -> None:
    from zenml.client import Client

    import run as cli

    config = tiny_config(tiny_model_dir, viggo_subset, sweep={"eval_samples": 5})
    path = _write_config(zenml_env, config)
    _fail_at(monkeypatch, FAILING_LR)
    grid = f"training.learning_rate=1e-3,{FAILING_LR},5e-4"
    assert cli.main(["sweep", "--config", str(path), "--grid", grid]) == 1
    out, err = capsys.readouterr()
    # Progress per variant, the failure reported with its variant, and the others ran on.
    for i in (1, 2, 3):
        assert f"[sweep {i}/3]" in out
    failure = "2 (training.learning_rate=0.5): step finetune: RuntimeError: deliberate failure"
    assert f"1 of 3 failed: {failure}" in err
    assert "[sweep 2/3] FAILED: step finetune: RuntimeError: deliberate" in err

    versions = Client().list_model_versions(MODEL, hydrate=True)
    assert len(versions) == 3
    meta = {v.number: Client().get_model_version(MODEL, v.number).run_metadata for v in versions}
    lrs = {n: m["sweep_overrides"]["training.learning_rate"] for n, m in meta.items()}
    assert sorted(lrs.values()) == [5e-4, 1e-3, FAILING_LR]
    status = {n: m["sweep"]["status"] for n, m in meta.items()}
    assert sorted(status.values()) == ["completed", "completed", "failed"]
    sweep_id = {m["sweep"]["id"] for m in meta.values()}
    assert len(sweep_id) == 1
    tags = {t.name for v in versions for t in v.tags}
    assert f"sweep:{sweep_id.pop()}" in tags and "training.learning_rate=5e-4" in tags
    # Every variant is scored on the sweep's seeded subset.
    ok = [n for n, s in status.items() if s == "completed"]
    assert {meta[n]["finetuned_metrics"]["eval_set"] for n in ok} == {"test:5"}
    assert all(meta[n]["promotion"]["metric"] == "rougeL" for n in ok)

    # prepare_data and evaluate_base executed once; every other variant got them cached.
    prepare, base = _step_statuses("prepare_data"), _step_statuses("evaluate_base")
    assert prepare.count("completed") == 1 and prepare.count("cached") == 2, prepare
    assert base.count("completed") == 1 and base.count("cached") >= 1, base
    assert "prepare_data ran 1x, cached 2x" in out

    # compare: exactly the evaluated versions, best rougeL first, in one eval-set group.
    assert cli.main(["compare", "--model", MODEL, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    (group,) = json.loads(out)
    assert group["eval_set"] == "test:5" and group["metric"] == "rougeL"
    listed = [r["version"] for r in group["rows"]]
    assert sorted(listed) == sorted(ok)
    scores = [meta[n]["finetuned_metrics"]["rougeL"] for n in listed]
    assert scores == sorted(scores, reverse=True)
    assert [r["rougeL"] for r in group["rows"]] == scores
    assert all(set(r["overrides"]) == {"training.learning_rate"} for r in group["rows"])
    assert "not ranked" in err  # the failed version is named, apart from the data

    # The sweep stored its leaderboard and pinned page and scatter to the model.
    pinned = {v.display_name for v in Client().get_model(MODEL).visualizations}
    assert {"leaderboard", "leaderboard_plot"} <= pinned


def _pin_scores(monkeypatch: pytest.MonkeyPatch, base: float, finetuned: float) -> None:
    """rougeL per stage, so that every finetuned model beats its base (and would promote)."""
    import steps.evaluate as evaluate_module

    real = evaluate_module.evaluate_on_split

    def pinned(*args, **kwargs):
        metrics, records = real(*args, **kwargs)
        adapter = args[4] if len(args) > 4 else kwargs.get("adapter_dir")
        metrics["rougeL"] = finetuned if adapter is not None else base
        return metrics, records

    monkeypatch.setattr(evaluate_module, "evaluate_on_split", pinned)


def test_final_top_k_reevaluates_the_best_on_the_full_split(
    zenml_env: Path, tiny_model_dir, viggo_subset, monkeypatch, capsys
) -> None:
    """The best variant runs again on the config's own evaluation set, its finetune from the
    cache; subset scores never take `staging`, the full-set one does."""
    from zenml.client import Client

    import run as cli

    _pin_scores(monkeypatch, base=0.1, finetuned=0.5)

    config = tiny_config(tiny_model_dir, viggo_subset, sweep={"eval_samples": 4, "final_top_k": 1})
    path = _write_config(zenml_env, config)
    args = ["sweep", "--config", str(path), "--grid", "lora.r=2,4"]
    assert cli.main(args) == 0
    out, _ = capsys.readouterr()
    assert "[sweep 3/3]" in out and "(final evaluation)" in out
    versions = {v.name: Client().get_model_version(MODEL, v.number) for v in
                Client().list_model_versions(MODEL, hydrate=True)}  # fmt: skip
    assert len(versions) == 3
    final = [v for name, v in versions.items() if name.endswith("-final")]
    (final,) = final
    meta = final.run_metadata
    assert meta["finetuned_metrics"]["eval_set"] == "test:6"  # the config's own set
    assert meta["sweep"]["phase"] == "final"
    assert meta["promotion"]["promoted"] is True
    assert Client().get_model_version(MODEL, "staging").id == final.id
    for name, v in versions.items():
        if not name.endswith("-final"):
            assert v.run_metadata["finetuned_metrics"]["eval_set"] == "test:4"
            promotion = v.run_metadata["promotion"]
            assert promotion["promoted"] is False
            assert "promotion.enabled is false (would have: " in promotion["reason"]
    finetunes = _step_statuses("finetune")
    assert finetunes.count("completed") == 2 and finetunes.count("cached") == 1, finetunes
