"""extract_backup and load as containers against the real PostgreSQL, S3 and ad API."""

from __future__ import annotations

import gzip
import json
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import helpers
import pytest
from adpipe.windows import backup_prefix
from helpers import docker_run

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture(scope="module", autouse=True)
def unarchived() -> None:
    """These windows may have been archived by an earlier run of the suite. Restored only
    then (`restore_days` runs nothing otherwise): a restore takes the archive lock, which the
    archive tests beside these need."""
    helpers.restore_days("2026-10-01", "2026-10-12")


def window(day: int, hours: int = 1, hour: int = 10) -> tuple[datetime, datetime]:
    start = datetime(2026, 10, day, hour, tzinfo=UTC)
    return start, start + timedelta(hours=hours)


def run_job(job: str, start: datetime, end: datetime, **kw) -> dict:
    return helpers.summary(
        docker_run(
            f"adpipe/{job}:dev", "--start", start.isoformat(), "--end", end.isoformat(), **kw
        )
    )


def args(start: datetime, end: datetime) -> tuple[str, ...]:
    return ("--start", start.isoformat(), "--end", end.isoformat())


def wait_copying() -> int:
    """The pid of the load's backend once it is copying its rows into ad_impressions."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        copying = helpers.admin_query(
            "SELECT pid FROM pg_stat_activity WHERE application_name"
            " = 'adpipe-load' AND query LIKE 'COPY ad_impressions%%'"
        )
        if copying:
            return copying[0][0]
        time.sleep(0.05)
    pytest.fail("the load never reached its COPY")


def independent_count(start: datetime, end: datetime) -> tuple[int, list[bytes]]:
    """Valid, de-duplicated records the API serves, counted without the job's code."""
    pages = helpers.api_pages(start, end)
    seen: set[str] = set()
    for body in pages:
        for r in json.loads(body)["impressions"]:
            try:
                uid = str(uuid.UUID(r["impression_id"]))
                shown = datetime.fromisoformat(r["shown_at"])
                ok = (
                    shown.tzinfo is not None
                    and start <= shown < end
                    and int(r["cost_micros"]) >= 0
                    and r["currency"] != "XXQ"
                    and len(r["impression_id"]) == 36
                )
            except (KeyError, ValueError):
                ok = False
            if ok:
                seen.add(uid)
    return len(seen), pages


def backup_keys(start: datetime, end: datetime) -> list[str]:
    return helpers.keys(backup_prefix(start, end))


def test_backup_holds_the_api_bytes_and_the_table_the_valid_unique_records() -> None:
    start, end = window(1)
    assert run_job("extract_backup", start, end)["exit_code"] == 0
    loaded = run_job("load", start, end)
    assert loaded["exit_code"] == 0, loaded["stderr"]
    expected, pages = independent_count(start, end)
    assert helpers.backup_pages(start, end) == pages
    assert helpers.window_checksum(start, end)[0] == expected == loaded["rows_written"]
    assert loaded["rejected"] > 0 and loaded["duplicates"] > 0
    quarantined = helpers.gunzip(helpers.get(loaded["quarantine"].split("/", 3)[3]))
    assert len(quarantined.splitlines()) == loaded["rejected"]
    assert all(json.loads(line)["reason"] for line in quarantined.splitlines())


def test_three_runs_leave_the_same_table_and_keys() -> None:
    start, end = window(2)
    first_new = helpers.query("SELECT coalesce(max(load_run_id), 0) + 1 FROM load_runs")[0][0]
    results = []
    for _ in range(3):
        assert run_job("extract_backup", start, end)["exit_code"] == 0
        assert run_job("load", start, end)["exit_code"] == 0
        results.append((helpers.window_checksum(start, end), backup_keys(start, end)))
    assert results[0] == results[1] == results[2]
    assert results[0][0][0] > 0
    runs = helpers.query(
        "SELECT count(*), count(DISTINCT rows_written) FROM load_runs "
        "WHERE window_start = %s AND load_run_id >= %s",
        (start, first_new),
    )[0]
    assert runs == (3, 1)


def test_api_429_then_500_then_ok_and_a_cut_body_are_retried(fault_api: str) -> None:
    start, end = window(3)
    helpers.faults(fault_api, "429:1", "500", "cut", "429:0")
    result = run_job("extract_backup", start, end, env={"AD_API_URL": fault_api})
    assert result["exit_code"] == 0, result["stderr"]
    assert result["api_retries"] == 4
    assert helpers.backup_pages(start, end) == helpers.api_pages(start, end)


def test_a_body_that_is_not_json_fails_naming_the_page(fault_api: str) -> None:
    start, end = window(4)
    helpers.faults(fault_api, *["garbage"] * 8)
    result = run_job("extract_backup", start, end, env={"AD_API_URL": fault_api})
    helpers.faults(fault_api)
    assert result["exit_code"] != 0
    assert "page 1" in result["stderr"] and "Traceback" not in result["stderr"]


@pytest.mark.alone
def test_s3_stopped_during_extract_changes_no_row_and_the_retry_succeeds(fault_api: str) -> None:
    start, end = window(5, hours=6)
    before = helpers.window_checksum(start, end)  # (0, '') on a fresh warehouse
    versions = helpers.backup_manifests(start, end)  # [] unless an earlier run backed it up
    # slow pages keep the extract running for ~30 s, past the few seconds S3 takes to stop
    helpers.faults(fault_api, *["slow:1"] * 30)
    name = helpers.start_detached(
        "adpipe/extract_backup:dev",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        env={"EXTRACT_PAGE_SIZE": "500", "AD_API_URL": fault_api},
    )
    time.sleep(2.5)
    with helpers.s3_stopped():
        assert helpers.wait_exit(name) != 0
    assert helpers.backup_manifests(start, end) == versions  # nothing claims to be complete
    after = run_job("load", start, end)
    if versions:  # the earlier complete backup stays current, and loads the same rows
        assert after["exit_code"] == 0, after["stderr"]
    else:
        assert after["exit_code"] == 3 and "no backup manifest" in after["stderr"]
    assert helpers.window_checksum(start, end) == before
    helpers.faults(fault_api)
    assert run_job("extract_backup", start, end)["exit_code"] == 0
    assert run_job("load", start, end)["exit_code"] == 0
    assert helpers.window_checksum(start, end)[0] == independent_count(start, end)[0]


@pytest.mark.alone  # wait_copying finds any load's COPY, so no other load may run
def test_load_killed_mid_copy_leaves_the_previous_state_and_the_retry_succeeds() -> None:
    start, end = window(6, hours=24, hour=0)
    assert run_job("extract_backup", start, end)["exit_code"] == 0
    # the window empty, then holding a committed load: a killed load leaves either as it was
    for committed in (False, True):
        if not committed:
            helpers.query(
                "DELETE FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s", (start, end)
            )
        before = helpers.window_checksum(start, end)
        assert (before[0] > 50_000) == committed, before
        name = helpers.start_detached("adpipe/load:dev", *args(start, end))
        wait_copying()  # the reload has deleted the window's rows in its transaction
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=True)
        time.sleep(1)
        assert helpers.window_checksum(start, end) == before
        result = run_job("load", start, end)
        assert result["exit_code"] == 0, result["stderr"]
        assert helpers.window_checksum(start, end)[0] == result["rows_written"] > 50_000


def test_too_many_rejects_load_nothing_and_name_the_quarantine() -> None:
    start, end = window(8)
    assert run_job("extract_backup", start, end)["exit_code"] == 0
    result = run_job("load", start, end, env={"LOAD_MAX_REJECTED_SHARE": "0.0001"})
    assert result["exit_code"] == 3
    assert "quarantine/" in result["stderr"] and "nothing loaded" in result["stderr"]
    assert helpers.window_checksum(start, end)[0] == 0


def test_a_backup_page_that_differs_from_its_manifest_is_refused() -> None:
    start, end = window(9)
    assert run_job("extract_backup", start, end)["exit_code"] == 0
    page = next(k for k in backup_keys(start, end) if "/page-" in k)
    original = helpers.get(page)
    body = helpers.gunzip(original)
    tampered = body.replace(b'"clicked":false', b'"clicked":true', 1)
    assert tampered != body

    helpers.s3().put_object(Bucket=helpers.bucket(), Key=page, Body=gzip.compress(tampered))
    try:
        result = run_job("load", start, end)
        assert result["exit_code"] == 3
        assert "does not match the manifest" in result["stderr"]
        assert helpers.window_checksum(start, end)[0] == 0
    finally:
        helpers.s3().put_object(Bucket=helpers.bucket(), Key=page, Body=original)


@pytest.mark.alone  # wait_copying finds any load's COPY, so no other load may run
def test_load_cut_by_pg_terminate_backend_exits_4_with_the_lost_connection_line() -> None:
    start, end = window(10, hours=24, hour=0)
    assert run_job("extract_backup", start, end)["exit_code"] == 0
    before = helpers.window_checksum(start, end)
    name = helpers.start_detached("adpipe/load:dev", *args(start, end))
    pid = wait_copying()
    helpers.admin_query("SELECT pg_terminate_backend(%s)", (pid,))
    code, log = helpers.finish(name)
    assert code == 4, log
    assert "FAILED load: lost the warehouse connection: " in log
    assert "Traceback" not in log and "already closed" not in log
    assert helpers.window_checksum(start, end) == before


@pytest.mark.parametrize("sized", [True, False], ids=["manifest-counts", "no-count"])
def test_each_id_keeps_its_first_record_wherever_its_repeats_are(sized: bool) -> None:
    """Repeats with other content: later on the same page, on a later page, and a record the
    fast path takes repeating one only the rules read (an id in capitals). Each id keeps its
    first record, once. Without a record count in the manifest (as a backup from before it
    had one) the load's filter is as small as it gets and every row goes the exact way."""
    start, end = window(11 if sized else 12)
    ids = [str(uuid.uuid4()) for _ in range(4)]

    def record(uid: str, minute: int, cost: int) -> dict:
        at = start + timedelta(minutes=minute)
        return helpers.impression(at, impression_id=uid, ad_id=7, cost_micros=cost)

    filler = [record(str(uuid.uuid4()), 30, 1) for _ in range(50)]
    first = [
        record(ids[0], 1, 100),
        record(ids[1], 2, 200),
        record(ids[0], 3, 999),  # same page, later, another instant
        record(ids[2].upper(), 4, 300),  # read by the rules
        record(ids[2], 5, 998),  # the fast path's, after it
        *filler,
    ]
    second = [record(ids[1], 6, 997), record(ids[3], 7, 400), record(ids[3], 7, 400)]
    facts = {"records": len(first) + len(second)} if sized else {}
    helpers.put_backup(start, end, [first, second], **facts)
    result = run_job("load", start, end)
    assert result["exit_code"] == 0, result["stderr"]
    assert (result["rows_written"], result["duplicates"]) == (4 + len(filler), 4)
    stored = helpers.query(
        "SELECT impression_id::text, shown_at, cost_micros FROM ad_impressions "
        "WHERE impression_id = ANY(%s::uuid[]) ORDER BY cost_micros",
        (ids,),
    )
    minutes = [
        (uid, start + timedelta(minutes=m), cost)
        for uid, m, cost in [(ids[0], 1, 100), (ids[1], 2, 200), (ids[2], 4, 300), (ids[3], 7, 400)]
    ]
    assert stored == minutes
