"""`utils.training.train.train_lora` in a process of its own, for the kill-and-resume test.

usage: python train_child.py CONFIG_JSON DATASET_DIR OUTPUT_DIR SUMMARY_JSON [STEP_SLEEP_S]

STEP_SLEEP_S slows each optimizer step so the parent can kill the run between checkpoints
(the tiny model trains a step in milliseconds).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    config_path, dataset, output, summary_path = argv[:4]
    sleep_s = float(argv[4]) if len(argv) > 4 else 0.0
    import utils.training.train as training
    from utils.config import PipelineConfig

    if sleep_s > 0:

        class SlowCallback(training.LossHistory):
            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                time.sleep(sleep_s)

        training.LossHistory = SlowCallback
    cfg = PipelineConfig.from_json(Path(config_path).read_text())
    summary = training.train_lora(cfg, Path(dataset), Path(output))
    Path(summary_path).write_text(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
