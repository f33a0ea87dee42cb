import re
from pathlib import Path

import pytest

from utils.config import ConfigError, PipelineConfig, load_config, parse_override

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, PipelineConfig)


def test_default_config_is_the_offline_cpu_model() -> None:
    cfg = load_config(ROOT / "configs" / "smollm2_cpu.yaml")
    assert cfg.model.base_model_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert cfg.model.quantization == "none"
    assert cfg.dataset.task == "data_to_text"
    # The upstream project scored 50 test rows; every config here scores the whole split.
    assert cfg.evaluation.max_samples is None


def test_llama3_config_is_4bit() -> None:
    cfg = load_config(ROOT / "configs" / "llama3.yaml")
    assert cfg.model.base_model_id == "meta-llama/Llama-3.1-8B-Instruct"
    assert cfg.model.quantization == "4bit"
    assert cfg.evaluation.max_samples is None


def test_contract_keys_exist() -> None:
    cfg = PipelineConfig()
    for dotted in (
        "model.base_model_id",
        "model.quantization",
        "dataset.name",
        "dataset.data_dir",
        "dataset.task",
        "training.max_steps",
        "training.learning_rate",
        "evaluation.max_samples",
        "promotion.metric",
    ):
        section, key = dotted.split(".")
        assert hasattr(getattr(cfg, section), key), dotted


def test_unknown_key_is_named_with_suggestion(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"training\.learning_rat.*training\.learning_rate"):
        load_config(p)


def test_unknown_top_level_section(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("trainig:\n  max_steps: 3\n")
    with pytest.raises(ConfigError, match="'trainig'"):
        load_config(p)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("training.max_steps=abc", "training.max_steps"),
        ("training.max_steps=0", "training.max_steps"),
        ("training.learning_rate=-1", "training.learning_rate"),
        ("model.quantization=3bit", "model.quantization"),
        ("dataset.task=summarize", "dataset.task"),
        ("evaluation.max_samples=0", "evaluation.max_samples"),
        ("lora.r=0", "lora.r"),
    ],
)
def test_bad_overrides_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_overrides_are_typed_like_yaml() -> None:
    cfg = load_config(
        None,
        [
            "training.max_steps=7",
            "training.learning_rate=3e-4",
            "evaluation.max_samples=null",
            "model.quantization=8bit",
            "lora.target_modules=[q_proj, v_proj]",
        ],
    )
    assert cfg.training.max_steps == 7
    assert cfg.training.learning_rate == pytest.approx(3e-4)
    assert cfg.evaluation.max_samples is None
    assert cfg.model.quantization == "8bit"
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]


def test_data_dir_argument_wins(tmp_path: Path) -> None:
    cfg = load_config(None, ["dataset.data_dir=/elsewhere"], data_dir=str(tmp_path))
    assert cfg.dataset.data_dir == str(tmp_path)


def test_unknown_promotion_metric() -> None:
    with pytest.raises(ConfigError, match="promotion"):
        load_config(None, ["promotion.metric=accuracy"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "training:\n  max_steps: 5\nlora:\n  r: 8\ntraining:\n  learning_rate: 0.001\n",
            "duplicate key 'training' (first at line 1) at line 5, column 1",
        ),
        ("lora:\n  r: 8\n  alpha: 4\n  r: 16\n", "duplicate key 'r' (first at line 2) at line 4"),
        ("lora: {r: 8, r: 16}\n", "duplicate key 'r' (first at line 1) at line 1"),
    ],
)
def test_duplicate_yaml_keys_are_refused_naming_key_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_yaml_merge_keys_still_override(tmp_path: Path) -> None:
    """`<<: *anchor` then an explicit key is not a duplicate: explicit keys win by design."""
    from utils.config.loading import read_yaml

    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {r: 8, alpha: 16}\nlora:\n  <<: *b\n  r: 4\n")
    assert read_yaml(path)["lora"] == {"r": 4, "alpha": 16}


def test_override_syntax() -> None:
    assert parse_override("a.b=1") == (["a", "b"], 1)
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_json_round_trip() -> None:
    cfg = load_config(None, ["training.max_steps=9"])
    assert PipelineConfig.from_json(cfg.to_json()) == cfg
