"""Deadline alerts, on the Celery tier's stack (`make test-celery` starts it with
API_LOAD_DEADLINE_MINUTES=1 and ALERT_WEBHOOK pointing at the receiver here): an api-load run
still going at its deadline makes the notifier POST once, naming its window; a run done in
time makes none. The late run is held past its deadline the way a slow source would hold it:
its load waits on the day's lock (the archive's), tries again, and finishes once it goes."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import days
import helpers
import pytest

pytestmark = pytest.mark.usefixtures("stack")

RECEIVER_PORT = 18097  # the Makefile's CELERY_TIMERS point ALERT_WEBHOOK here


def deadline_alerts(posts: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [p for p in posts if p.get("alert") == "deadline" and p.get("run_id") == run_id]


def test_a_run_past_its_deadline_alerts_once_naming_its_window_and_one_in_time_none() -> None:
    airflow = helpers.Airflow()
    day = days.moment("test_deadline", n=1)  # and the day before it
    stamp = int(time.time())
    on_time, late = f"deadline-on-time-{stamp}", f"deadline-late-{stamp}"
    late_start = day + timedelta(hours=15)
    with helpers.webhook(RECEIVER_PORT) as posts:
        # the day's lock held until the alert came; then the load's next try goes through.
        # The run in time runs meanwhile, on the day before, which nothing holds.
        with helpers.day_locked(day.date()):
            airflow.trigger("api-load", late_start + timedelta(hours=1), late)
            run = airflow.run("api-load", day - timedelta(hours=6), on_time)
            assert run["state"] == "success", airflow.task_states("api-load", on_time)
            deadline = time.monotonic() + 180  # the deadline is 60 s after the run is queued
            while not deadline_alerts(posts, late):
                assert time.monotonic() < deadline, (posts, airflow.task_states("api-load", late))
                time.sleep(1)
        state = airflow.wait("api-load", [late], timeout=300)[late]
        assert state == "success", airflow.task_states("api-load", late)
        time.sleep(5)  # a second alert for the same run would have come by now

    (alert,) = deadline_alerts(posts, late)
    assert alert["dag_id"] == "api-load"
    window = [datetime.fromisoformat(t) for t in alert["window"]]
    assert window == [late_start, late_start + timedelta(hours=1)], alert
    assert deadline_alerts(posts, on_time) == [], posts
