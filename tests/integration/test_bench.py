"""make bench runs on its own database and bucket: the quick bench leaves the warehouse's
tables and the data bucket exactly as they were on its days (tests/days.py gives them to it,
so it runs beside the other tests), and writes its results file."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from typing import Any

import days
import helpers
import pytest
from adpipe.windows import days_between

pytestmark = pytest.mark.usefixtures("stack")

FIRST, LAST = days.of("test_bench")[0]  # where make bench's windows lie
BENCH_DAYS = [day.isoformat() for day in days_between(FIRST, LAST)]


def state() -> dict[str, Any]:
    """What the warehouse and the data bucket hold of the bench's days."""
    span = (FIRST, LAST + timedelta(days=1))
    return {
        "bench_day_rows": helpers.query(
            "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s", span
        )[0][0],
        "runs": set(
            helpers.query(
                "SELECT load_run_id, window_start FROM load_runs "
                "WHERE window_start >= %s AND window_start < %s",
                span,
            )
        ),
        "archived": set(
            helpers.query(
                "SELECT archive_id, object_key FROM archive_manifest "
                "WHERE shown_date BETWEEN %s AND %s",
                (FIRST, LAST),
            )
        ),
        "objects": {
            o["Key"]: o["ETag"]
            for page in helpers.s3()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=helpers.bucket())
            for o in page.get("Contents", [])
            if any(day in o["Key"] for day in BENCH_DAYS)
        },
    }


def test_the_quick_bench_leaves_the_warehouse_and_the_data_bucket_untouched() -> None:
    before = state()
    done = subprocess.run(
        [sys.executable, "bench/bench_jobs.py", "--quick"],
        cwd=helpers.ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    after = state()
    assert after == before
    results = json.loads((helpers.ROOT / "bench" / "results" / "quick.json").read_text())
    found = {(r["job"], r["contender"]) for r in results["results"]}
    assert {("load", "adpipe"), ("load", "copy-ceiling"), ("load", "insert_rows")} <= found
    assert {("load", "dlt-merge"), ("archive", "sql_to_s3"), ("archive", "export-only")} <= found
    assert {("api-load", "adpipe"), ("archive", "adpipe")} <= found
    assert {("api-load", "dlt-rest-api"), ("load", "binary-copy-ceiling")} <= found
    assert {("extract", "adpipe"), ("extract", "fetch-ceiling")} <= found
    assert all(r["rows"] > 0 and r["rows_per_s"] > 0 for r in results["results"])
