"""The api-load DAG's data intervals are the jobs' window grid, for every WINDOW_MINUTES the
jobs accept: each scheduled interval starts and ends on the grid, inside one UTC day, one
step long, and the jobs accept it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
import pytest
from adpipe import grid


@pytest.mark.parametrize("minutes", grid.STEPS)
def test_the_schedule_of_every_step_is_the_grid_the_jobs_accept(
    minutes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adpipe_dags.jobs import window_cron
    from airflow.timetables.interval import CronDataIntervalTimetable

    monkeypatch.setenv("ADPIPE_WINDOW_MINUTES", str(minutes))
    assert window_cron() == grid.cron(minutes)
    timetable = CronDataIntervalTimetable(window_cron(), timezone="UTC")
    moment = pendulum.instance(datetime(2026, 11, 20, 23, 7, tzinfo=UTC))
    for _ in range(3):
        interval = timetable.infer_manual_data_interval(run_after=moment)
        start, end = interval.start, interval.end
        assert end - start == timedelta(minutes=minutes), (start, end)
        grid.check_window(start, end, minutes, now=end)  # the jobs take it
        moment = end + timedelta(minutes=minutes, seconds=1)
