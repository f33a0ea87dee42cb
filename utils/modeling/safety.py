"""Only weights that cannot run code load by default: safetensors, unless the config trusts
a folder's pickle files."""

from __future__ import annotations

from pathlib import Path

from utils.modeling.resolve import ModelLoadError


def use_safetensors_for(path: str, allow_pickle_weights: bool = False) -> bool | None:
    """`from_pretrained(use_safetensors=...)` for `path`; refuses pickle-only folders.

    Pickle checkpoints (pytorch_model*.bin) can execute code when loaded, so they load only
    when the config says the source is trusted. For a hub id, True makes transformers refuse
    a repository without safetensors instead of falling back to pickle.
    """
    folder = Path(path)
    if not folder.is_dir():
        return None if allow_pickle_weights else True
    if any(folder.glob("*.safetensors")):
        return True
    pickles = sorted(p.name for p in folder.glob("pytorch_model*.bin"))
    if not pickles:
        raise ModelLoadError(
            f"model folder {folder} has no weights: expected model.safetensors "
            "(or sharded model-*.safetensors) as written by save_pretrained"
        )
    if allow_pickle_weights:
        return False
    raise ModelLoadError(
        f"model folder {folder} has only pickle weights ({', '.join(pickles[:3])}), which can "
        "run code when loaded: re-save it with save_pretrained(dir, safe_serialization=True), "
        "or set model.allow_pickle_weights: true if you trust this folder"
    )


def check_model_folder(path: str, allow_pickle_weights: bool = False) -> None:
    """Fail before any step runs on a local folder that from_pretrained would reject."""
    folder = Path(path)
    if not folder.is_dir():
        return
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"model folder {folder} has no config.json: not a transformers model folder "
            "(expected the output of save_pretrained)"
        )
    use_safetensors_for(path, allow_pickle_weights)
