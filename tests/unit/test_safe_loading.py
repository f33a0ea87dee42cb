"""Safe defaults for loading base models: safetensors only, no remote code unless asked."""

from pathlib import Path

import pytest

from utils.modeling.resolve import ModelLoadError
from utils.modeling.safety import check_model_folder, use_safetensors_for


def _folder(tmp_path: Path, *files: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", *files):
        (tmp_path / name).write_text("{}")
    return tmp_path


def test_safetensors_folder_loads_safetensors(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "model.safetensors", "training_args.bin")
    assert use_safetensors_for(str(folder)) is True


def test_pickle_only_folder_is_refused_unless_allowed(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin.*model\.allow_pickle_weights"):
        check_model_folder(str(folder))
    assert use_safetensors_for(str(folder), allow_pickle_weights=True) is False


def test_hub_ids_refuse_pickle_fallback_by_default() -> None:
    assert use_safetensors_for("some-org/some-model") is True
    assert use_safetensors_for("some-org/some-model", allow_pickle_weights=True) is None


def test_folders_that_are_not_models(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        check_model_folder(str(tmp_path / "empty"))
    with pytest.raises(ModelLoadError, match="no weights"):
        check_model_folder(str(_folder(tmp_path / "no-weights")))


def test_every_from_pretrained_is_safe_by_default(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Model and tokenizer loads pass trust_remote_code=False and safetensors only."""
    import transformers

    from tests.conftest import load_on_cpu

    calls = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        real = cls.from_pretrained.__func__

        def spy(klass, *args, _real=real, **kwargs):
            calls.append((klass.__name__, kwargs))
            return _real(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    load_on_cpu(tiny_model_dir)
    assert [name for name, _ in calls] == ["AutoTokenizer", "AutoModelForCausalLM"]
    assert all(kwargs["trust_remote_code"] is False for _, kwargs in calls)
    assert calls[1][1]["use_safetensors"] is True
