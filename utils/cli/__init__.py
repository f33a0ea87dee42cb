"""The command line: one module per `run.py` command, and the checks before a run."""
