"""make bench runs on its own database and bucket: the quick bench leaves the warehouse's
tables and the data bucket exactly as they were, and writes its results file."""

from __future__ import annotations

import json
import subprocess
import sys

import helpers
import pytest

pytestmark = pytest.mark.usefixtures("stack")


def state() -> tuple[list, dict[str, str]]:
    tables = helpers.query(
        "SELECT (SELECT count(*) FROM ad_impressions), (SELECT count(*) FROM load_runs), "
        "(SELECT count(*) FROM archive_manifest), "
        "(SELECT count(*) FROM pg_inherits WHERE inhparent = 'ad_impressions'::regclass)"
    )
    objects = {}
    client = helpers.s3()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=helpers.bucket()):
        objects.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return tables, objects


def test_the_quick_bench_leaves_the_warehouse_and_the_data_bucket_untouched() -> None:
    before = state()
    done = subprocess.run(
        [sys.executable, "tests/bench/bench_jobs.py", "--quick"],
        cwd=helpers.ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert state() == before
    results = json.loads((helpers.ROOT / "bench" / "results" / "quick.json").read_text())
    found = {(r["job"], r["contender"]) for r in results["results"]}
    assert {("load", "adpipe"), ("load", "copy-ceiling"), ("load", "insert_rows")} <= found
    assert {("api-load", "adpipe"), ("archive", "adpipe")} <= found
    assert all(r["rows"] > 0 and r["rows_per_s"] > 0 for r in results["results"])
