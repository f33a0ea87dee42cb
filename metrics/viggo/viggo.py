"""The project's ViGGO metrics as a Hugging Face `evaluate` module, loaded from this folder
(no hub):

    import evaluate
    viggo = evaluate.load("metrics/viggo")                # data_to_text (MR -> sentence)
    viggo.compute(inputs=[mr], predictions=[sentence], references=[[ref_1, ref_2]])
    evaluate.load("metrics/viggo", "text_to_mr")          # sentence -> MR; or "text_to_text"

The figures are `python run.py score`'s, from the same function
(`utils.metrics.task_metrics.score_rows`): ROUGE-1/2/L/Lsum, BLEU and the slot error rate
(SER), per row and per distinct MR (`multiref_*`), for data_to_text; exact match, act
accuracy, slot precision/recall/F1 and parse rate for text_to_mr. A row with k references
counts as k rows, as in ViGGO's own files.
"""

import json
import sys
from pathlib import Path

import datasets
import evaluate


def _import_project() -> None:
    """Put the project on sys.path. `evaluate` runs a copy of this file from its module cache
    (~/.cache/huggingface/modules), and records the original's path in a JSON file beside the
    copy: the project root is two folders above the original. (Project imports are indented:
    `evaluate` takes every top-level import for a pip package to check.)"""
    try:
        import utils.metrics.task_metrics  # noqa: F401
    except ImportError:
        pass
    else:
        return
    here = Path(__file__).resolve()
    candidates = [here.parents[2], Path.cwd()]
    for meta in (here.with_suffix(".json"), Path(str(here).split(".py")[0] + ".json")):
        if meta.is_file():
            original = json.loads(meta.read_text()).get("original file path")
            if original:
                candidates.insert(0, Path(original).resolve().parents[2])
    for root in candidates:
        if (root / "utils" / "metrics" / "task_metrics.py").is_file():
            sys.path.insert(0, str(root))
            return
    raise ImportError(
        "metrics/viggo needs the project's code: load it by its path inside the project "
        "(evaluate.load('<project>/metrics/viggo')), or put the project root on sys.path"
    )


_import_project()

_CITATION = """\
@inproceedings{juraska-etal-2019-viggo,
  title = "{V}i{GGO}: A Video Game Corpus for Data-To-Text Generation in Open-Domain Conversation",
  author = "Juraska, Juraj and Bowden, Kevin and Walker, Marilyn",
  booktitle = "Proceedings of the 12th International Conference on Natural Language Generation",
  year = "2019",
  url = "https://aclanthology.org/W19-8623/",
}
"""

_INPUTS = """
Args:
    inputs: the model inputs, one per prediction (a ViGGO MR for data_to_text, a sentence
        for text_to_mr): SER and multi-reference scores need them.
    predictions: the system's outputs.
    references: one reference per prediction, or a list of references per prediction.
Returns:
    A dict of the task's metrics, `run.py score`'s numbers for the same rows.
"""

_DESCRIPTION = (
    "ViGGO metrics of the LoRA/QLoRA ZenML project: ROUGE, BLEU and slot error rate for "
    "data_to_text; exact match and slot F1 for text_to_mr; ROUGE and BLEU for text_to_text."
)


def _features(references: datasets.Value | datasets.Sequence) -> datasets.Features:
    text = datasets.Value("string")
    return datasets.Features({"inputs": text, "predictions": text, "references": references})


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class Viggo(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        task = self._task()
        return evaluate.MetricInfo(
            description=f"{_DESCRIPTION} Task: {task}.",
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=[
                _features(datasets.Sequence(datasets.Value("string"))),
                _features(datasets.Value("string")),
            ],
            homepage="https://nlds.soe.ucsc.edu/viggo",
        )

    def _task(self) -> str:
        from utils.core.tasks import TASKS, TaskName

        name = TaskName.DATA_TO_TEXT.value if self.config_name == "default" else self.config_name
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
        return name

    def _compute(self, inputs: list, predictions: list, references: list) -> dict:
        from utils.metrics.task_metrics import score_rows

        return score_rows(self._task(), inputs, predictions, references)
