"""The window grid and the clock (adpipe.grid), and reconcile's reading of them: which
windows and dates a job refuses, which hours reconcile expects, which windows it names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from adpipe import grid
from adpipe.errors import ConfigError
from adpipe_archive.reconcile import missing_hours, window_problems

NOW = datetime(2026, 12, 6, 12, 5, tzinfo=UTC)
H = timedelta(hours=1)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "minutes"),
    [
        (at(20, 10), at(20, 11), 60),
        (at(20, 0), at(21, 0), 60),  # a whole day in one window
        (at(20, 10, 30), at(20, 10, 45), 15),
        (at(20, 22), at(21, 0), 120),
    ],
)
def test_windows_on_the_grid_inside_one_day_that_ended_are_taken(start, end, minutes) -> None:
    grid.check_window(start, end, minutes, now=NOW)


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (at(20, 10), at(20, 10, 30), "off the grid"),  # the first half of an hour
        (at(20, 10, 30), at(20, 11, 30), "off the grid"),
        (at(20, 10) + timedelta(seconds=1), at(20, 11), "off the grid"),
        (at(20, 10), at(20, 11) - timedelta(microseconds=1), "off the grid"),
        (at(20, 23), at(21, 1), "spans two days"),
        (at(20, 0), at(22, 0), "spans two days"),
        (datetime(2026, 12, 6, 11, tzinfo=UTC), datetime(2026, 12, 6, 13, tzinfo=UTC), "not ended"),
        (datetime(2099, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, 1, tzinfo=UTC), "not ended"),
        (datetime(1969, 12, 31, 10, tzinfo=UTC), datetime(1969, 12, 31, 11, tzinfo=UTC), "1970"),
        (at(20, 11), at(20, 10), "must be after"),
    ],
)
def test_windows_off_the_grid_across_days_unended_or_outside_the_days_are_refused(
    start, end, words
) -> None:
    with pytest.raises(ConfigError, match=words) as refused:
        grid.check_window(start, end, 60, now=NOW)
    assert refused.value.exit_code == 2


def test_a_refused_window_names_the_grid_with_a_window_that_keeps_it() -> None:
    with pytest.raises(ConfigError) as refused:
        grid.check_window(at(20, 10), at(20, 10, 30), 60, now=NOW)
    assert "WINDOW_MINUTES=60" in refused.value.hint
    assert "--start 2026-11-20T10:00:00Z --end 2026-11-20T11:00:00Z" in refused.value.hint


@pytest.mark.parametrize("run_date", [date(2026, 12, 8), date(2099, 1, 1)])
def test_an_archive_date_after_tomorrow_is_refused(run_date: date) -> None:
    with pytest.raises(ConfigError, match="later than tomorrow") as refused:
        grid.check_run_date(run_date, 30, today=NOW.date())
    assert "--date 2026-12-06" in refused.value.hint


def test_tomorrow_is_the_latest_run_date_and_its_cutoff_spares_yesterday() -> None:
    cutoff = grid.check_run_date(date(2026, 12, 7), 2, today=NOW.date())
    assert cutoff == date(2026, 12, 5)  # days before it move: yesterday, 12-05, stays


def test_an_archive_date_whose_cutoff_lies_before_1970_is_refused() -> None:
    with pytest.raises(ConfigError, match="1970-01-01"):
        grid.check_run_date(date(1970, 1, 20), 30, today=NOW.date())


def test_a_day_loaded_from_03_to_06_misses_its_other_21_hours_whenever_it_was() -> None:
    day = datetime(2020, 3, 1, tzinfo=UTC)
    loaded = [(day + h * H, day + (h + 1) * H) for h in (3, 4, 5)]
    missing = missing_hours((day, day + 24 * H), loaded, [], expect_from=NOW, now=NOW)
    assert [h.hour for h in missing] == [0, 1, 2, *range(6, 24)]
    # an accepted gap excuses its hours
    excused = missing_hours((day, day + 24 * H), loaded, [(day, day + 3 * H)], NOW, NOW)
    assert [h.hour for h in excused] == list(range(6, 24))


def test_a_day_with_no_load_before_expect_from_is_not_expected() -> None:
    day = datetime(2020, 3, 1, tzinfo=UTC)
    assert missing_hours((day, day + 48 * H), [], [], expect_from=NOW, now=NOW) == []


def test_todays_hours_are_expected_only_an_hour_after_they_ended() -> None:
    today = datetime(2026, 12, 6, tzinfo=UTC)
    missing = missing_hours(
        (today, today + 24 * H), [(today + 9 * H, today + 10 * H)], [], NOW, NOW
    )
    assert [h.hour for h in missing] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]


def test_off_grid_and_overlapping_windows_are_named_with_the_retire_command() -> None:
    hour, half = (at(20, 10), at(20, 11)), (at(20, 10), at(20, 10, 30))
    found = window_problems({hour, half}, 60)
    (problems,) = found.values()
    assert any("10:00-10:30 UTC is off the grid" in p for p in problems)
    assert any(
        "overlap" in p
        and "archive retire --start 2026-11-20T10:00:00Z --end 2026-11-20T10:30:00Z" in p
        for p in problems
    )
    assert window_problems({hour, (at(20, 11), at(20, 12))}, 60) == {}
