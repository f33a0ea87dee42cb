"""Prompt text and token ids, shared by data preparation, training and generation.

Training and generation build the prompt with the same `build_prompt`, so the model is
evaluated on exactly the text it was trained on. Only response tokens (and the EOS that ends
them) carry labels; the prompt is -100.
"""

from __future__ import annotations

from typing import Any

from utils.core.tasks import get_task

IGNORE_INDEX = -100

# Used for tokenizers without a chat template (base models).
PLAIN_TEMPLATE = "{system}\n\n### Input:\n{input}\n\n### Output:\n"


def system_prompt_for(task: str, override: str | None = None) -> str:
    """`dataset.system_prompt` where set, else the task's own."""
    return override if override is not None else get_task(task).system_prompt


def build_prompt(tokenizer: Any, task_input: str, system_prompt: str) -> str:
    """The exact prompt text the model sees before its answer (train and eval alike)."""
    if getattr(tokenizer, "chat_template", None):
        messages = [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": task_input},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return PLAIN_TEMPLATE.format(system=system_prompt, input=task_input)


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    # A chat template writes its own BOS into the text; plain prompts need the tokenizer's.
    add_special = not getattr(tokenizer, "chat_template", None)
    return tokenizer(prompt, add_special_tokens=add_special)["input_ids"]


def encode_example(
    tokenizer: Any, task_input: str, target: str, system_prompt: str, max_length: int
) -> dict[str, list[int]]:
    """Token ids and labels for one training row: labels only on target + EOS."""
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no EOS token: the model could never learn to stop")
    prompt_ids = encode_prompt(tokenizer, build_prompt(tokenizer, task_input, system_prompt))
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    target_ids = [*target_ids, tokenizer.eos_token_id]
    input_ids = (prompt_ids + target_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + target_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}
