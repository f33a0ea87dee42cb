"""`evaluation.memory_budget_mb`: the decode batch shrinks to what the budget holds, with the
same outputs, and a budget short of one row is refused in one line."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from utils.core.errors import UserError
from utils.data.prompts import build_prompt, encode_prompt
from utils.inference.memory_budget import MIB, MemoryBudgetError, kv_bytes_per_token, plan_decode

INPUTS = [
    "inform(name[A])",
    "request(specifier[fun], has_multiplayer[yes])",
    "x",
    "give_opinion(name[Portal 2], rating[excellent], genres[puzzle, platformer])",
    "yes",
    "verify_attribute(name[Dirt: Showdown], rating[average])",
]


def test_kv_bytes_per_token_of_smollm2_135m() -> None:
    # SmolLM2-135M: 30 layers, 9 query heads on 3 K/V heads of 64.
    config = SimpleNamespace(
        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576
    )
    assert kv_bytes_per_token(config, 4) == 30 * 2 * 3 * 64 * 4 == 46_080
    assert kv_bytes_per_token(config, 2) == 23_040


def test_the_plan_takes_what_fits_and_gives_the_rest_to_the_memo() -> None:
    row = 1000 * 4096  # 1000 tokens of 4 KiB
    plan = plan_decode(10, 4096, 1000, batch_size=128)
    assert plan.batch_size == 10 * MIB // row == 2
    assert plan.memo_bytes == 10 * MIB - 2 * row
    assert plan_decode(10_000, 4096, 1000, batch_size=8).batch_size == 8
    assert plan_decode(None, 4096, 1000, batch_size=128).batch_size == 128


def test_a_budget_short_of_one_row_is_refused_in_one_line() -> None:
    with pytest.raises(MemoryBudgetError) as e:
        plan_decode(1, 4096, 1000, batch_size=128)
    assert isinstance(e.value, UserError)
    message = str(e.value)
    assert "\n" not in message and "evaluation.memory_budget_mb=1" in message
    assert "at least 4" in message  # 4,096,000 bytes round up to 4 MiB


@pytest.mark.parametrize("sampled", [False, True])
def test_a_small_budget_shrinks_the_batch_with_identical_outputs(tiny, sampled, caplog) -> None:
    from utils.inference.engine import Sampling
    from utils.inference.transformers_engine import TransformersEngine

    model, tok = tiny
    prompts = [build_prompt(tok, i, "SYS") for i in INPUTS]
    sampling = Sampling(1.5, 1.0, seed=3) if sampled else None
    if sampled:
        prompts = prompts * 2  # repeats: candidates, and the prefill memo in play
    free = TransformersEngine(model, tok)
    # Room for two rows of the longest prompt + 8 new tokens.
    encoded = [encode_prompt(tok, p) for p in prompts]
    budget_mb = 2 * free.plan(encoded, 8, 8).row_bytes / MIB
    tight = TransformersEngine(model, tok, memory_budget_mb=budget_mb)
    with caplog.at_level(logging.INFO, logger="utils.inference.transformers_engine"):
        shrunk = tight.plan(encoded, len(prompts), 8).batch_size
        narrow = tight.generate(prompts, sampling, batch_size=len(prompts), max_new_tokens=8)
    assert 1 <= shrunk < len(prompts), "the budget should not hold every row"
    wide = free.generate(prompts, sampling, batch_size=len(prompts), max_new_tokens=8)
    assert narrow.texts == wide.texts
    assert len(set(wide.texts)) > 1
    assert f"decode batch {shrunk} of evaluation.batch_size={len(prompts)}" in caplog.text


def test_the_engine_refuses_a_budget_without_room_for_one_row(tiny) -> None:
    from utils.inference.transformers_engine import TransformersEngine

    model, tok = tiny
    # A row of the tiny model holds ~70 KB of KV cache.
    engine = TransformersEngine(model, tok, memory_budget_mb=0.01)
    with pytest.raises(MemoryBudgetError, match="cannot hold one decode row"):
        engine.generate([build_prompt(tok, "x", "SYS")], batch_size=4, max_new_tokens=8)


def test_the_config_key_is_validated() -> None:
    from utils.config import PipelineConfig

    with pytest.raises(ValueError, match="memory_budget_mb"):
        PipelineConfig.model_validate({"evaluation": {"memory_budget_mb": 0}})


def test_the_cpu_configs_plan_the_measured_float32_batch() -> None:
    # The CPU configs share one budget; in float32 it holds 66 rows of the default run's
    # longest test prompt (106 tokens) + max_new_tokens (113), the batch measured with a
    # ~400 MiB lower peak than 106 rows (configs/smollm2_cpu.yaml), and all 128 in bf16.
    from utils.config import load_config

    root = Path(__file__).resolve().parents[2] / "configs"
    names = ("smollm2_cpu.yaml", "smollm2_cpu_quality.yaml", "smollm2_cpu_text_to_mr.yaml")
    budgets = {load_config(root / n, [], None).evaluation.memory_budget_mb for n in names}
    assert budgets == {640}
    config = SimpleNamespace(
        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576
    )
    fp32 = plan_decode(640, kv_bytes_per_token(config, 4), 106 + 113, batch_size=128)
    assert fp32.batch_size == 66 and fp32.memo_bytes < fp32.row_bytes
    assert plan_decode(640, kv_bytes_per_token(config, 2), 219, batch_size=128).batch_size == 128
