"""ZenML stores `pip freeze` with every pipeline run, taken in a subprocess (1.6 s of CPU on
a 2-core machine). A deployment's packages cannot change while it runs, so the served
process takes the list once; recorded requests then cost their store writes only."""

from __future__ import annotations

import functools


def list_packages_once() -> None:
    """Make `Environment.get_python_packages` remember its first answer (idempotent)."""
    from zenml.environment import Environment

    if not hasattr(Environment.get_python_packages, "cache_info"):
        Environment.get_python_packages = staticmethod(
            functools.cache(Environment.get_python_packages)
        )
