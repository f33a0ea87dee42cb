"""From a model source (and adapter) to decoded texts: the one path that evaluation,
`run.py generate`, `generate_with_adapter` and serving share.

`Decoder.load` builds the engine `evaluation.engine` names; `Decoder.decode` decodes as the
evaluation does: greedy, or greedy reranked by the task's output check where
`evaluation.rerank` applies to the model (see `EvaluationSection.rerank_for`), every token
inside the grammar of `evaluation.constrain` when it is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.config import EvaluationSection, ModelSource, RerankSection
from utils.core.names import ENGINE
from utils.inference.constraints import constraint_kind, grammars_for
from utils.inference.engine import Engine
from utils.inference.rerank import Reranked, describe, generate_reranked


def load_engine(
    source: ModelSource, evaluation: EvaluationSection, adapter: Path | None = None
) -> Engine:
    """The engine `evaluation.engine` names, with `source` (+ `adapter`) loaded into it."""
    if evaluation.engine == "vllm":
        from utils.inference.vllm_engine import VllmEngine

        return VllmEngine.load(source, adapter, stop_at_newline=evaluation.stop_at_newline)
    from utils.inference.skinny_matmul import install as install_skinny_matmul
    from utils.inference.transformers_engine import TransformersEngine
    from utils.modeling.loader import load_model

    model, tokenizer = load_model(source, adapter=adapter, padding_side="left")
    # A model loaded for decoding only: its few-row matmuls can take the faster form.
    install_skinny_matmul(model)
    return TransformersEngine(
        model, tokenizer, evaluation.engine, evaluation.stop_at_newline,
        evaluation.one_row_kernel, evaluation.memory_budget_mb, evaluation.draft_tokens,
    )  # fmt: skip


@dataclass
class Decoder:
    """A loaded engine, the task it decodes for, the reranking that applies (or None), and
    the constraint on outputs (`EvaluationSection.constrain`, or None)."""

    engine: Engine
    task: str
    rerank: RerankSection | None
    batch_size: int
    constrain: Any = None
    stop_at_newline: bool = True

    @classmethod
    def load(
        cls,
        source: ModelSource,
        evaluation: EvaluationSection,
        task: str,
        adapter: Path | None = None,
        rerank: bool = True,
    ) -> Decoder:
        """`rerank=False` decodes greedily whatever the config says (a serving option)."""
        applies = evaluation.rerank_for(finetuned=adapter is not None) if rerank else None
        engine = load_engine(source, evaluation, adapter)
        return cls(
            engine, task, applies, evaluation.batch_size, evaluation.constrain,
            evaluation.stop_at_newline,
        )  # fmt: skip

    def decode(
        self,
        prompts: list[str],
        inputs: list[str],
        max_new_tokens: int,
        batch_size: int | None = None,
        desc: str = "generate",
    ) -> Reranked:
        """Outputs of `prompts` (`inputs[i]`: the task input behind `prompts[i]`, which the
        reranking check reads), with what the decode cost."""
        batch_size = batch_size or self.batch_size
        grammars = grammars_for(self.constrain, prompts, inputs, self.stop_at_newline)
        if self.rerank is not None:
            reranked = generate_reranked(
                self.engine, prompts, inputs, self.task, self.rerank, batch_size=batch_size,
                max_new_tokens=max_new_tokens, desc=desc, grammars=grammars,
            )  # fmt: skip
        else:
            generations = self.engine.generate(
                prompts, batch_size=batch_size, max_new_tokens=max_new_tokens, desc=desc,
                grammars=grammars,
            )  # fmt: skip
            stats = {"decoding": describe(None), ENGINE: generations.engine}
            reranked = Reranked(generations, None, stats)
        if self.constrain is not None:
            reranked.stats["decoding"] += f", constrain:{constraint_kind(self.constrain)}"
        return reranked
