"""The alarm that does not depend on Airflow's scheduler: with the scheduler stopped and the
threshold set low, Prometheus and Alertmanager send one alert to a webhook; once a load
commits again, one recovery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import days
import helpers
import pytest

pytestmark = [pytest.mark.usefixtures("stack"), pytest.mark.alone]

WEBHOOK_PORT = 18094
THRESHOLD_MINUTES = "1"
INTERVAL = "3"  # seconds between scrapes and evaluations (15 in .env): the same rule, sooner
FIRE_WITHIN = 240  # the threshold, a scrape and an evaluation, group_wait, and slack
RESOLVE_WITHIN = 180  # a scrape, an evaluation, group_interval (twice the interval), slack
ALERT = "AdpipeNoHourLoaded"


def statuses(posts: list[dict]) -> list[str]:
    """The status of each of the alarm's messages the webhook received, in order."""
    return [
        m["status"]
        for m in posts
        if any(a["labels"].get("alertname") == ALERT for a in m.get("alerts", []))
    ]


def wait_for(posts: list[dict], status: str, within: float) -> None:
    deadline = time.monotonic() + within
    while status not in statuses(posts):
        assert time.monotonic() < deadline, f"no {status} alert in {within} s: {posts}"
        time.sleep(2)


def monitors(**settings: str) -> None:
    """Prometheus and Alertmanager made anew with ``settings`` over .env's."""
    recreate = ("up", "-d", "--force-recreate", "--no-deps", "prometheus", "alertmanager")
    done = helpers.compose(*recreate, timeout=120, env=settings)
    assert done.returncode == 0, done.stderr
    for service in ("prometheus", "alertmanager"):
        helpers.wait_healthy(service, timeout=60)


def load_an_hour(airflow: helpers.Airflow, hour: int) -> None:
    """api-load of one of the module's hours through Airflow (so the scheduler must run)."""
    end = days.moment("test_alarm", hour=hour) + timedelta(hours=1)
    run_id = f"test_alarm_{hour:02d}"
    airflow.trigger("api-load", end, run_id)
    state = airflow.wait("api-load", [run_id], timeout=300)[run_id]
    assert state == "success", airflow.explain("api-load", run_id)


@pytest.fixture
def webhook() -> Iterator[list[dict]]:
    try:
        with helpers.webhook(WEBHOOK_PORT) as posts:
            yield posts
    finally:
        helpers.compose("start", "airflow-scheduler")
        monitors()  # .env's own threshold and webhook again
        helpers.wait_healthy("airflow-scheduler", timeout=180)


def test_no_load_alerts_once_without_the_scheduler_and_recovers_once(webhook: list[dict]) -> None:
    airflow = helpers.Airflow()
    load_an_hour(airflow, 1)  # a fresh load: the alarm starts quiet
    monitors(
        ALARM_NO_LOAD_MINUTES=THRESHOLD_MINUTES,
        MONITOR_INTERVAL_SECONDS=INTERVAL,
        ALERT_WEBHOOK=f"http://127.0.0.1:{WEBHOOK_PORT}/alerts",
    )
    assert helpers.compose("stop", "airflow-scheduler").returncode == 0
    wait_for(webhook, "firing", FIRE_WITHIN)
    assert statuses(webhook) == ["firing"]

    assert helpers.compose("start", "airflow-scheduler").returncode == 0
    helpers.wait_healthy("airflow-scheduler", timeout=180)
    load_an_hour(airflow, 2)
    wait_for(webhook, "resolved", RESOLVE_WITHIN)
    assert statuses(webhook) == ["firing", "resolved"]
