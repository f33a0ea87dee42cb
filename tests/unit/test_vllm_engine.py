"""The vllm engine's own code on a CPU: vLLM's classes are faked at the import boundary only
(`vllm.LLM`, `vllm.SamplingParams`, `vllm.lora.request.LoRARequest`); the tokenizer, prompt
encoding, stop rules and text cutting are the project's."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest

from utils.config import ConfigError, ModelSource, RerankSection, load_config
from utils.inference.engine import Sampling, draw_seed
from utils.inference.rerank import generate_reranked
from utils.inference.stops import newline_token_ids
from utils.inference.vllm_engine import EngineError, VllmEngine, vllm_problem

TETRIS = "inform(name[Tetris], release_year[1986])"
PORTAL = "inform(name[Portal 2], rating[excellent])"


class _Params:
    def __init__(self, **kw) -> None:
        self.kw = kw


class _LoRARequest:
    def __init__(self, lora_name: str, lora_int_id: int, lora_path: str = "") -> None:
        assert lora_int_id >= 1 and lora_path  # what vLLM's own __post_init__ checks
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path


class _LLM:
    """Answers each request with the text `answer(prompt text, params)` gives, encoded, then a
    second line and EOS (which the engine's rules must cut)."""

    made: ClassVar[list[_LLM]] = []

    def __init__(self, **options) -> None:
        self.options, self.calls = options, []
        _LLM.made.append(self)

    def generate(self, requests, params, *, use_tqdm, lora_request):
        self.calls.append((requests, params, lora_request))
        tok = self.tokenizer
        outputs = []
        for request, p in zip(requests, params, strict=True):
            text = self.answer(tok.decode(request["prompt_token_ids"]), p.kw)
            ids = tok(f" {text}\nA second line.", add_special_tokens=False)["input_ids"]
            ids.append(tok.eos_token_id)
            out = types.SimpleNamespace(token_ids=ids, cumulative_logprob=-0.5 * len(ids))
            outputs.append(types.SimpleNamespace(outputs=[out]))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch, tiny_model_dir: Path):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = _LLM, _Params
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = _LoRARequest
    for name, module in {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    _LLM.made = []
    return vllm


@pytest.fixture
def adapter(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """An adapter folder as finetune saves one (rank 12), with the tokenizer it trained with."""
    folder = tmp_path / "adapter"
    folder.mkdir()
    for f in tiny_model_dir.iterdir():
        if "token" in f.name or f.name.endswith(".jinja"):
            shutil.copy(f, folder / f.name)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 12, "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def _engine(tiny_model_dir: Path, adapter: Path | None, answer) -> VllmEngine:
    source = ModelSource(base_model_id=str(tiny_model_dir), dtype="bfloat16")
    engine = VllmEngine.load(source, adapter)
    llm = _LLM.made[-1]
    llm.tokenizer, llm.answer = engine.tokenizer, answer
    return engine


def test_the_adapter_is_served_unmerged_from_the_engines_own_copy(
    fake_vllm, tiny_model_dir: Path, adapter: Path
) -> None:
    engine = _engine(tiny_model_dir, adapter, lambda prompt, kw: "Tetris came out in 1986.")
    options = _LLM.made[-1].options
    assert options["model"] == str(tiny_model_dir) and options["dtype"] == "bfloat16"
    # LoRA stays separate from the base: vLLM applies it per request.
    assert options["enable_lora"] is True and options["max_loras"] == 1
    assert options["max_lora_rank"] == 16  # the smallest rank vLLM accepts that holds r=12
    shutil.rmtree(adapter)  # the caller's temporary copy goes; vLLM reads files later
    prompts = ["<p1>", "<p2>", "<p1>"]
    out = engine.generate(prompts, batch_size=8, max_new_tokens=20)
    requests, params, lora = _LLM.made[-1].calls[-1]
    assert isinstance(lora, _LoRARequest) and lora.lora_int_id == 1
    assert (Path(lora.lora_path) / "adapter_config.json").is_file()
    assert len(requests) == 2  # greedy: a repeated prompt is decoded once
    assert requests[0]["prompt_token_ids"] == engine.tokenizer("<p1>")["input_ids"]
    assert params[0].kw["temperature"] == 0.0 and params[0].kw["max_tokens"] == 20
    stops = params[0].kw["stop_token_ids"]
    assert engine.tokenizer.eos_token_id in stops
    assert set(newline_token_ids(engine.tokenizer)) <= set(stops)
    # Cut at the first line, as the transformers engines cut.
    assert out.texts == ["Tetris came out in 1986."] * 3
    assert out.engine == "vllm" and out.scores is None and out.distinct_prompts == 2


def test_base_model_loads_without_lora(fake_vllm, tiny_model_dir: Path) -> None:
    engine = _engine(tiny_model_dir, None, lambda prompt, kw: "x")
    assert "enable_lora" not in _LLM.made[-1].options
    engine.generate(["<p>"], batch_size=1, max_new_tokens=4)
    assert _LLM.made[-1].calls[-1][2] is None


def test_a_sampled_candidate_is_seeded_by_its_input_not_its_batch(
    fake_vllm, tiny_model_dir: Path
) -> None:
    engine = _engine(tiny_model_dir, None, lambda prompt, kw: f"seed {kw['seed']}")
    sampling = Sampling(temperature=0.9, top_p=0.8, seed=3)
    alone = engine.generate(["<a>", "<a>"], sampling, batch_size=4, max_new_tokens=8)
    mixed = engine.generate(["<b>", "<a>", "<b>", "<a>"], sampling, batch_size=4, max_new_tokens=8)
    assert alone.texts == [mixed.texts[1], mixed.texts[3]]
    assert alone.texts == [f"seed {draw_seed(3, '<a>', 0)}", f"seed {draw_seed(3, '<a>', 1)}"]
    kw = _LLM.made[-1].calls[-1][1][0].kw
    assert (kw["temperature"], kw["top_p"], kw["top_k"], kw["logprobs"]) == (0.9, 0.8, 50, 0)
    assert all(s < 0 for s in mixed.scores)  # mean log-probabilities of the tokens


def test_reranking_draws_wave_by_wave_on_an_engine_it_cannot_steer(
    fake_vllm, tiny_model_dir: Path
) -> None:
    """Greedy misses Tetris's year; the first wave has a candidate with it."""

    def answer(prompt, kw):
        if kw["temperature"] == 0.0:
            return "Tetris is a game." if "tetris" in prompt else "Portal 2 is excellent."
        return "Tetris came out in 1986."

    engine = _engine(tiny_model_dir, None, answer)
    section = RerankSection(candidates=4)
    out = generate_reranked(
        engine, ["<tetris>", "<portal-2>"], [TETRIS, PORTAL], "data_to_text", section,
        batch_size=4, max_new_tokens=16,
    )  # fmt: skip
    assert out.generations.texts == ["Tetris came out in 1986.", "Portal 2 is excellent."]
    # Greedy, then one wave of two draws for the failing input only.
    calls = _LLM.made[-1].calls
    assert [len(requests) for requests, _, _ in calls] == [2, 2]
    assert out.stats["rerank_candidates_drawn"] == 2


def test_refused_in_one_line_without_vllm_or_cuda(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    problem = vllm_problem()
    assert "pip install -r requirements-vllm.txt" in problem and "\n" not in problem
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert "needs a CUDA GPU" in vllm_problem()
    with pytest.raises(EngineError, match="needs a CUDA GPU"):
        VllmEngine.load(ModelSource(), None)


def test_preflight_refuses_vllm_before_any_step(monkeypatch) -> None:
    from utils.cli.preflight import check_engine

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    check_engine(load_config(None, []))  # the default engine needs nothing
    with pytest.raises(ConfigError, match=r"^evaluation\.engine=vllm needs"):
        check_engine(load_config(None, ["evaluation.engine=vllm"]))


def test_vllm_refuses_beam_reranking_in_the_config() -> None:
    with pytest.raises(ConfigError, match=r"evaluation\.rerank\.method=sample"):
        load_config(None, ["evaluation.engine=vllm", "evaluation.rerank={method: beam}"])
