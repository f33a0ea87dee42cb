"""The model families users bring (Llama 3, Qwen2.5, Qwen3, Mistral, Gemma 2, Phi-3), each a
tiny random model with its family's chat template (tests/fixtures/families.py): prompts and
loss masking, Qwen3's thinking switch, the decoding engines, prefix sharing, a finetune,
export and serving, in float32 and bfloat16; and the fast paths that sliding-window caches
turn off say so."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import tiny_config
from tests.fixtures.families import FAMILIES, build_family_model
from utils.config import DatasetSection, ModelSource, PipelineConfig
from utils.core.names import ENGINE
from utils.data.prompts import (
    IGNORE_INDEX,
    build_prompt,
    encode_example,
    encode_prompt,
    system_prompt_for,
)
from utils.inference.transformers_engine import generate
from utils.modeling.loader import load_model, load_tokenizer
from utils.modeling.precision import precision_for

NAMES = list(FAMILIES)
DTYPES = ["float32", "bfloat16"]
# Every family in both dtypes (a finetune costs ~3 s on 2 free cores: 6 steps on 4 rows).
TRAINED = [(name, dtype) for name in NAMES for dtype in DTYPES]
SYSTEM = system_prompt_for("data_to_text")
MR = "inform(name[Dirt: Showdown], release_year[2012], esrb[E 10+ (for Everyone 10 and Older)])"
SENTENCE = "Dirt: Showdown is a 2012 game rated E 10+."
MRS = [
    MR,
    "request(specifier[fun], has_multiplayer[yes])",
    "inform(name[Tetris], genres[puzzle])",
    "give_opinion(name[Portal 2], rating[excellent], genres[puzzle, platformer])",
    "verify_attribute(name[Dirt: Showdown], rating[average])",
    "confirm(name[Little Big Adventure], platforms[PlayStation])",
]
CACHE_LOG = "utils.modeling.kv_cache"
TRAINER_LOG = "utils.training.trainer"


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: build_family_model(f, smollm2_dir, root / name) for name, f in FAMILIES.items()}


@pytest.fixture(scope="module")
def tokenizers(family_dirs: dict[str, Path]) -> dict[str, Any]:
    return {name: load_tokenizer(str(d)) for name, d in family_dirs.items()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, family_dirs, tokenizers, viggo_subset) -> dict[str, Path]:
    """Each family's prepared ViGGO subset (prompts built with its template). Four train
    rows, one batch: every finetune step sees the same rows, so their loss must fall."""
    from utils.data.prepare import prepare_dataset

    out = {}
    for name in NAMES:
        folder = tmp_path_factory.mktemp(f"prepared-{name}")
        cfg = DatasetSection(
            data_dir=str(viggo_subset), max_train_samples=4, max_validation_samples=4
        )
        prepare_dataset(cfg, tokenizers[name], folder)
        out[name] = folder
    return out


def _load(model_dir: Path, dtype: str, std: float | None = None):
    """(model, tokenizer) through the project's loader on the CPU, with weights redrawn at
    `std` (seeded) where given: default init makes a random model print one token whatever
    the prompt."""
    source = ModelSource(base_model_id=str(model_dir), dtype=dtype)
    model, tok = load_model(
        source, padding_side="left", precision=precision_for(source, device="cpu")
    )
    if std is not None:
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0.0, std)
    return model, tok


def _fallback_lines(caplog: pytest.LogCaptureFixture, logger: str = CACHE_LOG) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


# --- prompts and masking (the tokenizer alone; the same in every dtype) ---


@pytest.mark.parametrize("name", NAMES)
def test_prompt_carries_the_system_prompt_and_masks_all_but_the_answer(
    name: str, tokenizers, prepared
) -> None:
    """Templates without a system role (Gemma raises, old Mistral raises on the role order)
    get the system prompt at the start of the user turn; the others a system turn. Only the
    answer and its EOS are labelled, and the evaluation prompt is the training one."""
    family, tok = FAMILIES[name], tokenizers[name]
    prompt = build_prompt(tok, MR, SYSTEM)
    assert prompt.count(SYSTEM) == 1 and prompt.count(MR) == 1
    if family.takes_system:
        system_turn = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": MR}]
        assert prompt == tok.apply_chat_template(
            system_turn, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
    else:
        assert f"{SYSTEM}\n\n{MR}" in prompt
    assert build_prompt(tok, MR, SYSTEM) == prompt  # deterministic

    ex = encode_example(tok, MR, SENTENCE, SYSTEM, max_length=512)
    prompt_ids = encode_prompt(tok, prompt)
    n = len(prompt_ids)
    assert ex["input_ids"][:n] == prompt_ids
    assert ex["labels"][:n] == [IGNORE_INDEX] * n
    assert IGNORE_INDEX not in ex["labels"][n:]
    assert ex["labels"][-1] == ex["input_ids"][-1] == tok.convert_tokens_to_ids(family.eos)
    answer = [t for t in ex["labels"] if t != IGNORE_INDEX]
    assert tok.decode(answer, skip_special_tokens=True) == SENTENCE
    if family.bos is not None:  # the template writes BOS; encoding adds no second one
        assert prompt_ids[:2].count(tok.convert_tokens_to_ids(family.bos)) == 1

    from utils.data.jsonl import read_jsonl

    for row in read_jsonl(prepared[name] / "train.jsonl")[:3]:
        row_prompt = build_prompt(tok, row["input"], SYSTEM)
        assert row["prompt"] == row_prompt
        assert row["input_ids"][: len(encode_prompt(tok, row_prompt))] == encode_prompt(
            tok, row_prompt
        )
    for row in read_jsonl(prepared[name] / "test.jsonl")[:3]:
        assert row["prompt"] == build_prompt(tok, row["input"], SYSTEM)


def test_preflight_accepts_every_family_template(family_dirs, viggo_subset) -> None:
    """Templates without a system role are no bad input any more: the run goes ahead."""
    from utils.cli.preflight import check_prompt_renders

    for folder in family_dirs.values():
        cfg = PipelineConfig.model_validate(tiny_config(folder, viggo_subset))
        check_prompt_renders(str(folder), cfg, None, MR)  # raises ModelLoadError if refused


def test_a_template_that_drops_the_system_turn_gets_it_in_the_user_turn(tokenizers) -> None:
    from utils.modeling.loader import load_tokenizer

    tok = load_tokenizer(tokenizers["qwen2.5"].name_or_path)
    tok.chat_template = (  # renders user and assistant turns only, silently
        "{% for m in messages %}{% if m['role'] != 'system' %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
        "{% endif %}{% endfor %}{{ '<|im_start|>assistant\\n' }}"
    )
    assert build_prompt(tok, MR, "SYS") == (
        f"<|im_start|>user\nSYS\n\n{MR}<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_template_broken_for_every_turn_still_fails(tokenizers) -> None:
    from jinja2.exceptions import TemplateError

    from utils.modeling.loader import load_tokenizer

    tok = load_tokenizer(tokenizers["qwen2.5"].name_or_path)
    tok.chat_template = "{{ raise_exception('this template is broken') }}"
    with pytest.raises(TemplateError, match="broken"):
        build_prompt(tok, MR, "SYS")


@pytest.mark.parametrize("name", NAMES)
def test_thinking_is_off_unless_asked_for_and_other_templates_ignore_it(
    name: str, tokenizers, viggo_subset, tmp_path
) -> None:
    """Qwen3 thinks unless told not to: with the newline stop its answer would be the
    <think> line. Off by default, through data preparation (hence evaluation) as well."""
    tok = tokenizers[name]
    off, on = build_prompt(tok, MR, SYSTEM), build_prompt(tok, MR, SYSTEM, enable_thinking=True)
    if name == "qwen3":
        assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        assert on.endswith("<|im_start|>assistant\n")
        from utils.data.jsonl import read_jsonl
        from utils.data.prepare import prepare_dataset

        for thinking in (False, True):
            cfg = DatasetSection(
                data_dir=str(viggo_subset), max_validation_samples=2, enable_thinking=thinking
            )
            folder = tmp_path / str(thinking)
            prepare_dataset(cfg, tok, folder)
            for split in ("train", "test"):
                row = read_jsonl(folder / f"{split}.jsonl")[0]
                assert row["prompt"].endswith("<think>\n\n</think>\n\n") is not thinking
    else:
        assert off == on
    assert DatasetSection().enable_thinking is False


# --- the KV cache and the fast paths it allows ---


@pytest.mark.parametrize("name", NAMES)
def test_cache_kind_is_found_and_named(name: str, family_dirs) -> None:
    from transformers import AutoConfig

    from utils.modeling.kv_cache import plain_cache_problem

    class Stub:
        config = AutoConfig.from_pretrained(family_dirs[name])

    assert plain_cache_problem(Stub()) == FAMILIES[name].cache_problem


def test_an_unexpected_cache_error_surfaces(monkeypatch, caplog) -> None:
    """Any error but the ones a config legitimately causes is a bug, and must not pass for
    "not plain" (a silent slow path): it is raised. A config DynamicCache cannot read (an
    unknown layer type: KeyError) is a reason to fall back, logged at WARNING."""
    import transformers
    from transformers import LlamaConfig

    from utils.modeling import kv_cache

    class Stub:
        config = LlamaConfig(num_hidden_layers=1, hidden_size=16, num_attention_heads=2)

    def bug(config=None):
        raise RuntimeError("a bug in the cache")

    def unknown_layer(config=None):
        raise KeyError("mamba")

    monkeypatch.setattr(transformers, "DynamicCache", bug)
    with pytest.raises(RuntimeError, match="a bug in the cache"):
        kv_cache.supports_plain_cache(Stub())
    monkeypatch.setattr(transformers, "DynamicCache", unknown_layer)
    with caplog.at_level(logging.WARNING, logger=CACHE_LOG):
        assert kv_cache.supports_plain_cache(Stub()) is False
    assert any(r.levelno == logging.WARNING and "mamba" in r.getMessage() for r in caplog.records)
    assert kv_cache.plain_cache_problem(Stub()) == "cache config unreadable (KeyError)"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_continuous_engine_equals_generate_or_says_it_fell_back(
    name: str, dtype: str, family_dirs, caplog
) -> None:
    family = FAMILIES[name]
    model, tok = _load(family_dirs[name], dtype, family.varied_std)
    prompts = [build_prompt(tok, mr, SYSTEM) for mr in MRS]
    with caplog.at_level(logging.INFO, logger=CACHE_LOG):
        fast = generate(model, tok, prompts, 4, 8, engine="continuous")
    want = generate(model, tok, prompts, 4, 8, engine="generate")
    assert want.engine == "generate"
    lines = _fallback_lines(caplog)
    if family.cache_problem is None:
        assert fast.engine == "continuous" and not lines
    else:
        assert fast.engine == f"generate (fallback: {family.cache_problem})"
        assert len(lines) == 1
        assert model.config.model_type in lines[0] and family.cache_problem in lines[0]
    assert len(set(want.texts)) > 1  # outputs depend on the prompt
    if dtype == "float32":
        assert fast.texts == want.texts
    else:
        # bf16 keeps 8 bits of mantissa: the continuous engine's shared-prefix and refilled
        # cache give logits that differ from generate's padded batches in the last bits, and
        # a random model's near-tied top tokens can then swap. Most rows still agree.
        agree = sum(a == b for a, b in zip(fast.texts, want.texts, strict=True))
        assert agree >= len(prompts) - 2, (fast.texts, want.texts)


def test_rerank_says_it_drew_beams_for_a_sliding_window_cache(family_dirs, caplog) -> None:
    from utils.config import RerankSection
    from utils.inference.decoder import Decoder
    from utils.inference.transformers_engine import TransformersEngine

    model, tok = _load(family_dirs["mistral"], "float32", FAMILIES["mistral"].varied_std)
    prompts = [build_prompt(tok, mr, SYSTEM) for mr in MRS[:2]]
    with caplog.at_level(logging.INFO, logger=CACHE_LOG):
        engine = TransformersEngine(model, tok)
        decoder = Decoder(engine, "data_to_text", RerankSection(candidates=2), batch_size=2)
        out = decoder.decode(prompts, MRS[:2], max_new_tokens=4)
    assert out.stats["decoding"].endswith("(fallback: beam, sliding-window cache)")
    assert out.stats[ENGINE] == "generate (fallback: sliding-window cache)"
    assert any("beam search" in line for line in _fallback_lines(caplog))


def test_a_sliding_window_cache_is_served_batch_by_batch(family_dirs) -> None:
    from utils.inference.decoder import Decoder
    from utils.inference.rolling import rolling_problem
    from utils.inference.transformers_engine import TransformersEngine

    model, tok = _load(family_dirs["mistral"], "float32", FAMILIES["mistral"].varied_std)
    decoder = Decoder(TransformersEngine(model, tok), "data_to_text", None, batch_size=2)
    assert "cannot add rows to a running decode" in rolling_problem(decoder)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_shared_prefix_loss_equals_full_loss_or_is_reported_off(
    name: str, dtype: str, family_dirs, prepared, viggo_subset, caplog
) -> None:
    """The training collator the Trainer gets: with a plain cache the prompt prefix runs
    once per batch and the loss is that of full rows; a sliding-window cache turns it off,
    and says so."""
    from utils.data.jsonl import read_jsonl
    from utils.training.collators import CompletionCollator
    from utils.training.prefix_cache import attach_prefix_cache
    from utils.training.trainer import make_collator

    family = FAMILIES[name]
    # Weights large enough that attention really mixes positions.
    model, tok = _load(family_dirs[name], dtype, std=0.2)
    cfg = PipelineConfig.model_validate(tiny_config(family_dirs[name], viggo_subset))
    with caplog.at_level(logging.INFO, logger=TRAINER_LOG):
        collator = make_collator(cfg, tok.pad_token_id, model)
    rows = read_jsonl(prepared[name] / "train.jsonl")[:4]
    rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    lines = _fallback_lines(caplog, TRAINER_LOG)
    if family.cache_problem is not None:
        assert collator.share_prefix is False
        (line,) = lines
        assert f"{model.config.model_type}: {family.cache_problem}" in line
        return
    assert collator.share_prefix is True and not lines
    batch = collator(rows)
    assert batch["prefix_ids"].shape[1] > 0
    with torch.no_grad():
        full = model(**CompletionCollator(tok.pad_token_id)(rows)).loss.item()
        shared = model(**attach_prefix_cache(model, batch)).loss.item()
    assert shared == pytest.approx(full, rel=1e-5 if dtype == "float32" else 2e-2)


# --- a finetune, its export and its serving ---

_trained: dict[tuple[str, str], tuple[PipelineConfig, Path, dict[str, Any]]] = {}


@pytest.fixture(scope="module")
def train(tmp_path_factory, family_dirs, prepared, viggo_subset):
    """`train(name, dtype)` -> (config, adapter folder, training summary), trained once."""

    def run(name: str, dtype: str) -> tuple[PipelineConfig, Path, dict[str, Any]]:
        if (name, dtype) not in _trained:
            from utils.training.train import train_lora

            out = tmp_path_factory.mktemp(f"train-{name}-{dtype}")
            cfg = PipelineConfig.model_validate(
                tiny_config(
                    family_dirs[name],
                    viggo_subset,
                    model={"dtype": dtype},
                    training={
                        "max_steps": 6,
                        "learning_rate": 5e-2,
                        "save_steps": None,
                        "checkpoint_dir": str(out / "checkpoints"),
                    },
                )
            )
            summary = train_lora(cfg, prepared[name], out / "adapter")
            _trained[name, dtype] = (cfg, out / "adapter", summary)
        return _trained[name, dtype]

    yield run
    _trained.clear()


@pytest.mark.parametrize(("name", "dtype"), TRAINED)
def test_finetune_lowers_the_loss_and_records_prefix_sharing(name: str, dtype: str, train):
    from transformers import AutoConfig

    family = FAMILIES[name]
    cfg, _, summary = train(name, dtype)
    # Each step trains on the same 4 rows (the whole train split): from ln(vocab) at the
    # start, the loss falls by ~0.1-0.2 in every family and dtype.
    losses = [loss for _, loss in summary["loss_history"]["train_loss"]]
    assert summary["dtype"] == dtype and summary["steps"] == 6
    assert losses[-1] < losses[0] - 0.05, losses
    assert summary["shared_prompt_prefix"] is (family.cache_problem is None)
    off = summary["shared_prompt_prefix_off"]
    if family.cache_problem is None:
        assert off is None
    else:  # the model type and the cache's reason, not the PEFT wrapper's class name
        assert off.startswith(f"{AutoConfig.from_pretrained(cfg.model.base_model_id).model_type}: ")
        assert family.cache_problem in off


@pytest.mark.parametrize(("name", "dtype"), TRAINED)
def test_export_round_trip_and_serving_reproduce_the_evaluation(
    name: str, dtype: str, train, prepared, tmp_path
) -> None:
    """The merged export computes what base + adapter computes; `generate_with_adapter`
    (run.py generate) gives the predictions the evaluation recorded, with the engine the
    evaluation reports."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from utils.evaluation.evaluator import evaluate_on_split
    from utils.inference.adapters import export_merged, generate_with_adapter

    family = FAMILIES[name]
    cfg, adapter, _ = train(name, dtype)
    metrics, records = evaluate_on_split(
        prepared[name], "data_to_text", cfg.model.source(), cfg.evaluation, adapter
    )
    expected = "continuous" if family.cache_problem is None else "generate (fallback: "
    assert metrics[ENGINE].startswith(expected)
    inputs = [r["input"] for r in records]
    served = generate_with_adapter(
        cfg, adapter, inputs, cfg.evaluation.max_new_tokens, cfg.evaluation.batch_size
    )
    assert served == [r["prediction"] for r in records]

    out = export_merged(cfg, adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no peft
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == FAMILIES[name].template
    base, _ = _load(Path(cfg.model.base_model_id), dtype)
    adapted = PeftModel.from_pretrained(base, str(adapter))
    ids = torch.tensor([encode_prompt(tok, build_prompt(tok, MR, SYSTEM))])
    with torch.no_grad():
        merged_logits = merged(input_ids=ids).logits.float()
        adapter_logits = adapted(input_ids=ids).logits.float()
    # bf16: W + BA is rounded to bf16 once when merged, the adapter path rounds per layer.
    atol = 1e-4 if dtype == "float32" else 5e-2 * adapter_logits.abs().max().item()
    assert merged.dtype == getattr(torch, dtype)
    assert torch.allclose(merged_logits, adapter_logits, atol=atol)
