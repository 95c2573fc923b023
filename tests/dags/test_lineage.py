"""A job task's OpenLineage datasets, named by the OpenLineage naming spec from its SUMMARY and
the environment its task handed the job; never a secret of that environment."""

from __future__ import annotations

from adpipe_dags.jobs import failed_line
from adpipe_dags.lineage import job_lineage
from openlineage.client.serde import Serde

PASSWORD = "p#/@%w0rd"  # noqa: S105 - made up for the test
ENV = {
    "LOAD_WAREHOUSE_DSN": "postgresql://loader:p%23%2F%40%25w0rd@db.internal/ware%2Dhouse",
    "LOAD_AWS_SECRET_ACCESS_KEY": PASSWORD,
    "S3_BUCKET": "ad-data",
}
MANIFEST = "s3://ad-data/backup/impressions/date=2026-11-20/window=A-B/manifest-000002.json"
LOADED = {
    "job": "load",
    "image_version": "0.1.0+abc",
    "status": "ok",
    "exit_code": 0,
    "pages": 3,
    "received": 3000,
    "rejected": 6,
    "rows_written": 2983,
    "manifest": MANIFEST,
    "quarantine": "s3://ad-data/quarantine/impressions/date=2026-11-20/window=A-B/run-7.jsonl.gz",
}


def names(datasets: list) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_a_load_reads_its_window_and_writes_the_table_and_its_quarantine() -> None:
    lineage = job_lineage("adpipe/load:dev", "run", LOADED, ENV)
    window = ("s3://ad-data", "backup/impressions/date=2026-11-20/window=A-B")
    assert names(lineage.inputs) == [window]
    assert names(lineage.outputs) == [
        ("postgres://db.internal:5432", "ware-house.public.ad_impressions"),
        ("s3://ad-data", "quarantine/impressions/date=2026-11-20/window=A-B/run-7.jsonl.gz"),
    ]
    rows = [o.outputFacets["outputStatistics"].rowCount for o in lineage.outputs]
    assert rows == [2983, 6]
    tags = {t.key: t.value for t in lineage.run_facets["tags"].tags}
    assert tags == {"image": "adpipe/load:dev", "image_version": "0.1.0+abc", "exit_code": "0"}
    everything = "".join(Serde.to_json(d) for d in [*lineage.inputs, *lineage.outputs])
    assert "loader" not in everything and "w0rd" not in everything


def test_a_failed_job_wrote_nothing_and_its_failed_line_is_found() -> None:
    failed = {"job": "load", "image_version": "0.1.0+abc", "status": "failed", "exit_code": 3}
    lineage = job_lineage("adpipe/load:dev", "run", failed, ENV)
    assert lineage.outputs == [] and names(lineage.inputs) == [
        ("s3://ad-data", "backup/impressions")
    ]
    logs = [b"2026 INFO load: reading", "FAILED load: no backup -- run the extract", "SUMMARY {}"]
    assert failed_line(logs) == "FAILED load: no backup -- run the extract"
    assert failed_line(["no failure here"]) is None


def test_a_job_without_datasets_still_names_its_image() -> None:
    lineage = job_lineage("adpipe/archive:dev", "check", {"status": "ok", "image_version": "1"}, {})
    assert lineage.inputs == lineage.outputs == []
    assert {t.key for t in lineage.run_facets["tags"].tags} == {"image", "image_version"}
