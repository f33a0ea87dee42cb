"""--schedule / --schedule-every -> ZenML Schedule; which orchestrators can run it."""

from datetime import datetime, timedelta, timezone

import pytest

from utils.zenml_ops.schedules import (
    SCHEDULE_KINDS,
    ScheduleError,
    build_schedule,
    check_orchestrator,
    parse_interval,
    validate_cron,
)


@pytest.mark.parametrize(
    "expr",
    [
        "0 3 * * 1",
        "*/15 * * * *",
        "0 0 1 JAN,jul *",
        "30 2 * * MON-FRI",
        "0 9-17/2 1,15 * 0",
        "5 4 * * 7",
    ],
)
def test_valid_cron_becomes_a_cron_schedule(expr: str) -> None:
    schedule = build_schedule(cron=expr)
    assert schedule.cron_expression == expr
    assert schedule.interval_second is None and schedule.start_time is None


def test_cron_whitespace_is_normalised() -> None:
    assert validate_cron("  0   3 * *  1 ") == "0 3 * * 1"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 3 * *", "4 fields; expected 5"),
        ("0 0 3 * * 1", "6 fields"),
        ("60 3 * * 1", "minute: 60 is outside 0-59"),
        ("0 24 * * 1", "hour: 24"),
        ("0 3 0 * *", "day of month: 0"),
        ("0 3 * 13 *", "month: 13"),
        ("0 3 * * 8", "day of week: 8"),
        ("*/0 * * * *", "step '0'"),
        ("0 5-1 * * *", "runs backwards"),
        ("0 3 * * MOO", "'MOO' is not a number"),
        ("@daily", "1 fields"),
    ],
)
def test_bad_cron_is_explained(expr: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        build_schedule(cron=expr)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400), (" 2H ", 7200)],
)
def test_interval_units(text: str, seconds: int) -> None:
    assert parse_interval(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["6", "6x", "h", "-1h", "1.5h", "30s", "0m", ""])
def test_bad_interval_is_explained(text: str) -> None:
    with pytest.raises(ScheduleError, match="interval"):
        parse_interval(text)


def test_interval_schedule_starts_now_in_utc() -> None:
    now = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    schedule = build_schedule(every="6h", now=now)
    assert schedule.interval_second == timedelta(hours=6)
    assert schedule.start_time == now
    assert schedule.start_time.utcoffset() == timedelta(0)
    assert schedule.cron_expression is None


def test_exactly_one_of_cron_and_interval() -> None:
    with pytest.raises(ScheduleError):
        build_schedule()
    with pytest.raises(ScheduleError):
        build_schedule(cron="0 3 * * 1", every="6h")


def test_local_orchestrator_is_refused_with_the_ones_that_can() -> None:
    with pytest.raises(ScheduleError) as err:
        check_orchestrator("local", False, build_schedule(cron="0 3 * * 1"))
    message = str(err.value)
    assert "'local'" in message and "cannot run schedules" in message
    for flavor in ("kubernetes", "vertex", "sagemaker", "airflow", "kubeflow", "azureml"):
        assert flavor in message


def test_cron_only_orchestrators_refuse_intervals() -> None:
    every = build_schedule(every="1d")
    cron = build_schedule(cron="0 3 * * 1")
    for flavor, kinds in SCHEDULE_KINDS.items():
        check_orchestrator(flavor, True, cron)
        if "interval" in kinds:
            check_orchestrator(flavor, True, every)
        else:
            with pytest.raises(ScheduleError, match="only cron"):
                check_orchestrator(flavor, True, every)
    # A custom schedulable flavor decides for itself.
    check_orchestrator("my_custom", True, every)


def test_the_flavor_table_matches_zenml() -> None:
    """Every flavor listed is schedulable in the installed ZenML, and none is missing."""
    import importlib
    import pkgutil

    import zenml.integrations as integrations
    from zenml.orchestrators import BaseOrchestratorConfig

    found = set()
    for module in pkgutil.iter_modules(integrations.__path__):
        try:
            flavors = importlib.import_module(f"zenml.integrations.{module.name}.flavors")
        except ImportError:
            continue
        for obj in vars(flavors).values():
            if isinstance(obj, type) and obj.__name__.endswith("OrchestratorFlavor"):
                flavor = obj()
                config = flavor.config_class.model_construct()
                if isinstance(config, BaseOrchestratorConfig) and config.is_schedulable:
                    found.add(flavor.name)
    assert found == set(SCHEDULE_KINDS)
