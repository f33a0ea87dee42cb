"""A sweep's progress line: variant i of n, time elapsed, estimated time remaining."""

from __future__ import annotations

from statistics import mean


def duration(seconds: float) -> str:
    """45s, 3m07s, 1h02m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def eta_seconds(finished: list[float], remaining: int) -> float | None:
    """Remaining runs x the mean of the finished ones, leaving out the first once others
    finished: it also filled the step cache the later ones are served from."""
    if not finished:
        return None
    typical = mean(finished[1:]) if len(finished) > 1 else finished[0]
    return typical * remaining


def progress_line(i: int, n: int, label: str, elapsed: float, finished: list[float]) -> str:
    eta = eta_seconds(finished, n - i + 1)
    remaining = "?" if eta is None else duration(eta)
    return (
        f"[sweep {i}/{n}] {label or '(the config as it is)'} · elapsed {duration(elapsed)}"
        f" · ETA {remaining}"
    )
