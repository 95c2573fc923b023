"""make bench runs on its own database and bucket: the quick bench leaves the warehouse's
tables and the data bucket exactly as they were, and writes its results file: every contender
ran and loaded the rows adpipe loaded, each figure with its spread, beside the revision and
the job images it measured.

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
IMAGES = {"adpipe/extract_backup:dev", "adpipe/load:dev", "adpipe/archive:dev"}
LOADERS = {"copy-ceiling", "copy-ceiling-sorted", "insert_rows", "dlt-merge", "dlt-merge-csv"}
ENTRIES = {
    ("api-load", "adpipe"),
    ("api-load", "dlt-rest-api"),
    ("api-load", "dlt-rest-api-csv"),
    ("extract", "adpipe"),
    ("extract", "fetch-ceiling"),
    ("load", "adpipe"),
    *(("load", name) for name in LOADERS),
    *(("api-load", name) for name in LOADERS),
    ("archive", "adpipe"),
    ("archive", "export-only"),
    ("archive", "sql_to_s3"),
}


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
    assert results["revision"]["commit"] and "dirty" in results["revision"]
    assert set(results["images"]) == set(IMAGES)
    assert all(v["id"].startswith("sha256:") and v["created"] for v in results["images"].values())
    assert results["profile"] == "defaults"
    entries = {(r["job"], r["contender"]): r for r in results["results"]}
    assert set(entries) == ENTRIES
    # weighed where the bench may make memory cgroups (root, a delegated group); as a user
    # who is not root (as CI runs make test) it times every entry and weighs none
    figures = (
        ("seconds", "wall_seconds", "peak_mb")
        if results["weighed"]
        else ("seconds", "wall_seconds")
    )
    for r in results["results"]:
        for figure in figures:
            low, mid, high = (r[figure][k] for k in ("min", "median", "max"))
            assert 0 < low <= mid <= high, (r["job"], r["contender"], figure)
        assert r["wall_seconds"]["min"] >= r["seconds"]["min"], (r["job"], r["contender"])
        assert r["rows_reported"] == r["rows_expected"], (r["job"], r["contender"])
    # the rows as each entry reported them: every contender's are adpipe's, but for
    # dlt-rest-api's merge, which holds a row for every distinct id it received
    for (job, contender), r in entries.items():
        adpipe = entries[(job, "adpipe")]
        if contender.startswith("dlt-rest-api"):
            assert r["rows_reported"] >= adpipe["rows_reported"], contender
        else:
            assert r["rows_reported"] == adpipe["rows_reported"], (job, contender)
