"""The window grid and the clock: which windows, days and run dates a job accepts.

api-load's windows lie on one grid, WINDOW_MINUTES long (60: whole UTC hours; the api-load
DAG schedules the same step). A window starts and ends on the grid, inside one UTC day, and
has ended; a window of several steps is a window too (a backfill of a whole day in one run),
but no two windows of a day overlap: reconcile counts each window's backup once, so two
windows holding the same records would count them twice. Days lie between FIRST_DAY and
LAST_DAY, and an archive's run date is no later than tomorrow, so its cutoff never reaches a
day the hourly loads still write. Each refusal is a `ConfigError` (exit 2: the caller's
argument is wrong, and a retry would not help) that names the rule and a window that keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from adpipe.errors import ConfigError

DAY = timedelta(days=1)
# steps that tile an hour or a day exactly, so every window lies inside one UTC day
STEPS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440)
# the days adpipe holds: from the Unix epoch (the day locks count from it) to the last day
# whose next day Python still represents (a window's end, a reconcile's upper bound)
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)


def cron(minutes: int) -> str:
    """The cron schedule whose intervals are the grid's windows."""
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = minutes // 60
    return {1: "0 * * * *", 24: "0 0 * * *"}.get(hours, f"0 */{hours} * * *")


def on_grid(moment: datetime, minutes: int) -> bool:
    moment = moment.astimezone(UTC)
    whole = moment.second == 0 and moment.microsecond == 0
    return whole and (moment.hour * 60 + moment.minute) % minutes == 0


def check_window(start: datetime, end: datetime, minutes: int, now: datetime | None = None) -> None:
    """Refuse a window that is empty, off the grid, spans two days, lies outside the days
    adpipe holds, or has not ended (``now``: the clock)."""
    if end <= start:
        raise ConfigError(f"--end ({end.isoformat()}) must be after --start ({start.isoformat()})")
    day = start.astimezone(UTC).date()
    check_days(day, day, "--start")
    example = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    grid = (
        f"windows start and end on the grid of WINDOW_MINUTES={minutes} minutes from 00:00 UTC, "
        f"inside one UTC day: e.g. --start {example:%Y-%m-%dT%H:%M:%SZ} "
        f"--end {example + timedelta(minutes=minutes):%Y-%m-%dT%H:%M:%SZ}"
    )
    if not (on_grid(start, minutes) and on_grid(end, minutes)):
        raise ConfigError(
            f"the window {start.isoformat()} to {end.isoformat()} is off the grid", grid
        )
    if end.astimezone(UTC) > datetime(day.year, day.month, day.day, tzinfo=UTC) + DAY:
        raise ConfigError(
            f"the window {start.isoformat()} to {end.isoformat()} spans two days "
            "(reconcile counts a window's records on its start's day)",
            grid,
        )
    now = now or datetime.now(UTC)
    if end > now:
        raise ConfigError(
            f"the window {start.isoformat()} to {end.isoformat()} has not ended "
            f"(it is {now:%Y-%m-%dT%H:%M:%SZ}); its records are not all there yet",
            "run it once it has ended (the api-load DAG does)",
        )


def check_days(first: date, last: date, what: str = "--from/--to") -> None:
    """Refuse days outside FIRST_DAY to LAST_DAY, naming the range."""
    for day in (first, last):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise ConfigError(
                f"{what} {day.isoformat()} lies outside the days adpipe holds, "
                f"{FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"
            )


def check_run_date(run_date: date, retention_days: int, today: date | None = None) -> date:
    """The archive's cutoff for ``run_date``: refused when the date is later than tomorrow
    (a typo that would archive the days still loading) or its cutoff lies before FIRST_DAY."""
    today = today or datetime.now(UTC).date()
    if run_date > today + DAY:
        raise ConfigError(
            f"--date {run_date.isoformat()} is later than tomorrow ({(today + DAY).isoformat()}): "
            "its cutoff would move days whose hours are still loading",
            f"give the run's date, today or earlier: --date {today.isoformat()}",
        )
    check_days(run_date, run_date, "--date")
    if run_date - timedelta(days=retention_days) < FIRST_DAY:
        raise ConfigError(
            f"--date {run_date.isoformat()} less ARCHIVE_RETENTION_DAYS={retention_days} lies "
            f"before {FIRST_DAY.isoformat()}, the first day adpipe holds: nothing is that old"
        )
    return run_date - timedelta(days=retention_days)


def overlapping(
    windows: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The windows other than ``[start, end)`` itself that share a moment with it, sorted."""
    return sorted(
        {(low, high) for low, high in windows if low < end and high > start} - {(start, end)}
    )


def refuse_overlaps(
    windows: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime, where: str
) -> None:
    """`ConfigError` naming the first window of ``where`` (backed up, loaded) that overlaps."""
    found = overlapping(windows, start, end)
    if found:
        low, high = found[0]
        raise ConfigError(
            f"the window {start.isoformat()} to {end.isoformat()} overlaps the window "
            f"{low.isoformat()} to {high.isoformat()} {where} before: reconcile would count "
            "their records twice",
            f"run that window instead (--start {low.isoformat()} --end {high.isoformat()}), or, "
            "if it is the wrong one, retire it first (its backup and rows stay; reconcile stops "
            f"counting it): archive retire --start {low.isoformat()} --end {high.isoformat()} "
            "--reason ...",
        )
