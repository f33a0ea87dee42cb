"""Scheduled runs: `--schedule CRON` / `--schedule-every 6h` -> a ZenML `Schedule`.

Each triggered run is a new pipeline run, so it gets a new model version (the `Model` has
no fixed version) and `promote` reads the `staging` holder when it runs, not when the
schedule was made.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from utils.core.errors import UserError

# Orchestrator flavors of zenml 0.98 whose config says `is_schedulable`, and what they take:
# kubernetes, vertex, databricks and hyperai reject interval schedules.
SCHEDULE_KINDS = {
    "airflow": {"cron", "interval"},
    "azureml": {"cron", "interval"},
    "databricks": {"cron"},
    "hyperai": {"cron"},
    "kubeflow": {"cron", "interval"},
    "kubernetes": {"cron"},
    "sagemaker": {"cron", "interval"},
    "vertex": {"cron"},
}

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (name, lowest, highest, names mapped to numbers from `lowest`)
_CRON_FIELDS = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),  # 0 and 7 are both Sunday
)
_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleError(UserError, ValueError):
    """A schedule the user can fix: malformed, or not possible on the active stack."""


def _cron_value(text: str, lo: int, hi: int, names: list[str], field: str) -> int:
    upper = text.upper()
    if upper in names:
        return lo + names.index(upper)
    if not text.isdigit():
        raise ScheduleError(f"cron {field}: {text!r} is not a number")
    value = int(text)
    if not lo <= value <= hi:
        raise ScheduleError(f"cron {field}: {value} is outside {lo}-{hi}")
    return value


def _check_cron_field(text: str, field: str, lo: int, hi: int, names: list[str]) -> None:
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ScheduleError(f"cron {field}: step {step!r} must be a positive number")
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        first = _cron_value(start, lo, hi, names, field)
        if dash and _cron_value(end, lo, hi, names, field) < first:
            raise ScheduleError(f"cron {field}: range {base!r} runs backwards")


def validate_cron(expression: str) -> str:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"cron expression {expression!r} has {len(fields)} fields; expected 5: "
            "minute hour day-of-month month day-of-week, e.g. '0 3 * * 1' (Mondays 03:00)"
        )
    for text, (field, lo, hi, names) in zip(fields, _CRON_FIELDS, strict=True):
        _check_cron_field(text, field, lo, hi, names)
    return " ".join(fields)


def parse_interval(text: str) -> timedelta:
    """`90s`, `30m`, `6h`, `1d` -> a timedelta (at least one minute)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text.lower())
    if not match:
        raise ScheduleError(
            f"interval {text!r} is not a number with a unit s, m, h or d (e.g. 30m, 6h, 1d)"
        )
    seconds = int(match.group(1)) * _INTERVAL_UNITS[match.group(2)]
    if seconds < 60:
        raise ScheduleError(f"interval {text!r} is shorter than a minute")
    return timedelta(seconds=seconds)


def build_schedule(
    cron: str | None = None, every: str | None = None, now: datetime | None = None
) -> Any:
    """A ZenML Schedule from `--schedule` or `--schedule-every` (exactly one).

    An interval schedule starts now (UTC): its first run is due at once.
    """
    from zenml.config.schedule import Schedule

    if (cron is None) == (every is None):
        raise ScheduleError("give either a cron expression or an interval, not both")
    if cron is not None:
        return Schedule(cron_expression=validate_cron(cron))
    start = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return Schedule(start_time=start, interval_second=parse_interval(every or ""))


def schedule_kind(schedule: Any) -> str:
    return "cron" if schedule.cron_expression else "interval"


def check_orchestrator(flavor: str, is_schedulable: bool, schedule: Any) -> None:
    """Refuse a schedule the active orchestrator would drop or reject, before anything runs."""
    if not is_schedulable:
        names = ", ".join(sorted(SCHEDULE_KINDS))
        raise ScheduleError(
            f"the active stack's orchestrator ({flavor!r}) cannot run schedules; "
            f"switch to a stack whose orchestrator can ({names}): "
            "`zenml stack set <stack>` (docs/remote-and-schedules.md)"
        )
    kind = schedule_kind(schedule)
    kinds = SCHEDULE_KINDS.get(flavor)
    if kinds is not None and kind not in kinds:
        raise ScheduleError(
            f"orchestrator {flavor!r} takes only cron schedules: use --schedule 'CRON' "
            "instead of --schedule-every"
        )
