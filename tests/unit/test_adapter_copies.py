"""ZenML extracts a temporary copy of a version's adapter on every load: the commands that
load one delete their copy when done, and checking that a version has one extracts none."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from utils.config import load_config


class _Artifact:
    """Loads like ZenML's Path materializer: a fresh temporary folder per call."""

    def __init__(self, root: Path) -> None:
        self.root, self.made = root, []

    def load(self) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self.root))
        (folder / "adapter_config.json").write_text("{}")
        self.made.append(folder)
        return folder


class _Version:
    name = "3"

    def __init__(self, artifact: _Artifact | None) -> None:
        self.artifact = artifact

    def get_artifact(self, name: str) -> _Artifact | None:
        return self.artifact


@pytest.mark.parametrize("command", ["generate", "export"])
def test_commands_delete_the_adapter_copy_they_extract(
    command: str, monkeypatch, tmp_path: Path
) -> None:
    from utils.cli import adapter_commands
    from utils.inference import adapters
    from utils.zenml_ops import model_versions

    artifact = _Artifact(tmp_path)
    seen = []

    def use(cfg, adapter, *rest):
        assert (adapter / "adapter_config.json").is_file()  # there while it is used
        seen.append(adapter)
        return ["a sentence"] if command == "generate" else tmp_path / "out"

    monkeypatch.setattr(adapter_commands, "chosen_version", lambda args: _Version(artifact))
    monkeypatch.setattr(model_versions, "version_config", lambda mv: load_config(None, []))
    monkeypatch.setattr(model_versions, "evaluated_max_new_tokens", lambda mv: None)
    monkeypatch.setattr(adapters, "generate_with_adapter", use)
    monkeypatch.setattr(adapters, "export_merged", use)
    if command == "generate":
        assert adapter_commands.generate_main(["--input", "inform(name[Tetris])"]) == 0
    else:
        assert adapter_commands.export_main(["--out", str(tmp_path / "out")]) == 0
    assert seen == artifact.made and len(seen) == 1
    assert not seen[0].exists()


def test_checking_for_an_adapter_extracts_nothing(tmp_path: Path) -> None:
    from utils.zenml_ops.model_versions import ModelVersionError, adapter_artifact

    artifact = _Artifact(tmp_path)
    assert adapter_artifact(_Version(artifact)) is artifact and artifact.made == []
    with pytest.raises(ModelVersionError, match="model version 3 has no 'adapter' artifact"):
        adapter_artifact(_Version(None))
