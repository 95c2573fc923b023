"""The archive image against the real PostgreSQL and S3: what leaves, verified, and what
survives faults injected for real."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import helpers
import psycopg2
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest
from adpipe.windows import days_between
from helpers import archived_rows, docker_run, pg_rows, wait_for_log

pytestmark = [pytest.mark.usefixtures("stack"), pytest.mark.old_days]

API_PORT = 18092


@pytest.fixture(scope="module")
def small_api() -> Iterator[str]:
    """A low-volume ad API of our own (30 impressions an hour), so 40 days load in seconds."""
    with helpers.served_api(API_PORT, 30, "archive-tests") as url:
        yield url


def archive(run_date: date, **env: str) -> dict:
    done = docker_run(
        "adpipe/archive:dev",
        "--date",
        run_date.isoformat(),
        env={"ARCHIVE_RETENTION_DAYS": "30", **env},
    )
    return helpers.summary(done)


def checksum(rows: list[tuple]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def held_rows(first: date, last: date) -> int:
    """Rows in PostgreSQL plus rows in live manifest-listed archive objects, for the days."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    in_pg = helpers.query(
        "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s", (start, end)
    )[0][0]
    archived = helpers.query(
        "SELECT coalesce(sum(rows), 0) FROM archive_manifest WHERE "
        "shown_date BETWEEN %s AND %s AND restored_at IS NULL",
        (first, last),
    )[0][0]
    return in_pg + archived


def orphans() -> list[str]:
    live = {
        k
        for (k,) in helpers.query(
            "SELECT object_key FROM archive_manifest WHERE restored_at IS NULL"
        )
    }
    return [k for k in helpers.keys("archive/ad_impressions/") if k not in live]


# D-40 .. D, with D = 2025-06-10 and retention 30: the cutoff is 2025-05-11.
D = date(2025, 6, 10)
FIRST, CUTOFF = D - timedelta(days=40), D - timedelta(days=30)


# of the forty days, the first three, the four around the cutoff and the last two
SAMPLE = [FIRST + timedelta(days=n) for n in (0, 1, 2)]
SAMPLE += [CUTOFF + timedelta(days=n) for n in (-2, -1, 0, 1)] + [D - timedelta(days=1), D]


@pytest.fixture(scope="module")
def forty_days(small_api: str) -> dict[date, list[tuple]]:
    helpers.restore_days(FIRST.isoformat(), D.isoformat())  # an earlier run archived some
    helpers.load_days(SAMPLE, env={"AD_API_URL": small_api})
    return {day: pg_rows(day) for day in SAMPLE}


def test_one_run_archives_exactly_the_days_older_than_the_cutoff(forty_days: dict) -> None:
    result = archive(D)
    assert result["exit_code"] == 0, result["stderr"]
    assert result["cutoff"] == CUTOFF.isoformat()
    for day, rows in forty_days.items():
        if day < CUTOFF:
            assert pg_rows(day) == [], day
            assert checksum(archived_rows(day)) == checksum(rows), day
            manifest = helpers.query(
                "SELECT sum(rows) FROM archive_manifest WHERE "
                "shown_date = %s AND restored_at IS NULL",
                (day,),
            )[0][0]
            assert manifest == len(rows) > 0
            assert not helpers.table_exists(f"ad_impressions_{day:%Y%m%d}")
        else:
            assert pg_rows(day) == rows, day
            assert archived_rows(day) == []
    assert orphans() == []


def test_rerunning_the_same_date_archives_nothing_and_writes_no_object(forty_days: dict) -> None:
    before = helpers.archive_keys()
    result = archive(D)
    assert result["exit_code"] == 0, result["stderr"]
    assert (result["rows_archived"], result["objects_written"]) == (0, 0)
    assert helpers.archive_keys() == before


def test_restoring_a_day_brings_back_exactly_its_rows(forty_days: dict) -> None:
    day = FIRST + timedelta(days=2)
    done = docker_run(
        "adpipe/archive:dev", "restore", "--from", day.isoformat(), "--to", day.isoformat()
    )
    result = helpers.summary(done)
    assert result["exit_code"] == 0, result["stderr"]
    assert checksum(pg_rows(day)) == checksum(forty_days[day])
    assert archived_rows(day) == []
    again = helpers.summary(
        docker_run(
            "adpipe/archive:dev", "restore", "--from", day.isoformat(), "--to", day.isoformat()
        )
    )
    assert again["rows_restored"] == 0 and pg_rows(day) == forty_days[day]
    rearchived = archive(D)
    assert rearchived["days_archived"] == 1 and pg_rows(day) == []
    assert checksum(archived_rows(day)) == checksum(forty_days[day])


def test_the_archive_prefix_reads_as_one_hive_partitioned_dataset(forty_days: dict) -> None:
    import os

    endpoint = os.environ["S3_ENDPOINT_URL"]
    s3 = pafs.S3FileSystem(
        endpoint_override=endpoint.split("://", 1)[1],
        scheme=endpoint.split("://", 1)[0],
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ["AWS_DEFAULT_REGION"],
    )
    dataset = pads.dataset(
        f"{helpers.bucket()}/archive/ad_impressions",
        filesystem=s3,
        format="parquet",
        partitioning="hive",
    )
    table = dataset.to_table(columns=["impression_id", "shown_date"])
    total = helpers.query(  # the dataset's objects (not the roles test's probe row, beside this)
        "SELECT sum(rows) FROM archive_manifest WHERE restored_at IS NULL"
        " AND object_key LIKE 'archive/ad\\_impressions/%%'"
    )
    assert table.num_rows == total[0][0]
    ids = table.column("impression_id").combine_chunks().storage
    assert len(set(ids.to_pylist())) == table.num_rows
    assert CUTOFF.isoformat() > min(str(d) for d in table.column("shown_date").to_pylist())


# Fault tests: their own days, 2025-03-01 .. 2025-03-05; run date 2025-04-05 (cutoff 03-06).
F_FIRST, F_LAST, F_RUN = date(2025, 3, 1), date(2025, 3, 5), date(2025, 4, 5)


@pytest.fixture
def fault_days(small_api: str) -> int:
    # a clean slate for these days: restore anything archived, drop the late hours an earlier
    # test loaded, then reload
    helpers.restore_days(F_FIRST.isoformat(), F_LAST.isoformat())
    start = datetime(F_FIRST.year, F_FIRST.month, F_FIRST.day, tzinfo=UTC)
    late = start + timedelta(days=3, hours=12)
    helpers.query(
        "DELETE FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s",
        (late, late + timedelta(hours=12)),
    )
    day = timedelta(days=1)
    windows = [(start + n * day, start + (n + 1) * day) for n in (0, 1, 2, 4)]
    windows.append((start + 3 * day, late))  # 03-04 12:00 on: late
    # loaded whole already (a restore brings back exactly what was archived): not again
    if any(helpers.window_checksum(*w)[0] != committed_rows(*w) for w in windows):
        helpers.load_windows(windows, {"AD_API_URL": small_api})
    return held_rows(F_FIRST, F_LAST)


def committed_rows(start: datetime, end: datetime) -> int | None:
    """The rows the window's latest committed load wrote."""
    found = helpers.query(
        "SELECT rows_written FROM load_runs WHERE window_start = %s AND window_end = %s "
        "ORDER BY load_run_id DESC LIMIT 1",
        (start, end),
    )
    return found[0][0] if found else None


def every_row(first: date, last: date) -> dict[date, list[tuple]]:
    """Each day's rows as stored: in PostgreSQL, and read back from every live archive object
    its manifest rows list (a listed object that is gone fails the read)."""
    return {day: sorted(pg_rows(day) + archived_rows(day)) for day in days_between(first, last)}


@pytest.mark.alone
def test_s3_stopped_mid_run_loses_nothing(fault_days: int) -> None:
    before = every_row(F_FIRST, F_LAST)
    name = archive_in_background(ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS="3")
    wait_for_log(name, "pausing")
    with helpers.s3_stopped():
        assert helpers.wait_exit(name) != 0
        assert held_rows(F_FIRST, F_LAST) == fault_days
    assert every_row(F_FIRST, F_LAST) == before
    result = archive(F_RUN)
    assert result["exit_code"] == 0, result["stderr"]
    # every row once, in the table or in an archive object that is there and reads back
    assert every_row(F_FIRST, F_LAST) == before
    assert any(archived_rows(day) for day in before)
    assert orphans() == []


def test_killed_after_upload_before_commit_the_orphan_is_adopted(fault_days: int) -> None:
    name = archive_in_background(ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS="60")
    wait_for_log(name, "pausing")
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=True)
    time.sleep(1)
    assert len(orphans()) == 1
    assert held_rows(F_FIRST, F_LAST) == fault_days
    result = archive(F_RUN)
    assert result["exit_code"] == 0, result["stderr"]
    assert result["objects_adopted"] == 1
    assert held_rows(F_FIRST, F_LAST) == fault_days
    assert orphans() == []


@pytest.mark.parametrize("with_checksum", [True, False], ids=["kept-sha256", "no-sha256"])
def test_an_object_at_the_days_key_with_other_bytes_is_refused_not_adopted(
    fault_days: int, with_checksum: bool
) -> None:
    # an earlier run died after its upload; then the object at that key was replaced by
    # other bytes (a broken copy, a hand-made file). The archive must prove the object is
    # its file before it deletes a row: by the SHA-256 S3 kept, or by reading it back.
    name = archive_in_background(ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS="60")
    wait_for_log(name, "pausing")
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=True)
    time.sleep(1)
    [key] = orphans()
    other = b"PAR1 not the day's rows PAR1"
    extra = {"ChecksumSHA256": base64.b64encode(hashlib.sha256(other).digest()).decode()}
    helpers.s3().put_object(
        Bucket=helpers.bucket(), Key=key, Body=other, **(extra if with_checksum else {})
    )
    try:
        result = archive(F_RUN)
        assert result["exit_code"] == 3, result["stderr"]
        reason = "holds other bytes" if with_checksum else "reads back different bytes"
        assert reason in result["stderr"] and key in result["stderr"]
        assert held_rows(F_FIRST, F_LAST) == fault_days  # nothing of that day was deleted
        assert helpers.get(key) == other  # and the object is left as it is
    finally:
        helpers.s3().delete_object(Bucket=helpers.bucket(), Key=key)
    result = archive(F_RUN)
    assert result["exit_code"] == 0, result["stderr"]
    assert orphans() == []


def running(name: str) -> bool:
    """Whether the container still runs."""
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return state.stdout.strip() == "true"


def archive_in_background(**env: str) -> str:
    """An archive run for F_RUN in the background; returns its container's name."""
    return helpers.start_detached("adpipe/archive:dev", "--date", F_RUN.isoformat(), env=env)


def _block_day(day: date) -> psycopg2.extensions.connection:
    """Lock one row of the day, so the archive, its object uploaded, waits to empty the day
    (TRUNCATE, and past its bound the DELETE of the same rows)."""
    conn = helpers.warehouse()
    with conn.cursor() as cur:
        cur.execute(f"SELECT 1 FROM ad_impressions_{day:%Y%m%d} LIMIT 1 FOR UPDATE")  # noqa: S608
    return conn


def _wait_blocked(application: str = "adpipe-archive") -> int:
    """The pid of the job's backend once it waits on a lock."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = helpers.admin_query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            (application,),
        )
        if rows:
            return rows[0][0]
        time.sleep(0.2)
    pytest.fail(f"{application} never waited on a lock")


def test_connection_cut_before_the_day_commits_loses_nothing(fault_days: int) -> None:
    blocker = _block_day(F_FIRST + timedelta(days=1))
    try:
        name = archive_in_background()
        pid = _wait_blocked()
        helpers.admin_query("SELECT pg_terminate_backend(%s)", (pid,))
        assert helpers.wait_exit(name) != 0
    finally:
        blocker.rollback()
        blocker.close()
    assert held_rows(F_FIRST, F_LAST) == fault_days
    result = archive(F_RUN)
    assert result["exit_code"] == 0, result["stderr"]
    assert held_rows(F_FIRST, F_LAST) == fault_days
    assert orphans() == []


def test_a_day_a_reader_keeps_busy_is_emptied_by_deleting_the_rows_it_exported(
    fault_days: int,
) -> None:
    # a long query holds the day's partition: TRUNCATE would wait for it (and every query
    # after it would queue behind); past the 10 s bound the archive deletes the same rows
    day = F_FIRST + timedelta(days=2)
    before = pg_rows(day)
    reader = helpers.warehouse(os.environ["WAREHOUSE_DSN"])
    try:
        with reader.cursor() as cur:
            low = datetime(day.year, day.month, day.day, tzinfo=UTC)
            cur.execute(
                "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s",
                (low, low + timedelta(days=1)),
            )
        began = time.monotonic()
        result = archive(F_RUN)
        waited = time.monotonic() - began
    finally:
        reader.rollback()
        reader.close()
    assert result["exit_code"] == 0, result["stderr"]
    assert f"partition of {day} is being read; deleting its rows instead" in result["stderr"]
    assert 10 <= waited < 60
    assert pg_rows(day) == [] and before
    assert held_rows(F_FIRST, F_LAST) == fault_days
    assert orphans() == []


def test_late_rows_loaded_while_the_archive_runs_survive_and_go_next_run(
    fault_days: int, small_api: str
) -> None:
    late_day = F_LAST - timedelta(days=1)  # 03-04: its last 12 hours were never loaded
    late_start = datetime(late_day.year, late_day.month, late_day.day, 12, tzinfo=UTC)
    window = [
        "--start",
        late_start.isoformat(),
        "--end",
        (late_start + timedelta(hours=12)).isoformat(),
    ]
    done = docker_run("adpipe/extract_backup:dev", *window, env={"AD_API_URL": small_api})
    assert done.returncode == 0, done.stderr
    blocker = _block_day(late_day)
    try:
        name = archive_in_background(ARCHIVE_RETENTION_DAYS="30")
        _wait_blocked("adpipe-archive")  # mid-day: the day's rows deleted, not committed
        loader = helpers.start_detached("adpipe/load:dev", *window)
        _wait_blocked("adpipe-load")  # the late load queues behind the archive of its day
    finally:
        blocker.rollback()
        blocker.close()
    assert helpers.wait_exit(name) == 0
    load_code, load_log = helpers.finish(loader)
    assert load_code == 0, load_log
    late = held_rows(F_FIRST, F_LAST) - fault_days
    assert late > 0
    assert len(pg_rows(late_day)) == late  # the late rows survived the first run
    result = archive(F_RUN)
    assert result["exit_code"] == 0 and result["rows_archived"] == late
    assert pg_rows(late_day) == []
    files = helpers.query(
        "SELECT count(*) FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL",
        (late_day,),
    )[0][0]
    assert files == 2
    assert held_rows(F_FIRST, F_LAST) == fault_days + late


def test_a_day_a_load_holds_past_the_lock_timeout_stays_and_the_run_exits_4_for_a_retry(
    fault_days: int,
) -> None:
    # a load of the day holds it (as its own lock, taken here): the archive waits
    # WAREHOUSE_LOCK_TIMEOUT for the day, leaves its rows in PostgreSQL, moves the others and
    # exits 4, which Airflow retries (3 would not be), and the retry moves the day
    held = F_FIRST + timedelta(days=1)
    before = pg_rows(held)
    assert before
    with helpers.day_locked(held):
        result = archive(F_RUN, WAREHOUSE_LOCK_TIMEOUT="1s")
    assert result["exit_code"] == 4, result["stderr"]
    assert f"{held}: waited longer than lock_timeout" in result["stderr"], result["stderr"]
    assert pg_rows(held) == before
    assert pg_rows(F_FIRST) == []  # the other days went
    retried = archive(F_RUN)
    assert retried["exit_code"] == 0, retried["stderr"]
    assert pg_rows(held) == []
    assert held_rows(F_FIRST, F_LAST) == fault_days
    assert orphans() == []


def test_a_second_archiver_waits_its_lock_timeout_for_the_one_that_runs(fault_days: int) -> None:
    # the first run pauses before each of its five days' commits, holding the archive lock
    # for at least 10 s in all: time enough for a second run to start and be refused after
    # a lock timeout of 1 s, and for a third, with the default 30 s, to wait and then run
    name = archive_in_background(ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS="2")
    wait_for_log(name, "pausing")
    second = archive(F_RUN, WAREHOUSE_LOCK_TIMEOUT="1s")  # no longer than the first runs
    assert second["exit_code"] == 4
    assert "another archive or restore run holds the archive lock" in second["stderr"]
    assert running(name), "the first run ended before the third could wait for it"
    third = archive(F_RUN)
    assert third["exit_code"] == 0, third["stderr"]
    assert third["rows_archived"] == 0, third  # the first moved every row first
    assert helpers.wait_exit(name) == 0
    assert held_rows(F_FIRST, F_LAST) == fault_days
    assert orphans() == []
