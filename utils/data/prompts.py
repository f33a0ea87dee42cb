"""Prompt text and token ids, shared by data preparation, training and generation.

Training and generation build the prompt with the same `build_prompt`, so the model is
evaluated on exactly the text it was trained on. Only response tokens (and the EOS that ends
them) carry labels; the prompt is -100. A chat template without a system role gets the
system prompt at the start of the user turn (`takes_system_turn`).
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


def build_prompt(
    tokenizer: Any, task_input: str, system_prompt: str, enable_thinking: bool = False
) -> str:
    """The exact prompt text the model sees before its answer (train and eval alike).

    `enable_thinking` reaches templates that know it (Qwen3: False closes an empty
    `<think></think>` block in the prompt, so the answer is the first thing generated);
    every other template renders as without it.
    """
    if getattr(tokenizer, "chat_template", None):
        options = {"enable_thinking": enable_thinking}
        messages = chat_messages(tokenizer, task_input, system_prompt, options)
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **options
        )
    return PLAIN_TEMPLATE.format(system=system_prompt, input=task_input)


def chat_messages(
    tokenizer: Any, task_input: str, system_prompt: str, options: dict[str, Any]
) -> list[dict[str, str]]:
    """A system turn and a user turn; or, for templates without a system role, one user turn
    that starts with the system prompt."""
    if takes_system_turn(tokenizer, options):
        return [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": task_input},
        ]
    folded = f"{system_prompt}\n\n{task_input}" if system_prompt else task_input
    return [{"role": "user", "content": folded}]


# A system text no template writes by itself: its absence from the render means the
# template dropped the system turn.
SYSTEM_PROBE = "SYSTEM-PROBE-7c1e"

# (template text, options) -> whether it renders a system turn. The template decides, and
# the same template always decides the same: training, evaluation and serving agree.
_system_support: dict[tuple[str, tuple[tuple[str, Any], ...]], bool] = {}


def takes_system_turn(tokenizer: Any, options: dict[str, Any]) -> bool:
    """Whether the chat template renders a system turn, found by rendering one.

    Gemma's templates raise ("System role not supported"), older Mistral ones raise on the
    role order, others silently drop it: all of these get the system prompt in the user
    turn instead. Asked of the template's behaviour, not of the model's name, so a
    fine-tune with its own template is judged by that template.
    """
    from jinja2.exceptions import TemplateError

    key = (str(tokenizer.chat_template), tuple(sorted(options.items())))
    if key not in _system_support:
        probe = [
            {"role": "system", "content": SYSTEM_PROBE},
            {"role": "user", "content": "x"},
        ]
        try:
            text = tokenizer.apply_chat_template(
                probe, tokenize=False, add_generation_prompt=True, **options
            )
            _system_support[key] = SYSTEM_PROBE in text
        except TemplateError:
            # A template that fails for other reasons fails again on the folded turn, and
            # that error surfaces.
            _system_support[key] = False
    return _system_support[key]


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    # A chat template writes its own BOS into the text; plain prompts need the tokenizer's.
    add_special = not getattr(tokenizer, "chat_template", None)
    return tokenizer(prompt, add_special_tokens=add_special)["input_ids"]


def encode_example(
    tokenizer: Any,
    task_input: str,
    target: str,
    system_prompt: str,
    max_length: int,
    enable_thinking: bool = False,
) -> dict[str, list[int]]:
    """Token ids and labels for one training row: labels only on target + EOS."""
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no EOS token: the model could never learn to stop")
    prompt = build_prompt(tokenizer, task_input, system_prompt, enable_thinking)
    prompt_ids = encode_prompt(tokenizer, prompt)
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    target_ids = [*target_ids, tokenizer.eos_token_id]
    input_ids = (prompt_ids + target_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + target_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}
