"""make backfill: six hours of a past day through Airflow's backfill API, every run ending
successful, and the day balancing in reconcile afterwards (no gap, no row lost or doubled)."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import days
import helpers
import pytest
from helpers import docker_run

pytestmark = pytest.mark.usefixtures("stack")

# a past day of its own, recent enough that no archive run moves it meanwhile
DAY = days.moment("test_backfill")


def test_make_backfill_runs_six_hours_and_the_day_balances() -> None:
    first, last = DAY, DAY + timedelta(hours=5)
    # the day's hours an earlier session on this stack accepted: this test's own to clear
    helpers.query(
        "DELETE FROM accepted_gaps WHERE gap_start >= %s AND gap_end <= %s",
        (DAY, DAY + timedelta(days=1)),
    )
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "backfill",
            "DAG=api-load",
            f"FROM={first:%Y-%m-%dT%H:%M}",  # no offset: UTC
            f"TO={last:%Y-%m-%dT%H:%M}",
            "REPROCESS=completed",  # a second session on the same stack reruns them
        ],
        cwd=helpers.ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "api-load: 6 runs," in done.stdout, done.stdout
    assert "api-load: 6 of 6 runs succeeded" in done.stdout, done.stdout

    airflow = helpers.Airflow()
    runs = airflow.api(
        "GET",
        f"/dags/api-load/dagRuns?run_type=backfill&limit=50"
        f"&logical_date_gte={first:%Y-%m-%dT%H:%M:%SZ}&logical_date_lte={last:%Y-%m-%dT%H:%M:%SZ}",
    )["dag_runs"]
    assert sorted(r["state"] for r in runs) == ["success"] * 6

    checked = docker_run(
        "adpipe/archive:dev",
        "reconcile",
        "--from",
        f"{DAY:%Y-%m-%d}",
        "--to",
        f"{DAY:%Y-%m-%d}",
        "--json",
    )
    # every record of the six hours has its place; the day's other 18 hours are named, as a
    # day that holds a load is expected whole
    (day,) = json.loads(checked.stdout[: checked.stdout.index("SUMMARY")])
    assert checked.returncode == 3 and day["difference"] == 0, checked.stderr
    assert [p.split(" (")[0] for p in day["problems"]] == ["no load for 06:00-24:00 UTC"], day
    per_hour = int(helpers.os.environ.get("AD_API_IMPRESSIONS_PER_HOUR", "3000"))
    assert day["backup"] == 6 * per_hour
    helpers.balance_days("test_backfill")  # an outage with no data: accepted


def test_backfill_refuses_a_range_that_ends_before_it_starts() -> None:
    done = subprocess.run(
        [
            "python3",
            "platform/backfill.py",
            "--dag",
            "api-load",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-19",
        ],
        cwd=helpers.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "is before --from" in done.stderr, done.stderr
