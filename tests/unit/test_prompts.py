"""Loss masking and prompt identity: the defects the upstream project had."""

import json
from pathlib import Path

import pytest

from utils.config import DatasetSection
from utils.data.prepare import prepare_dataset
from utils.data.prompts import (
    IGNORE_INDEX,
    build_prompt,
    encode_example,
    encode_prompt,
    system_prompt_for,
)
from utils.modeling.loader import load_tokenizer

MR = "inform(name[Dirt: Showdown], release_year[2012], esrb[E 10+ (for Everyone 10 and Older)])"
SENTENCE = "Dirt: Showdown is a 2012 game rated E 10+."


@pytest.fixture(scope="module")
def tok(smollm2_dir: Path):
    return load_tokenizer(str(smollm2_dir))


def test_pad_is_eos_for_smollm2(tok) -> None:
    # The case that breaks "mask labels where input == pad": the pad id IS the EOS id.
    assert tok.pad_token_id == tok.eos_token_id


def test_prompt_labels_masked_and_eos_is_a_label(tok) -> None:
    system = system_prompt_for("data_to_text")
    ex = encode_example(tok, MR, SENTENCE, system, max_length=512)
    prompt_len = len(encode_prompt(tok, build_prompt(tok, MR, system)))
    assert ex["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert all(label != IGNORE_INDEX for label in ex["labels"][prompt_len:])
    assert ex["labels"][-1] == tok.eos_token_id
    assert ex["input_ids"][-1] == tok.eos_token_id
    trained = tok.decode([t for t in ex["labels"] if t != IGNORE_INDEX], skip_special_tokens=True)
    assert trained == SENTENCE


def test_chat_template_is_used(tok) -> None:
    prompt = build_prompt(tok, MR, "SYS")
    assert "<|im_start|>system\nSYS" in prompt
    assert prompt.rstrip().endswith("<|im_start|>assistant")
    # The template carries its own special tokens: no second BOS is added.
    ids = encode_prompt(tok, prompt)
    assert ids[:1] == tok("<|im_start|>", add_special_tokens=False)["input_ids"]


def test_truncation_caps_length(tok) -> None:
    ex = encode_example(tok, MR, SENTENCE, system_prompt_for("data_to_text"), max_length=20)
    assert len(ex["input_ids"]) == len(ex["labels"]) == 20


def test_plain_template_without_chat_template(tok) -> None:
    tok = load_tokenizer(tok.name_or_path)
    tok.chat_template = None
    prompt = build_prompt(tok, MR, "SYS")
    assert prompt.startswith("SYS") and MR in prompt


@pytest.mark.parametrize("task", ["data_to_text", "text_to_mr"])
def test_training_and_evaluation_share_the_prompt(tok, viggo_subset: Path, tmp_path, task) -> None:
    """The evaluation prompt is byte-identical to the prefix the model was trained on."""
    prepare_dataset(DatasetSection(data_dir=str(viggo_subset), task=task), tok, tmp_path)
    rows = {s: [json.loads(x) for x in (tmp_path / f"{s}.jsonl").open()] for s in ("train", "test")}
    system = system_prompt_for(task)
    for row in rows["train"][:5]:
        prompt_ids = encode_prompt(tok, row["prompt"])
        assert row["input_ids"][: len(prompt_ids)] == prompt_ids
        assert row["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    for row in rows["test"]:
        assert row["prompt"] == build_prompt(tok, row["input"], system)
    if task == "text_to_mr":
        assert rows["test"][0]["target"].split("(")[0] in system
