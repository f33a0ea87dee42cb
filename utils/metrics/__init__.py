"""Metrics: how an output is scored against its references (`text_metrics`: ROUGE, BLEU) and
each task's figures (`task_metrics`: the registry's metrics, slot error rate for ViGGO)."""
