"""The archive DAG through the stack's REST API: api-load fills two days, archive moves the old
one and its reconcile task confirms that every record has its place."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import helpers
import pytest
from helpers import docker_run

pytestmark = pytest.mark.usefixtures("stack")

# Relative to today, like the scheduler's own archive run (created when the DAG is unpaused):
# whichever runs first, both cut at today - 30 days, so OLD leaves and RECENT stays.
TODAY = datetime.now(UTC).date()
OLD, RECENT = TODAY - timedelta(days=40), TODAY - timedelta(days=5)


def day_rows(day: date) -> int:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return helpers.query(
        "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s",
        (start, start + timedelta(days=1)),
    )[0][0]


def test_archive_dag_moves_the_old_day_and_reconciles() -> None:
    # a rerun of this test restores what its first run archived, then reloads it
    restored = docker_run(
        "adpipe/archive:dev", "restore", "--from", OLD.isoformat(), "--to", OLD.isoformat()
    )
    assert restored.returncode == 0, restored.stderr
    airflow = helpers.Airflow()
    for day in (OLD, RECENT):
        logical = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
        run = airflow.run("api-load", logical, f"e2e-{day}-{uuid.uuid4().hex[:6]}")
        assert run["state"] == "success"
    loaded = day_rows(OLD)
    assert loaded > 0 and day_rows(RECENT) > 0

    run_id = f"e2e-archive-{uuid.uuid4().hex[:6]}"
    run = airflow.run("archive", datetime.now(UTC).replace(second=0, microsecond=0), run_id)
    assert airflow.task_states("archive", run_id) == {
        "archive_days": "success",
        "reconcile_days": "success",
    }
    assert run["state"] == "success"
    assert day_rows(OLD) == 0 and day_rows(RECENT) > 0
    archived = helpers.query(
        "SELECT sum(rows) FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL",
        (OLD,),
    )[0][0]
    assert archived == loaded
