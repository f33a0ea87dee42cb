"""Facts every other package imports: names, the task and metric registry, the error base.

Nothing here imports the rest of the project (or torch, or ZenML).
"""
