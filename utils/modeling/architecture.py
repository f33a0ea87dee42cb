"""What a model's architecture admits, read from its config alone (no weights): the LoRA
targets and layer counts a config may ask for, checked before any step runs."""

from __future__ import annotations

from typing import Any

import torch

from utils.config import ConfigError, LoraSection


def meta_model(config: Any, trust_remote_code: bool = False) -> Any:
    """The model of an architecture config on the `meta` device: every module and shape,
    no memory, no weights."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def meta_model_of(path: str, trust_remote_code: bool = False, token: str | None = None) -> Any:
    """`meta_model` of the config.json in `path` (a folder or hub id)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, token=token)
    return meta_model(config, trust_remote_code)


def lora_problem(model: Any, lora: LoraSection) -> str | None:
    """Why `lora` cannot be applied to `model` (one line naming the key), or None."""
    from utils.modeling.lora import lora_target_modules

    linears = lora_target_modules(model)
    missing = [m for m in lora.target_modules or [] if m not in linears]
    if missing:
        return (
            f"lora.target_modules: {', '.join(map(repr, missing))} "
            f"{'is' if len(missing) == 1 else 'are'} not a linear layer of "
            f"{type(model).__name__}; valid: {', '.join(linears)}"
        )
    layers = model.config.num_hidden_layers
    if lora.last_n_layers is not None and lora.last_n_layers > layers:
        return (
            f"lora.last_n_layers={lora.last_n_layers} but {type(model).__name__} has "
            f"{layers} layers (num_hidden_layers)"
        )
    return None


def check_lora_fits(model: Any, lora: LoraSection, source: str = "") -> None:
    problem = lora_problem(model, lora)
    if problem:
        raise ConfigError(f"{problem}{f' ({source})' if source else ''}")


def decoder_layer_class(model: Any) -> str:
    """The class name of `model`'s decoder layers (what each FSDP unit wraps): the module
    list with one entry per `num_hidden_layers`, all of one class.

    From the modules themselves, not from the model's `_no_split_modules` (a loading hint
    that may list other classes too), and never from the model's name.
    """
    layers = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == layers:
            kinds = {type(m).__name__ for m in module}
            if len(kinds) == 1:
                return kinds.pop()
    raise ConfigError(
        f"{type(model).__name__} has no list of {layers} decoder layers of one class for FSDP "
        "to wrap: set accelerate.fsdp.wrap_layer to the class name"
    )


def wrap_layer_problem(model: Any, wrap_layer: str) -> str | None:
    """Why `accelerate.fsdp.wrap_layer` names no module class of `model`, or None."""
    classes = {type(m).__name__ for m in model.modules()}
    if wrap_layer in classes:
        return None
    return (
        f"accelerate.fsdp.wrap_layer={wrap_layer!r} is no module class of "
        f"{type(model).__name__}; its decoder layers are {decoder_layer_class(model)!r}"
    )


def fsdp_wrap_layer(source: Any, fsdp: Any, model: Any = None) -> str:
    """The class each FSDP unit wraps: `fsdp.wrap_layer`, else the decoder layer class of
    `source`'s architecture (`model`, or a meta model built from its config.json)."""
    if fsdp.wrap_layer:
        return fsdp.wrap_layer
    if model is None:
        from utils.modeling.resolve import resolve_model_path
        from utils.zenml_ops.secrets import hf_token

        path = resolve_model_path(source.base_model_id)
        model = meta_model_of(path, source.trust_remote_code, hf_token(source.hf_token_secret))
    return decoder_layer_class(model)
