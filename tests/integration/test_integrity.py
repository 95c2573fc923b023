"""Integrity at the edges: restore and reconcile check content, a load that never commits
leaves the committed quarantine alone, a damaged backup is named and repaired, and every
hostile input ends in a FAILED line with exit 2, 3 or 4, each fault injected for real."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import days
import helpers
import psycopg2
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from adpipe.table import IMPRESSION_COLUMNS
from helpers import docker_run, pg_rows

# The tests that run archive jobs are old_days (their days lie below the archive cutoffs);
# the rest run with the recent days' tests, on days above every cutoff (tests/days.py).
pytestmark = pytest.mark.usefixtures("stack")
old_days = pytest.mark.old_days

I_DAY = date(2022, 6, 1)  # loaded, archived, forged, set aside, reloaded
I_RUN = I_DAY + timedelta(days=31)  # archives days before I_DAY + 1
# above every archive cutoff: these run with the recent days' tests
Q_DAY = days.day("test_integrity", span=3, n=0)  # the quarantine of a committed load
B_DAY = days.day("test_integrity", span=3, n=1)  # a damaged backup page
V_DAY = days.day("test_integrity", span=3, n=2)  # a check violation


def moment(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def job(image: str, *args: str, **env: str) -> dict:
    return helpers.summary(docker_run(f"adpipe/{image}:dev", *args, env=env))


def window(start: datetime) -> tuple[str, ...]:
    return ("run", "--start", start.isoformat(), "--end", (start + timedelta(hours=1)).isoformat())


def reconcile(day: date) -> dict:
    done = docker_run(
        "adpipe/archive:dev",
        "reconcile",
        "--from",
        day.isoformat(),
        "--to",
        day.isoformat(),
        "--json",
        # a version written a moment ago is named at once: nothing here is still loading
        env={"RECONCILE_SETTLE_MINUTES": "0"},
    )
    result = helpers.summary(done)
    result["days"] = json.loads(done.stdout.split("SUMMARY")[0])
    return result


@pytest.fixture(scope="module")
def small_api() -> Iterator[str]:
    with helpers.served_api(0, 30, "integrity-tests") as url:  # in two processes: any port
        yield url


@pytest.fixture(scope="module")
def archived(small_api: str) -> dict:
    """I_DAY loaded from the small API and archived: its manifest row and rows."""
    helpers.restore_days(I_DAY.isoformat(), I_DAY.isoformat())
    helpers.load_window(
        moment(I_DAY), moment(I_DAY) + timedelta(days=1), env={"AD_API_URL": small_api}
    )
    rows = pg_rows(I_DAY)
    result = job("archive", "run", "--date", I_RUN.isoformat(), ARCHIVE_RETENTION_DAYS="30")
    assert result["exit_code"] == 0, result["stderr"]
    (key,) = helpers.query(
        "SELECT object_key FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL",
        (I_DAY,),
    )[0]
    return {"key": key, "rows": rows}


def forged(original: bytes) -> bytes:
    """The same number of rows, other content: every ad_id one higher."""
    table = pq.read_table(io.BytesIO(original))
    column = table.schema.get_field_index("ad_id")
    table = table.set_column(column, "ad_id", pc.add(table.column("ad_id"), 1))
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


@old_days
def test_a_forged_archive_object_is_refused_by_restore_named_by_reconcile_and_set_aside(
    archived: dict, small_api: str
) -> None:
    key, rows = archived["key"], archived["rows"]
    original = helpers.get(key)
    fake = forged(original)
    assert len(pq.read_table(io.BytesIO(fake))) == len(rows)
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=key, Body=fake)  # as the operator

    restored = job("archive", "restore", "--from", I_DAY.isoformat(), "--to", I_DAY.isoformat())
    assert restored["exit_code"] == 3, restored["stderr"]
    assert (
        f"FAILED archive: archive object s3://{helpers.bucket()}/{key} is not" in restored["stderr"]
    )
    assert f"archive set-aside --key {key}" in restored["stderr"]
    assert pg_rows(I_DAY) == [] and helpers.get(key) == fake  # nothing inserted or deleted

    checked = reconcile(I_DAY)
    assert checked["exit_code"] == 3
    assert any(key in problem for problem in checked["days"][0]["problems"]), checked["days"]

    # the command the refusal names: the object's bytes kept under set-aside/, the day's
    # rows back from its backups
    moved = job("archive", "set-aside", "--key", key)
    assert moved["exit_code"] == 0, moved["stderr"]
    assert key not in helpers.keys("archive/")
    assert helpers.get(f"set-aside/{key}") == fake
    assert helpers.query(
        "SELECT set_aside_key, restored_at IS NOT NULL FROM archive_manifest WHERE object_key = %s",
        (key,),
    ) == [(f"set-aside/{key}", True)]
    assert helpers.query(
        "SELECT action, listed FROM archive_actions WHERE object_key = %s", (key,)
    ) == [("set-aside", True)]
    helpers.load_window(
        moment(I_DAY), moment(I_DAY) + timedelta(days=1), env={"AD_API_URL": small_api}
    )
    assert pg_rows(I_DAY) == rows
    balanced = reconcile(I_DAY)
    assert balanced["exit_code"] == 0, balanced["days"]


@old_days
def test_restore_refuses_an_object_whose_row_is_in_the_table_already(archived: dict) -> None:
    result = job("archive", "run", "--date", I_RUN.isoformat(), ARCHIVE_RETENTION_DAYS="30")
    assert result["exit_code"] == 0, result["stderr"]
    (key,) = helpers.query(
        "SELECT object_key FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL",
        (I_DAY,),
    )[0]
    one = pq.read_table(io.BytesIO(helpers.get(key))).slice(0, 1).to_pylist()[0]
    helpers.query("SELECT adpipe_ensure_partition(%s)", (I_DAY,))
    helpers.query(
        "INSERT INTO ad_impressions SELECT %s::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0",
        (
            str(
                ident
                if isinstance(ident := one["impression_id"], uuid.UUID)
                else uuid.UUID(bytes=ident)
            ),
            *(one[name] for name in IMPRESSION_COLUMNS[1:]),
        ),
    )
    try:
        refused = job("archive", "restore", "--from", I_DAY.isoformat(), "--to", I_DAY.isoformat())
        assert refused["exit_code"] == 3, refused["stderr"]
        assert "1 of the" in refused["stderr"] and "already" in refused["stderr"]
        assert len(pg_rows(I_DAY)) == 1 and key in helpers.keys("archive/")
    finally:
        helpers.query(
            "DELETE FROM ad_impressions WHERE load_run_id = 0 AND shown_at >= %s AND shown_at < %s",
            (moment(I_DAY), moment(I_DAY) + timedelta(days=1)),
        )
    done = job("archive", "restore", "--from", I_DAY.isoformat(), "--to", I_DAY.isoformat())
    assert done["exit_code"] == 0 and done["rows_restored"] == len(archived["rows"]), done
    assert key not in helpers.keys("archive/")


def test_a_load_that_fails_its_gate_leaves_the_committed_rows_and_quarantine() -> None:
    start = moment(Q_DAY, 10)
    end = start + timedelta(hours=1)
    helpers.restore_days(Q_DAY.isoformat(), Q_DAY.isoformat())  # an earlier session's archive
    helpers.load_window(start, end)
    first = helpers.query(
        "SELECT load_run_id, quarantine_key, rejected FROM load_runs WHERE window_start = %s "
        "ORDER BY load_run_id DESC LIMIT 1",
        (start,),
    )[0]
    assert first[1] and first[2] > 0, "the stack's API sends some bad records every hour"
    committed_quarantine = helpers.get(first[1])
    rows = helpers.window_checksum(start, end)
    balance = reconcile(Q_DAY)["days"]

    with helpers.served_api(18098, 3000, "integrity-other-source") as other:
        extracted = job("extract_backup", *window(start), AD_API_URL=other)
    assert extracted["exit_code"] == 0 and extracted["backup_version_written"], extracted
    failed = job("load", *window(start), LOAD_MAX_REJECTED_SHARE="0")
    assert failed["exit_code"] == 3 and "nothing loaded" in failed["stderr"], failed
    named = failed["stderr"].split(f"s3://{helpers.bucket()}/", 1)[1].split(";")[0].split()[0]

    assert helpers.window_checksum(start, end) == rows
    assert helpers.get(first[1]) == committed_quarantine
    latest = helpers.query(
        "SELECT load_run_id FROM load_runs WHERE window_start = %s "
        "ORDER BY load_run_id DESC LIMIT 1",
        (start,),
    )[0][0]
    assert latest == first[0]
    # the counts are the committed load's; the one thing new is the version it refused,
    # which reconcile names until a load takes it
    (after,) = reconcile(Q_DAY)["days"]
    (before,) = balance
    newer = [p for p in after["problems"] if p not in before["problems"]]
    assert {**after, "problems": before["problems"]} == before
    assert len(newer) == 1 and "is newer than the version its latest load read" in newer[0]
    # the failed run's rejects are kept, under its own key
    assert named != first[1] and named in helpers.keys(first[1].rsplit("/", 1)[0] + "/")


def test_a_flipped_bit_in_a_backup_page_is_named_and_the_extract_repairs_it() -> None:
    start = moment(B_DAY, 10)
    end = start + timedelta(hours=1)
    helpers.restore_days(B_DAY.isoformat(), B_DAY.isoformat())  # an earlier session's archive
    helpers.load_window(start, end)
    rows = helpers.window_checksum(start, end)
    manifest = json.loads(helpers.get(helpers.backup_manifests(start, end)[-1]))
    page = manifest["pages"][1]["key"]
    stored = bytearray(helpers.get(page))
    stored[len(stored) // 2] ^= 0x10
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=page, Body=bytes(stored))

    refused = job("load", *window(start))
    assert refused["exit_code"] == 3, refused["stderr"]
    assert f"backup page s3://{helpers.bucket()}/{page} is damaged" in refused["stderr"]
    assert f"make backfill DAG=api-load FROM={B_DAY}T10:00 TO={B_DAY}T10:00" in refused["stderr"]

    repaired = job("extract_backup", *window(start))
    assert repaired["exit_code"] == 0, repaired["stderr"]
    assert repaired["pages_repaired"] == 1 and repaired["backup_version_written"], repaired
    assert helpers.get(page) == bytes(stored)  # a backup is never overwritten
    loaded = job("load", *window(start))
    assert loaded["exit_code"] == 0, loaded["stderr"]
    assert helpers.window_checksum(start, end) == rows


def test_an_api_dripping_a_byte_at_a_time_is_cut_at_the_page_deadline(fault_api: str) -> None:
    start = moment(B_DAY, 14)
    helpers.faults(fault_api, "drip:1")
    try:
        began = time.monotonic()
        result = job(
            "extract_backup",
            *window(start),
            AD_API_URL=fault_api,
            EXTRACT_PAGE_DEADLINE_SECONDS="4",
        )
        took = time.monotonic() - began
    finally:
        helpers.faults(fault_api)
    assert result["exit_code"] == 4, result["stderr"]
    assert "EXTRACT_PAGE_DEADLINE_SECONDS" in result["stderr"] and took < 30, took
    assert helpers.backup_manifests(start, start + timedelta(hours=1)) == []


def test_a_retry_after_of_5000_digits_is_capped_never_a_crash(fault_api: str) -> None:
    start = moment(B_DAY, 15)
    huge = "429:" + "9" * 5000
    helpers.faults(fault_api, huge)
    try:
        began = time.monotonic()
        waited = job(
            "extract_backup",
            *window(start),
            AD_API_URL=fault_api,
            EXTRACT_RETRY_AFTER_MAX_SECONDS="1",
        )
        took = time.monotonic() - began
        helpers.faults(fault_api, huge, huge)
        gave_up = job(
            "extract_backup",
            *window(start + timedelta(hours=1)),
            AD_API_URL=fault_api,
            EXTRACT_MAX_ATTEMPTS="2",
            EXTRACT_RETRY_AFTER_MAX_SECONDS="1",
        )
    finally:
        helpers.faults(fault_api)
    assert waited["exit_code"] == 0 and waited["api_retries"] == 1 and took < 20, waited
    assert gave_up["exit_code"] == 4 and "FAILED extract_backup:" in gave_up["stderr"]
    assert "Traceback" not in waited["stderr"] + gave_up["stderr"]


@pytest.mark.parametrize("image", ["extract_backup", "load"])
def test_a_start_outside_the_years_1_to_9999_is_an_argument_error(image: str) -> None:
    done = docker_run(
        f"adpipe/{image}:dev",
        "run",
        "--start",
        "0001-01-01T00:30:00+01:00",
        "--end",
        "0001-01-01T02:00:00Z",
    )
    assert done.returncode == 2, done.stderr
    assert "outside the years 1 to 9999" in done.stderr and "Traceback" not in done.stderr


def test_a_check_violation_in_postgresql_is_a_data_error() -> None:
    start = moment(V_DAY, 10)
    helpers.restore_days(V_DAY.isoformat(), V_DAY.isoformat())  # an earlier session's archive
    helpers.query(
        "DELETE FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s",
        (start, start + timedelta(hours=1)),
    )
    extracted = job("extract_backup", *window(start))
    assert extracted["exit_code"] == 0, extracted["stderr"]
    # on the day's own partition, so no other day's load meets it
    helpers.query("SELECT adpipe_ensure_partition(%s)", (V_DAY,))
    partition = f"ad_impressions_{V_DAY:%Y%m%d}"
    helpers.query(
        f"ALTER TABLE {partition} ADD CONSTRAINT integrity_probe CHECK (ad_id < 0) NOT VALID"
    )
    try:
        refused = job("load", *window(start))
    finally:
        helpers.query(f"ALTER TABLE {partition} DROP CONSTRAINT integrity_probe")
    assert refused["exit_code"] == 3, refused["stderr"]
    assert "FAILED load: PostgreSQL refused" in refused["stderr"]
    assert "integrity_probe" in refused["stderr"] and "Traceback" not in refused["stderr"]
    assert helpers.window_checksum(start, start + timedelta(hours=1))[0] == 0


@old_days
def test_an_object_of_unknown_content_is_set_aside_and_the_archive_goes_green() -> None:
    key = "archive/ad_impressions/notes.txt"
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=key, Body=b"not a Parquet file\n")
    run_date = I_RUN.isoformat()
    refused = job("archive", "run", "--date", run_date, ARCHIVE_RETENTION_DAYS="30")
    assert refused["exit_code"] == 3, refused["stderr"]
    assert f"archive set-aside --key {key}" in refused["stderr"]
    moved = job("archive", "set-aside", "--key", key)
    assert moved["exit_code"] == 0 and not moved["was_listed"], moved
    assert helpers.get(f"set-aside/{key}") == b"not a Parquet file\n"
    again = job("archive", "run", "--date", run_date, ARCHIVE_RETENTION_DAYS="30")
    assert again["exit_code"] == 0 and again["objects_unlisted"] == 0, again["stderr"]


@old_days  # its probe object lies under archive/, which an archive run lists
def test_a_delete_s3_refuses_for_some_keys_is_an_error_not_a_success() -> None:
    from adpipe.errors import UpstreamError
    from adpipe.settings import Settings
    from adpipe.storage import Bucket

    key = f"archive/ad_impressions/delete-probe-{time.time_ns()}.bin"
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=key, Body=b"x")
    try:
        with pytest.raises(UpstreamError, match=r"(?i)delete"):
            Bucket(Settings("extract")).delete([key])  # the extract may not touch archive/
        assert helpers.get(key) == b"x"
    finally:
        helpers.s3().delete_object(Bucket=helpers.bucket(), Key=key)


def test_a_partition_made_under_any_timezone_and_datestyle_starts_at_utc_midnight() -> None:
    conn = psycopg2.connect(os.environ["LOAD_WAREHOUSE_DSN"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET TimeZone = 'America/St_Johns'")
            cur.execute("SET DateStyle = 'SQL, DMY'")
            cur.execute("SELECT adpipe_ensure_partition('2999-12-30')")
    finally:
        conn.close()
    try:
        bounds = helpers.query(
            "SET TimeZone = 'UTC'; SELECT pg_get_expr(relpartbound, oid) FROM pg_class "
            "WHERE relname = 'ad_impressions_29991230'"
        )
        assert bounds == [
            ("FOR VALUES FROM ('2999-12-30 00:00:00+00') TO ('2999-12-31 00:00:00+00')",)
        ]
    finally:
        helpers.query("DROP TABLE IF EXISTS ad_impressions_29991230")


# loaded 03:00-21:00; the day after: nothing; the day after that: whole
G_DAY = days.day("test_integrity", span=3, n=3)


def test_reconcile_names_every_missing_hour_and_a_day_with_none_until_accepted(
    small_api: str,
) -> None:
    third = G_DAY + timedelta(days=2)
    helpers.restore_days(G_DAY.isoformat(), third.isoformat())  # an earlier session's archive
    helpers.load_window(moment(G_DAY, 3), moment(G_DAY, 21), env={"AD_API_URL": small_api})
    helpers.load_window(
        moment(third), moment(third) + timedelta(days=1), env={"AD_API_URL": small_api}
    )
    since = {"RECONCILE_EXPECT_FROM": moment(G_DAY).isoformat()}
    done = docker_run(
        "adpipe/archive:dev",
        "reconcile",
        "--from",
        G_DAY.isoformat(),
        "--to",
        third.isoformat(),
        "--json",
        env=since,
    )
    assert done.returncode == 3, done.stderr
    days = {d["day"]: d for d in json.loads(done.stdout.split("SUMMARY")[0])}
    first = [p for p in days[G_DAY.isoformat()]["problems"] if p.startswith("no load")]
    assert [p.split(" (")[0] for p in first] == [
        "no load for 00:00-03:00 UTC",
        "no load for 21:00-24:00 UTC",
    ]
    assert f"make backfill DAG=api-load FROM={G_DAY}T00:00 TO={G_DAY}T02:00" in first[0]
    empty = (G_DAY + timedelta(days=1)).isoformat()
    assert days[empty]["problems"][0].startswith(f"no load at all on {empty} (24 hours)")
    assert days[third.isoformat()]["balanced"], days[third.isoformat()]

    # the outage had nothing to fetch: accepted, as the owner, with the command the line names
    for low, high in (
        (f"{G_DAY}T00:00", f"{G_DAY}T02:00"),
        (f"{G_DAY}T21:00", f"{G_DAY + timedelta(days=1)}T23:00"),
    ):
        accepted = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "accept-gap",
                f"FROM={low}",
                f"TO={high}",
                "REASON=integrity test: an outage with no data",
            ],
            cwd=helpers.ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    try:
        again = helpers.summary(
            docker_run(
                "adpipe/archive:dev",
                "reconcile",
                "--from",
                G_DAY.isoformat(),
                "--to",
                third.isoformat(),
                env=since,
            )
        )
        assert again["exit_code"] == 0, again["stderr"]
    finally:
        helpers.query("DELETE FROM accepted_gaps WHERE reason LIKE 'integrity test:%%'")
