"""Custom materializers: none are needed yet.

ZenML's built-ins cover every artifact of the pipeline: prepared data and LoRA adapters are
folders (`Path` materializer: one tar.gz, no weights stored twice), reports are `HTMLString`
and the loss curve is a PIL image (PNG). Add one here only for a type ZenML cannot store.
"""
