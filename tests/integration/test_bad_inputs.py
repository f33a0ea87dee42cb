"""Bad input never becomes a traceback: exit code 2, one last line naming the file, key or
value and what would be valid, and no model version (nor run) in the store."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import run


@dataclass
class Ctx:
    tmp: Path
    config: Path  # a valid config: tiny model, small ViGGO copy
    data: Path
    model: Path

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    def yaml(self, **sections: dict) -> Path:
        data = yaml.safe_load(self.config.read_text())
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        return self.write("edited.yaml", yaml.safe_dump(data))

    def data_copy(self, edit: Callable[[Path], None]) -> Path:
        out = self.tmp / "data-edited"
        shutil.copytree(self.data, out)
        edit(out)
        return out

    def model_copy(self, keep: Callable[[str], bool]) -> Path:
        out = self.tmp / "model-edited"
        out.mkdir()
        for f in self.model.iterdir():
            if keep(f.name):
                shutil.copy(f, out / f.name)
        return out


def _rewrite(split: str, edit: Callable[[list[dict]], list[dict]]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / f"{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))

    return apply


def _break_mrs(rows: list[dict]) -> list[dict]:
    return [dict(r, meaning_representation="name[X]") if i < 5 else r for i, r in enumerate(rows)]


def _pickle_only(ctx: Ctx) -> Path:
    out = ctx.model_copy(lambda name: not name.endswith(".safetensors"))
    (out / "pytorch_model.bin").write_bytes(b"not really a pickle")
    return out


def _corrupt_parquet(folder: Path) -> None:
    (folder / "test.jsonl").unlink()
    (folder / "test.parquet").write_bytes(b"PAR1 but not really")


def _template_renders_nothing(ctx: Ctx) -> Path:
    """The model folder with a chat template that renders no conversation at all (one that
    only refuses a system role, like Gemma's, is fine: the system prompt joins the user
    turn)."""
    out = ctx.model_copy(lambda name: name != "chat_template.jinja")
    (out / "chat_template.jinja").write_text(
        "{{ raise_exception('This template only renders tool calls') }}"
    )
    return out


def _set(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


# (id, argv for run.main given the context, phrase the last line must contain)
CASES: list[tuple[str, Callable[[Ctx], list[str]], str]] = [
    ("typo-in-yaml", lambda c: ["--config", str(c.yaml(training={"lerning_rate": 0.1}))],
     "unknown key 'training.lerning_rate' (did you mean 'training.learning_rate'?)"),
    ("unknown-section", lambda c: _set("trainig.max_steps=3"), "unknown key 'trainig'"),
    ("wrong-type", lambda c: _set("training.max_steps=abc"),
     "training.max_steps: Input should be a valid integer"),
    ("fractional-steps", lambda c: _set("training.max_steps=2.5"), "training.max_steps"),
    ("negative-lr", lambda c: _set("training.learning_rate=-1e-4"),
     "training.learning_rate: Input should be greater than 0"),
    ("nan-lr", lambda c: _set("training.learning_rate=.nan"),
     "training.learning_rate: Input should be a finite number"),
    ("zero-steps", lambda c: _set("training.max_steps=0"),
     "training.max_steps: Input should be greater than 0"),
    ("zero-rank", lambda c: _set("lora.r=0"), "lora.r: Input should be greater than 0"),
    ("zero-eval-samples", lambda c: _set("evaluation.max_samples=0"),
     "evaluation.max_samples: Input should be greater than 0"),
    ("zero-train-samples", lambda c: _set("dataset.max_train_samples=0"),
     "dataset.max_train_samples: Input should be greater than 0"),
    ("unknown-quantization", lambda c: _set("model.quantization=3bit"),
     "model.quantization: Input should be 'none', '4bit' or '8bit'"),
    ("unknown-task", lambda c: _set("dataset.task=summarize"), "dataset.task: Input should be"),
    ("metric-not-for-task", lambda c: _set("dataset.task=text_to_mr", "promotion.metric=bleu"),
     "promotion.metric 'bleu' is not computed for task 'text_to_mr'; valid:"),
    ("bad-split-ratio", lambda c: _set("dataset.split_ratio={validation: 0.5, test: 0.5}"),
     "validation + test must be below 1"),
    ("bad-malformed-fraction", lambda c: _set("dataset.max_malformed_fraction=2"),
     "dataset.max_malformed_fraction: Input should be less than or equal to 1"),
    ("unknown-augmentation", lambda c: _set("dataset.augment=[substitute, shuffle]"),
     "dataset.augment: unknown augmentation 'shuffle'; valid: substitute, permute"),
    ("zero-augment-factor", lambda c: _set("dataset.augment_factor=0"),
     "dataset.augment_factor: Input should be greater than 0"),
    ("zero-train-fraction", lambda c: _set("dataset.train_fraction=0"),
     "dataset.train_fraction: Input should be greater than 0"),
    ("columns-typo", lambda c: _set("dataset.columns={input: a, target: b, refs: c}"),
     "unknown key 'dataset.columns.refs' (did you mean 'dataset.columns.references'?)"),
    ("zero-processes", lambda c: ["--num-processes", "0"], "accelerate.num_processes"),
    ("set-without-value", lambda c: ["--set", "training.max_steps"],
     "expected dotted.key=value"),
    ("missing-config", lambda c: ["--config", str(c.tmp / "nope.yaml")],
     "config file not found"),
    ("unreadable-config", lambda c: ["--config", str(c.write("bin.yaml", b"\xff\xfe\x00"))],
     "cannot read config file"),
    ("invalid-yaml", lambda c: ["--config", str(c.write("bad.yaml", "model: [unclosed\n"))],
     "is not valid YAML"),
    ("duplicate-yaml-section", lambda c: ["--config", str(c.write(
        "twice.yaml", c.config.read_text() + "training:\n  max_steps: 3\n"))],
     "duplicate key 'training' (first at line"),
    ("yaml-not-a-mapping", lambda c: ["--config", str(c.write("list.yaml", "- a\n- b\n"))],
     "must hold a mapping, got list"),
    ("no-hub-no-data-dir", lambda c: _set("dataset.data_dir=null", "dataset.source=hub"),
     "pass --data-dir PATH, or use dataset.source: embedded"),
    ("embedded-is-viggo-only", lambda c: _set("dataset.data_dir=null", "dataset.name=org/other"),
     "dataset.name is 'org/other' but dataset.source is 'embedded'"),
    ("missing-data-dir", lambda c: ["--data-dir", str(c.tmp / "nowhere")], "data dir not found"),
    ("data-dir-is-a-file", lambda c: ["--data-dir", str(c.write("file", "x"))],
     "data dir is a file, not a folder"),
    ("missing-split", lambda c: ["--data-dir", str(c.data_copy(
        lambda d: (d / "validation.jsonl").unlink()))],
     "has no 'validation' split: expected one of validation.jsonl"),
    ("empty-split", lambda c: ["--data-dir", str(c.data_copy(
        lambda d: (d / "test.jsonl").write_text("")))],
     "is empty: every split needs at least one row"),
    ("unreadable-split", lambda c: ["--data-dir", str(c.data_copy(_corrupt_parquet))],
     "cannot read"),
    ("wrong-columns", lambda c: ["--data-dir", str(c.data_copy(_rewrite(
        "train", lambda rows: [{"mr_text": r["meaning_representation"]} for r in rows])))],
     "lacks column(s) ['meaning_representation', 'target']; found columns ['mr_text']"),
    ("malformed-mrs", lambda c: ["--data-dir", str(c.data_copy(_rewrite("train", _break_mrs)))],
     "5 of 40 rows are malformed (12.5%, more than dataset.max_malformed_fraction=0.01)"),
    ("split-ratio-too-small", lambda c: ["--data-dir", str(c.data_copy(
        lambda d: (d / "test.jsonl").unlink())), *_set("dataset.split_ratio={test: 0.01}")],
     "dataset.split_ratio.test=0.01 of 40 train rows"),
    ("unknown-model-offline", lambda c: _set("model.base_model_id=no-such-org/no-such-model"),
     "tried: local folder 'no-such-org/no-such-model' (not found); Hugging Face hub "
     "(unreachable)"),
    ("model-dir-without-config", lambda c: _set("model.base_model_id=" + str(c.model_copy(
        lambda name: name != "config.json"))), "has no config.json"),
    ("pickle-only-model", lambda c: _set(f"model.base_model_id={_pickle_only(c)}"),
     "or set model.allow_pickle_weights: true"),
    ("unknown-lora-target", lambda c: _set("lora.target_modules=[q_proj, nonexistent]"),
     "lora.target_modules: 'nonexistent' is not a linear layer of LlamaForCausalLM; valid: "
     "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"),
    ("lora-beyond-the-layers", lambda c: _set("lora.last_n_layers=3"),
     "lora.last_n_layers=3 but LlamaForCausalLM has 2 layers (num_hidden_layers)"),
    ("template-renders-nothing",
     lambda c: _set(f"model.base_model_id={_template_renders_nothing(c)}"),
     "its chat template cannot render the prompt (a user turn, with or without a system "
     "turn): This template only renders tool calls"),
    ("flash-attention-without-gpu", lambda c: _set("model.attn_implementation=flash_attention_2"),
     "model.attn_implementation=flash_attention_2 needs a CUDA GPU, and this machine has cpu"),
    ("resume-without-checkpoint", lambda c: ["--resume"],
     "training.resume=always (--resume) but there is no complete checkpoint for this config"),
    ("unknown-flag", lambda c: ["--lerning-rate", "1"], "unrecognized arguments: --lerning-rate"),
]  # fmt: skip


@pytest.fixture(scope="module")
def good_config(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir, viggo_subset) -> Path:
    from tests.conftest import tiny_config

    cfg = tiny_config(tiny_model_dir, viggo_subset, model={"name": "bad-input-model"})
    path = tmp_path_factory.mktemp("good") / "good.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _main(argv: list[str]) -> int:
    try:
        return run.main(argv)
    except SystemExit as e:  # argparse's own errors
        return int(e.code)


@pytest.mark.parametrize(("build", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_clear_line(
    zenml_env: Path, good_config: Path, tiny_model_dir, viggo_subset, build, phrase, capsys
) -> None:
    from zenml.client import Client

    ctx = Ctx(zenml_env, good_config, viggo_subset, tiny_model_dir)
    argv = build(ctx)
    if "--config" not in argv:
        argv = ["--config", str(good_config), *argv]
    assert _main(argv) == 2
    captured = capsys.readouterr()
    last = captured.err.strip().splitlines()[-1]
    assert "error: " in last and phrase in last, last
    assert "Traceback" not in captured.err + captured.out
    assert Client().list_models().total == 0
    assert Client().list_pipeline_runs().total == 0


def test_debug_shows_the_traceback(zenml_env: Path, good_config: Path) -> None:
    from utils.config import ConfigError

    with pytest.raises(ConfigError, match=r"training\.max_steps"):
        run.main(["--config", str(good_config), "--debug", *_set("training.max_steps=0")])


def test_4bit_layer_too_small_for_this_cpu_exits_2_before_any_step(
    zenml_env: Path, good_config: Path, smollm2_dir: Path, monkeypatch, capsys
) -> None:
    """On CPUs whose bitsandbytes kernels repack 4-bit weights (AVX512-BF16), a model with a
    layer narrower than the quantization block is refused before a run or version exists."""
    from zenml.client import Client

    import utils.modeling.quantization as quantization
    from tests.fixtures.tiny_model import build_tiny_llama

    monkeypatch.setattr(quantization, "bnb_repacks_4bit_on_cpu", lambda: True)
    narrow = build_tiny_llama(smollm2_dir, zenml_env / "narrow", hidden_size=32)
    capsys.readouterr()  # the builder's progress bars
    argv = ["--config", str(good_config), "--set", f"model.base_model_id={narrow}"]
    assert _main([*argv, "--set", "model.quantization=4bit"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "model.quantization=4bit cannot run on this CPU" in err[0]
    assert "q_proj (32 -> 32)" in err[0]
    assert Client().list_models().total == 0
    assert Client().list_pipeline_runs().total == 0


def test_misspelled_lora_target_exits_2_with_one_line_before_any_step(
    zenml_env: Path, good_config: Path, capsys
) -> None:
    """It used to fail inside finetune, with a traceback, after prepare_data had run."""
    from zenml.client import Client

    argv = ["--config", str(good_config), *_set("lora.target_modules=[q_proj,nonexistent]")]
    assert _main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: lora.target_modules: 'nonexistent'"), err
    assert Client().list_pipeline_runs().total == 0
    assert Client().list_models().total == 0
