"""DAG runs through the stack's REST API: the scheduler, the DockerOperator and the job images."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import days
import helpers
import pytest
from adpipe.windows import backup_prefix

pytestmark = pytest.mark.usefixtures("stack")

TABLE = "warehouse.public.ad_impressions"


def test_smoke_dag_runs_each_job_image_through_the_docker_operator() -> None:
    airflow = helpers.Airflow()
    run_id = f"e2e-smoke-{uuid.uuid4().hex[:8]}"
    run = airflow.run("adpipe-smoke", datetime(2026, 11, 1, tzinfo=UTC), run_id)
    assert run["state"] == "success", airflow.task_states("adpipe-smoke", run_id)
    assert airflow.task_states("adpipe-smoke", run_id) == {
        "check_extract_backup": "success",
        "check_load": "success",
        "check_archive": "success",
    }


def test_api_load_run_loads_exactly_the_valid_unique_records_of_its_window() -> None:
    airflow = helpers.Airflow()
    run_id = f"e2e-api-load-{uuid.uuid4().hex[:8]}"
    # a recent hour (10:00-11:00): the archive DAG, once unpaused, moves anything older
    # than 30 days
    hour = days.moment("test_dag_runs", hour=11)
    run = airflow.run("api-load", hour, run_id)
    assert run["state"] == "success", airflow.explain("api-load", run_id)
    assert airflow.task_states("api-load", run_id) == {
        "extract_backup": "success",
        "load_impressions": "success",
    }
    start = datetime.fromisoformat(run["data_interval_start"])
    end = datetime.fromisoformat(run["data_interval_end"])
    assert (end - start).total_seconds() == 3600
    # each task's XCom is its job's SUMMARY, as a dict, with the image's version
    summary = airflow.api(
        "GET",
        f"/dags/api-load/dagRuns/{run_id}/taskInstances/load_impressions/xcomEntries/return_value",
    )["value"]
    assert summary["job"] == "load" and summary["status"] == "ok", summary
    assert summary["image_version"].startswith("0.") and "+" in summary["image_version"]
    assert summary["rows_written"] == helpers.window_checksum(start, end)[0]
    # the run's asset events carry its window, rows and backup version, read back by REST
    events = {
        name: [
            e
            for e in airflow.api(
                "GET", f"/assets/events?source_run_id={run_id}&order_by=-timestamp"
            )["asset_events"]
            if e["name"] == asset
        ]
        for name, asset in (("backup", "ad_impressions_backup"), ("table", "ad_impressions"))
    }
    (table_event,) = events["table"]
    assert table_event["extra"]["window"] == summary["window"], table_event
    assert table_event["extra"]["rows_written"] == summary["rows_written"]
    assert table_event["extra"]["manifest"] == summary["manifest"]
    (backup_event,) = events["backup"]
    assert backup_event["extra"]["manifest"] == summary["manifest"], backup_event
    assert backup_event["extra"]["records"] > 0

    # OpenLineage: the extract wrote the window's backup prefix, the load read it and wrote
    # the table, as many rows as its SUMMARY says, each run tagged with its image's version
    window = ("s3://ad-data", backup_prefix(start, end).rstrip("/"))
    table = (f"postgres://127.0.0.1:{os.environ['POSTGRES_PORT']}", TABLE)
    extracted = helpers.lineage_events(run_id, "extract_backup", "COMPLETE")
    assert [(d["namespace"], d["name"]) for d in extracted["outputs"]] == [window], extracted
    assert extracted["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] > 0
    loaded = helpers.lineage_events(run_id, "load_impressions", "COMPLETE")
    assert [(d["namespace"], d["name"]) for d in loaded["inputs"]] == [window], loaded
    # the table, then the run's quarantine when it set records aside
    expected = [(table, summary["rows_written"])]
    if summary["quarantine"]:
        key = summary["quarantine"].removeprefix("s3://ad-data/")
        expected.append((("s3://ad-data", key), summary["rejected"]))
    outputs = [
        ((d["namespace"], d["name"]), d["outputFacets"]["outputStatistics"]["rowCount"])
        for d in loaded["outputs"]
    ]
    assert outputs == expected, loaded
    tags = {t["key"]: t["value"] for t in loaded["run"]["facets"]["tags"]["tags"]}
    assert tags["image_version"] == summary["image_version"], tags
    assert tags["image"] == "adpipe/load:dev", tags

    # the pages as the DAG's extract asked for them: the stack's EXTRACT_PAGE_SIZE (.env)
    pages = helpers.api_pages(start, end, limit=int(os.environ["EXTRACT_PAGE_SIZE"]))
    unique: set[str] = set()
    for body in pages:
        for record in json.loads(body)["impressions"]:
            try:
                moment = datetime.fromisoformat(record["shown_at"])
                ok = (
                    len(record["impression_id"]) == 36
                    and int(record["cost_micros"]) >= 0
                    and record["currency"] != "XXQ"
                    and moment.tzinfo is not None
                    and start <= moment < end
                )
                uuid.UUID(record["impression_id"])
            except (KeyError, ValueError):
                ok = False
            if ok:
                unique.add(record["impression_id"])
    assert helpers.window_checksum(start, end)[0] == len(unique) > 0

    assert helpers.backup_pages(start, end) == pages


@pytest.mark.alone
def test_a_task_whose_job_exits_3_fails_at_once_without_retries() -> None:
    airflow = helpers.Airflow()
    # an hour of a day older than the retention: loaded by a first run, then archived, so a
    # second run's load refuses it (exit 3: loading it again would hold its rows twice)
    hour = days.moment("test_dag_runs", span=1, hour=11)
    helpers.restore_days(hour.date().isoformat(), hour.date().isoformat())  # an earlier session's
    first = airflow.run("api-load", hour, f"e2e-exit3-first-{uuid.uuid4().hex[:8]}")
    assert first["state"] == "success"
    day = datetime.fromisoformat(first["data_interval_start"]).date()
    today = days.TODAY.isoformat()
    archived = helpers.summary(helpers.docker_run("adpipe/archive:dev", "run", "--date", today))
    assert archived["exit_code"] == 0, archived
    try:
        run_id = f"e2e-exit3-{uuid.uuid4().hex[:8]}"
        run = airflow.run("api-load", hour, run_id, timeout=300)
        assert run["state"] == "failed"
        task = airflow.api("GET", f"/dags/api-load/dagRuns/{run_id}/taskInstances/load_impressions")
        # the DAG's default is 3 retries: a job's exit 3 uses none of them
        assert (task["state"], task["try_number"]) == ("failed", 1), task
        # its OpenLineage FAIL event carries the job's FAILED line, and writes nothing
        failed = helpers.lineage_events(run_id, "load_impressions", "FAIL")
        message = failed["run"]["facets"]["errorMessage"]["message"]
        assert "FAILED load: " in message and "archived" in message, message
        assert failed["outputs"] == [], failed
    finally:
        helpers.restore_days(day.isoformat(), day.isoformat())
