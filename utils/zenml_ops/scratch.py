"""Scratch folders of the steps, removed once ZenML has stored them.

`prepare_data` and `finetune` write their output folders here; ZenML's `Path` materializer
copies each into the artifact store after the step returns. The pipeline's cleanup hook
(`remove_scratch_folders`) then removes them: at the end of the run on the local
orchestrator, after each step where steps run in their own processes or pods.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

PREFIX = "viggo-lora-"
_made: list[Path] = []


def scratch_folder(kind: str) -> Path:
    """A new empty folder, removed by `remove_scratch_folders`."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-"))
    _made.append(path)
    return path


def adopt_scratch_folder(path: Path) -> None:
    """A scratch folder made in another process (an Accelerate rank), removed here too."""
    path = Path(path)
    if path.name.startswith(PREFIX) and path not in _made:
        _made.append(path)


def remove_scratch_folders() -> None:
    """The pipeline's cleanup hook: removes the folders this process made or adopted."""
    while _made:
        shutil.rmtree(_made.pop(), ignore_errors=True)
