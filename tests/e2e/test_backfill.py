"""make backfill: six hours of a past day through Airflow's backfill API, every run ending
successful, and the day balancing in reconcile afterwards (no gap, no row lost or doubled)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import helpers
import pytest
from helpers import docker_run

pytestmark = pytest.mark.usefixtures("stack")

# a past day no other test loads, recent enough that no archive run moves it meanwhile
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=7)


def test_make_backfill_runs_six_hours_and_the_day_balances() -> None:
    first, last = DAY, DAY + timedelta(hours=5)
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
    assert checked.returncode == 0, checked.stderr
    (day,) = json.loads(checked.stdout[: checked.stdout.index("SUMMARY")])
    assert day["balanced"] and not day["problems"], day
    per_hour = int(helpers.os.environ.get("AD_API_IMPRESSIONS_PER_HOUR", "3000"))
    assert day["backup"] == 6 * per_hour


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
