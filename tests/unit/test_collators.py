"""Training batches: dynamic padding, logits trimmed to the answers, packed rows and the
shared prompt prefix all give the loss and gradients of plain padded rows."""

from pathlib import Path

import pytest

from utils.data.prompts import IGNORE_INDEX, encode_example, system_prompt_for
from utils.modeling.loader import load_tokenizer
from utils.training.collators import CompletionCollator, PackedCollator

MR = "inform(name[Dirt: Showdown], release_year[2012], esrb[E 10+ (for Everyone 10 and Older)])"
SENTENCE = "Dirt: Showdown is a 2012 game rated E 10+."


@pytest.fixture(scope="module")
def tok(smollm2_dir: Path):
    return load_tokenizer(str(smollm2_dir))


def test_collator_pads_dynamically_and_keeps_eos_labels(tok) -> None:
    system = system_prompt_for("data_to_text")
    short = encode_example(tok, MR, "Short.", system, 512)
    long = encode_example(tok, MR, SENTENCE + " It is great fun to play.", system, 512)
    batch = CompletionCollator(tok.pad_token_id)([short, long])
    width = len(long["input_ids"])
    assert batch["input_ids"].shape == (2, width)  # the longest row, never a fixed 512
    n = len(short["input_ids"])
    assert batch["attention_mask"][0, :n].all() and not batch["attention_mask"][0, n:].any()
    assert (batch["labels"][0, n:] == IGNORE_INDEX).all()
    # EOS labels survive although pad id == eos id.
    assert batch["labels"][0, n - 1].item() == tok.eos_token_id
    assert batch["labels"][1, width - 1].item() == tok.eos_token_id


def test_trimmed_logits_give_the_same_loss_and_gradients(tok, tiny_model_dir: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    system = system_prompt_for("data_to_text")
    rows = [
        encode_example(tok, MR, SENTENCE, system, 512),
        encode_example(tok, "request(specifier[fun])", "What is a fun game?", system, 512),
    ]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    losses, grads = [], []
    for trim in (False, True):
        batch = CompletionCollator(tok.pad_token_id, trim_prompt_logits=trim)(rows)
        if trim:
            assert batch["logits_to_keep"].numel() < batch["input_ids"].shape[1]
        model.zero_grad()
        out = model(**batch)
        out.loss.backward()
        losses.append(out.loss.item())
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
        if trim:
            assert out.logits.shape[1] == batch["logits_to_keep"].numel()
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def _loss_and_grads(model, batch):
    import torch

    model.zero_grad()
    out = model(**batch)
    out.loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return out.loss.item(), grads


def _three_rows(tok) -> list[dict]:
    system = system_prompt_for("data_to_text")
    return [
        encode_example(tok, MR, SENTENCE, system, 512),
        encode_example(tok, "request(specifier[fun])", "What is a fun game?", system, 512),
        encode_example(tok, "inform(name[Tetris])", "Tetris is a puzzle.", system, 512),
    ]


def _mixing_lora_model(tiny_model_dir, attention: str = "sdpa"):
    """Tiny model with weights large enough that attention really mixes positions."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, dtype=torch.float32, attn_implementation=attention
    )
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    return get_peft_model(
        model, LoraConfig(r=4, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj"])
    )


def test_packed_rows_give_the_same_loss_and_gradients_as_padded(tok, tiny_model_dir) -> None:
    """Padding-free packing is only correct if no token attends across rows: the loss and
    the LoRA gradients must equal those of the padded batch; a naive concatenation (one
    position range, so one causal sequence) must not."""
    import torch

    rows = _three_rows(tok)
    model = _mixing_lora_model(tiny_model_dir)
    padded_loss, padded_grads = _loss_and_grads(model, CompletionCollator(tok.pad_token_id)(rows))
    packed = PackedCollator()(rows)
    assert packed["input_ids"].shape == (1, sum(len(r["input_ids"]) for r in rows))
    n_targets = sum(sum(label != IGNORE_INDEX for label in r["labels"]) for r in rows)
    assert packed["logits_to_keep"].numel() == packed["shift_labels"].numel() == n_targets
    packed_loss, packed_grads = _loss_and_grads(model, packed)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    assert torch.allclose(packed_grads, padded_grads, atol=1e-6)

    leaky = dict(packed, position_ids=torch.arange(packed["input_ids"].shape[1])[None])
    leaky_loss, _ = _loss_and_grads(model, leaky)
    assert abs(leaky_loss - padded_loss) > 1e-3


@pytest.mark.parametrize(
    ("share_prefix", "padding_side", "attention"),
    [
        (True, "right", "sdpa"),
        (True, "left", "sdpa"),
        (False, "left", "sdpa"),
        # Eager attention: what bf16 training on a CPU uses (utils.modeling.precision).
        (True, "left", "eager"),
    ],
)
def test_shared_prefix_and_left_padding_give_the_same_loss_and_gradients(
    tok, tiny_model_dir, share_prefix: bool, padding_side: str, attention: str
) -> None:
    """The shared prompt prefix runs once per batch and reaches every row through the KV
    cache; left padding moves each row's tokens (and positions) to the right. Loss and LoRA
    gradients (which flow back through the cache into the prefix pass) must equal those of
    plain right-padded full rows. Attending to a prefix of zeros instead must not."""
    import torch

    from utils.modeling.kv_cache import cache_with_prefix, prefix_kv
    from utils.training.prefix_cache import attach_prefix_cache

    rows = _three_rows(tok)
    model = _mixing_lora_model(tiny_model_dir, attention)
    full = CompletionCollator(tok.pad_token_id)(rows)
    batch = CompletionCollator(
        tok.pad_token_id,
        trim_prompt_logits=True,
        share_prefix=share_prefix,
        padding_side=padding_side,
    )(rows)
    assert batch["attention_mask"].shape == full["attention_mask"].shape
    assert int(batch["attention_mask"].sum()) == sum(len(r["input_ids"]) for r in rows)
    answers = [sum(label != IGNORE_INDEX for label in r["labels"]) for r in rows]
    if padding_side == "left":
        # The LM head window: the longest answer and the position that predicts its start.
        assert batch["logits_to_keep"].numel() == max(answers) + 1
    full_loss, full_grads = _loss_and_grads(model, full)
    if share_prefix:
        p = batch["prefix_ids"].shape[1]
        # The chat template and system prompt, and not one token of any answer.
        assert tok.decode(batch["prefix_ids"][0]).rstrip().endswith("<|im_start|>user")
        assert p + batch["input_ids"].shape[1] == full["input_ids"].shape[1]
        assert batch["position_ids"].min() == p
        loss, grads = _loss_and_grads(model, attach_prefix_cache(model, batch))
    else:
        loss, grads = _loss_and_grads(model, batch)
    assert torch.isfinite(grads).all()
    assert loss == pytest.approx(full_loss, rel=1e-5)
    assert torch.allclose(grads, full_grads, atol=1e-6)

    if share_prefix:
        blind = dict(batch)
        prefix = blind.pop("prefix_ids")
        kv = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in prefix_kv(model, prefix)]
        blind["cache"] = cache_with_prefix(model, kv, len(rows))
        blind_loss, _ = _loss_and_grads(model, blind)
        assert abs(blind_loss - full_loss) > 1e-3


def test_shared_prefix_needs_two_rows_and_stops_before_labels(tok) -> None:
    system = system_prompt_for("data_to_text")
    row = encode_example(tok, MR, SENTENCE, system, 512)
    assert "prefix_ids" not in CompletionCollator(tok.pad_token_id, share_prefix=True)([row])
    # Identical rows share everything up to the position that predicts the first label.
    batch = CompletionCollator(tok.pad_token_id, share_prefix=True)([row, row])
    first_label = next(i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX)
    assert batch["prefix_ids"].shape[1] == first_label - 1
    assert (batch["labels"] != IGNORE_INDEX).sum() == 2 * sum(
        label != IGNORE_INDEX for label in row["labels"]
    )
