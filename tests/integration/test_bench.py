"""make bench runs on its own database and bucket: the quick bench leaves the warehouse's
tables and the data bucket exactly as they were, and writes its results file.

It needs PostgreSQL and S3, not Airflow: `make test` runs it beside the Celery tier (whose
DAG runs only add to the warehouse and the bucket, as any run of the product's DAGs may)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import helpers
import pytest

pytestmark = [pytest.mark.usefixtures("stores"), pytest.mark.alone]


BENCH_DAYS = [f"2026-08-0{n}" for n in range(1, 8)]  # where make bench's windows lie
BENCH_PATH = "tests:platform:dags"  # what it imports beside the venv's, as `make bench` runs it


def state() -> dict[str, Any]:
    return {
        "bench_day_rows": helpers.query(
            "SELECT count(*) FROM ad_impressions "
            "WHERE shown_at >= '2026-08-01T00:00Z' AND shown_at < '2026-08-08T00:00Z'"
        )[0][0],
        "runs": set(helpers.query("SELECT load_run_id, window_start FROM load_runs")),
        "archived": set(helpers.query("SELECT archive_id, object_key FROM archive_manifest")),
        "restored": {
            key
            for (key,) in helpers.query(
                "SELECT object_key FROM archive_manifest WHERE restored_at IS NOT NULL"
            )
        },
        "objects": {
            o["Key"]: o["ETag"]
            for page in helpers.s3()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=helpers.bucket())
            for o in page.get("Contents", [])
        },
    }


def test_the_quick_bench_leaves_the_warehouse_and_the_data_bucket_untouched() -> None:
    before = state()
    done = subprocess.run(
        [sys.executable, "bench/bench_jobs.py", "--quick"],
        cwd=helpers.ROOT,
        env={**os.environ, "PYTHONPATH": BENCH_PATH},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    after = state()
    # the product's DAGs and the Celery tier's tests may run meanwhile: they add, for their own
    # days, and remove only an archive object a restore has put back (its manifest row says so)
    assert after["bench_day_rows"] == before["bench_day_rows"]
    assert before["runs"] <= after["runs"]
    assert not any(
        start.date().isoformat() in BENCH_DAYS for _, start in after["runs"] - before["runs"]
    )
    assert before["archived"] <= after["archived"]
    for key, etag in before["objects"].items():
        if key not in after["objects"] and key in after["restored"]:
            continue
        assert after["objects"].get(key) == etag, key
    added = after["objects"].keys() - before["objects"].keys()
    assert not [k for k in added if any(day in k for day in BENCH_DAYS)]
    results = json.loads((helpers.ROOT / "bench" / "results" / "quick.json").read_text())
    found = {(r["job"], r["contender"]) for r in results["results"]}
    assert {("load", "adpipe"), ("load", "copy-ceiling"), ("load", "insert_rows")} <= found
    assert {("load", "dlt-merge"), ("archive", "sql_to_s3"), ("archive", "export-only")} <= found
    assert {("api-load", "adpipe"), ("archive", "adpipe")} <= found
    assert {("api-load", "dlt-rest-api"), ("load", "binary-copy-ceiling")} <= found
    assert {("extract", "adpipe"), ("extract", "fetch-ceiling")} <= found
    assert all(r["rows"] > 0 and r["rows_per_s"] > 0 for r in results["results"])
