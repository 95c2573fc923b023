"""The alarm that does not depend on Airflow's scheduler: with the scheduler stopped and the
threshold set low, Prometheus and Alertmanager send one alert to a webhook; once a load
commits again, one recovery."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class Webhook:
    """The notifier's webhook as the test's: every POST's JSON, kept."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self) -> list[str]:
        return [
            m["status"]
            for m in self.received
            if any(a["labels"].get("alertname") == ALERT for a in m.get("alerts", []))
        ]

    def wait_for(self, status: str, within: float) -> None:
        deadline = time.monotonic() + within
        while status not in self.statuses():
            assert time.monotonic() < deadline, f"no {status} alert in {within} s: {self.received}"
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
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        helpers.compose("start", "airflow-scheduler")
        monitors()  # .env's own threshold and webhook again
        helpers.wait_healthy("airflow-scheduler", timeout=180)


def test_no_load_alerts_once_without_the_scheduler_and_recovers_once(webhook: Webhook) -> None:
    airflow = helpers.Airflow()
    load_an_hour(airflow, 1)  # a fresh load: the alarm starts quiet
    monitors(
        ALARM_NO_LOAD_MINUTES=THRESHOLD_MINUTES,
        MONITOR_INTERVAL_SECONDS=INTERVAL,
        ALERT_WEBHOOK=f"http://127.0.0.1:{WEBHOOK_PORT}/alerts",
    )
    assert helpers.compose("stop", "airflow-scheduler").returncode == 0
    webhook.wait_for("firing", FIRE_WITHIN)
    assert webhook.statuses() == ["firing"]

    assert helpers.compose("start", "airflow-scheduler").returncode == 0
    helpers.wait_healthy("airflow-scheduler", timeout=180)
    load_an_hour(airflow, 2)
    webhook.wait_for("resolved", RESOLVE_WITHIN)
    assert webhook.statuses() == ["firing", "resolved"]
