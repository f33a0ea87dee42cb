"""Inference: the decoding engine interface (`engine`) and its engines (`transformers_engine`
with the `continuous` and `generate` loops, `vllm_engine`), reranking above them (`rerank`),
the one path from a model to decoded texts (`decoder`), and trained adapters in use
(`adapters`)."""
