"""From a model source (and adapter) to decoded texts: the one path that evaluation,
`run.py generate`, `generate_with_adapter` and serving share.

`Decoder.load` builds the engine `evaluation.engine` names; `Decoder.decode` decodes as the
evaluation does: greedy, or greedy reranked by the task's output check where
`evaluation.rerank` applies to the model (see `EvaluationSection.rerank_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from utils.config import EvaluationSection, ModelSource, RerankSection
from utils.core.names import ENGINE
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
        evaluation.one_row_kernel, evaluation.memory_budget_mb,
    )  # fmt: skip


@dataclass
class Decoder:
    """A loaded engine, the task it decodes for, and the reranking that applies (or None)."""

    engine: Engine
    task: str
    rerank: RerankSection | None
    batch_size: int

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
        return cls(load_engine(source, evaluation, adapter), task, applies, evaluation.batch_size)

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
        if self.rerank is not None:
            return generate_reranked(
                self.engine, prompts, inputs, self.task, self.rerank, batch_size=batch_size,
                max_new_tokens=max_new_tokens, desc=desc,
            )  # fmt: skip
        generations = self.engine.generate(
            prompts, batch_size=batch_size, max_new_tokens=max_new_tokens, desc=desc
        )
        stats = {"decoding": describe(None), ENGINE: generations.engine}
        return Reranked(generations, None, stats)
