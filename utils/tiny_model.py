"""A tiny random Llama with a real tokenizer and chat template: seconds to train.

For tests and smoke checks that need the whole pipeline, not a good model.
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_llama(tokenizer_dir: Path | str, out: Path, hidden_size: int = 64) -> Path:
    """Save a 2-layer, 64-wide random Llama plus the tokenizer of `tokenizer_dir` to `out`.

    At the default width every linear layer's input size is a multiple of 64 and its output
    size a multiple of 32: bitsandbytes' 4-bit kernels on AVX512-BF16 CPUs take no other
    shapes (see `utils.models.cpu_4bit_problem`), and the quantized tests must run on every
    CPU. A narrower `hidden_size` builds a model that those kernels refuse.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out
