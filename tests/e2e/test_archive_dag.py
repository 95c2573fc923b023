"""The archive DAG through the stack's REST API: api-load fills two days, archive moves the old
one and its reconcile task confirms that every record has its place."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import days
import helpers
import pytest
from helpers import docker_run

pytestmark = [pytest.mark.usefixtures("stack"), pytest.mark.alone]

# Relative to today, like the scheduler's own archive run (created when the DAG is unpaused):
# whichever runs first, both cut at today - 30 days, so OLD leaves and RECENT stays.
RECENT, OLD = days.day("test_archive_dag", 0), days.day("test_archive_dag", 1)


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
    loads = {
        f"e2e-{day}-{uuid.uuid4().hex[:6]}": datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
        for day in (OLD, RECENT)
    }
    for run_id, run in airflow.run_all("api-load", loads).items():
        assert run["state"] == "success", airflow.explain("api-load", run_id)
    loaded = day_rows(OLD)
    assert loaded > 0 and day_rows(RECENT) > 0
    helpers.balance_days("test_archive_dag")  # reconcile expects each day whole

    run_id = f"e2e-archive-{uuid.uuid4().hex[:6]}"
    run = airflow.run("archive", datetime.now(UTC).replace(second=0, microsecond=0), run_id)
    assert airflow.task_states("archive", run_id) == {
        "archive_days": "success",
        "reconcile_days": "success",
    }, airflow.explain("archive", run_id)
    assert run["state"] == "success"
    assert day_rows(OLD) == 0 and day_rows(RECENT) > 0
    archived = helpers.query(
        "SELECT sum(rows) FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL",
        (OLD,),
    )[0][0]
    assert archived == loaded

    # the nightly verdict is an asset event with each day's counts, read back by REST
    (event,) = [
        e
        for e in airflow.api("GET", f"/assets/events?source_run_id={run_id}")["asset_events"]
        if e["name"] == "ad_impressions_reconciled"
    ]
    days = {d["day"]: d for d in event["extra"]["day_results"]}
    assert len(days) == event["extra"]["days"] == event["extra"]["balanced"] > 0, event
    assert (days[OLD.isoformat()]["archive"], days[OLD.isoformat()]["postgres"]) == (loaded, 0)
    assert days[RECENT.isoformat()]["postgres"] == day_rows(RECENT)

    # OpenLineage: the archive read the table and wrote the archive, as many rows as it says
    summary = airflow.api(
        "GET", f"/dags/archive/dagRuns/{run_id}/taskInstances/archive_days/xcomEntries/return_value"
    )["value"]
    lineage = helpers.lineage_events(run_id, "archive_days", "COMPLETE")
    (output,) = lineage["outputs"]
    assert (output["namespace"], output["name"]) == ("s3://ad-data", "archive/ad_impressions")
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == summary["rows_archived"]
    assert summary["rows_archived"] >= loaded
    (source,) = lineage["inputs"]
    assert source["name"] == "warehouse.public.ad_impressions", lineage
