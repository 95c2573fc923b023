"""No single fault, operator slip or bad record deletes the only copy of a row: each test
injects the fault for real against the running stack and checks what is left.

Days here lie in 2023, older than every other test's, so an archive run of these tests moves
only these days (run date = last day + 31, retention 30).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import days
import helpers
import pyarrow.parquet as pq
import pytest
from helpers import archived_rows, docker_run, pg_rows, wait_for_log

# The tests that run archive jobs are old_days (their days lie below the archive cutoffs);
# the rest run with the recent days' tests, on days above every cutoff (tests/days.py).
pytestmark = pytest.mark.usefixtures("stack")
old_days = pytest.mark.old_days

SMALL_API_PORT = 0  # a free one: the module's tests run in two processes


def moment(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def run_job(image: str, *args: str, **env: str) -> dict:
    return helpers.summary(docker_run(f"adpipe/{image}:dev", *args, env=env))


def window_args(start: datetime, end: datetime) -> tuple[str, ...]:
    return ("--start", start.isoformat(), "--end", end.isoformat())


def archive(run_date: date, **env: str) -> dict:
    return run_job("archive", "--date", run_date.isoformat(), ARCHIVE_RETENTION_DAYS="30", **env)


def objects_rows(keys: list[str]) -> int:
    """Rows held by the Parquet objects, read from the objects themselves."""
    return sum(pq.ParquetFile(io.BytesIO(helpers.get(k))).metadata.num_rows for k in keys)


@pytest.fixture(scope="module")
def small_api() -> Iterator[str]:
    """A low-volume ad API of our own (30 impressions an hour)."""
    with helpers.served_api(SMALL_API_PORT, 30, "durability-tests") as url:
        yield url


class ScriptedApi(BaseHTTPRequestHandler):
    """An ad API that answers every request with the body ``reply(query)`` returns."""

    reply: staticmethod

    def do_GET(self) -> None:
        body = self.reply(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def scripted_api(reply: Callable[[str], bytes]) -> Iterator[str]:
    handler = type("Api", (ScriptedApi,), {"reply": staticmethod(reply)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def empty_api() -> Iterator[str]:
    """An ad API that answers every window with no impressions, as an expired look-back or
    an outage answering 200 would."""
    with scripted_api(lambda _: b'{"impressions": [], "next_cursor": null}') as url:
        yield url


# --- 1. the archive never deletes what it cannot prove redundant ---------------------------

A_FIRST, A_LAST = date(2023, 1, 10), date(2023, 1, 12)
A_RUN = A_LAST + timedelta(days=31)


@pytest.fixture(scope="module")
def archived_days(small_api: str) -> dict[date, int]:
    """Three days loaded through the job images and archived: rows per day."""
    helpers.restore_days(A_FIRST.isoformat(), A_LAST.isoformat())
    helpers.load_span(
        moment(A_FIRST), moment(A_LAST) + timedelta(days=1), env={"AD_API_URL": small_api}
    )
    result = archive(A_RUN)
    assert result["exit_code"] == 0, result["stderr"]
    counts = dict(
        helpers.query(
            "SELECT shown_date, sum(rows) FROM archive_manifest WHERE shown_date BETWEEN %s "
            "AND %s AND restored_at IS NULL GROUP BY 1",
            (A_FIRST, A_LAST),
        )
    )
    assert sorted(counts) == [A_FIRST + timedelta(days=i) for i in range(3)]
    return counts


@old_days
def test_an_archive_run_against_an_empty_database_refuses_and_deletes_nothing(
    archived_days: dict[date, int],
) -> None:
    before = helpers.archive_keys()
    rows_before = objects_rows([k for k in before if k.endswith(".parquet")])
    name = f"adpipe_empty_{uuid.uuid4().hex[:8]}"
    admin = helpers.superuser()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE {name} OWNER "{os.environ["WAREHOUSE_USER"]}"')

    def elsewhere(dsn: str) -> str:
        return os.environ[dsn].rsplit("/", 1)[0] + f"/{name}"

    try:
        unmigrated = archive(A_RUN, ARCHIVE_WAREHOUSE_DSN=elsewhere("ARCHIVE_WAREHOUSE_DSN"))
        migrated = docker_run(
            "adpipe/archive:dev",
            "migrate",
            env={"WAREHOUSE_OWNER_DSN": elsewhere("WAREHOUSE_OWNER_DSN")},
        )
        assert migrated.returncode == 0, migrated.stderr
        result = archive(A_RUN, ARCHIVE_WAREHOUSE_DSN=elsewhere("ARCHIVE_WAREHOUSE_DSN"))
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()
    # a database without the schema: refused before anything, and the job creates nothing
    assert unmigrated["exit_code"] == 2, unmigrated["stderr"]
    assert "no adpipe schema" in unmigrated["stderr"]
    # a new, empty warehouse: refused, naming what the bucket holds
    assert result["exit_code"] == 2, result["stderr"]
    assert "no archive history" in result["stderr"]
    assert (
        f"holds {len([k for k in before if k.startswith('archive/ad_impressions/')])}"
        in (result["stderr"])
    )
    assert "Traceback" not in result["stderr"]
    after = helpers.archive_keys()
    assert after == before
    assert objects_rows([k for k in after if k.endswith(".parquet")]) == rows_before


@old_days
def test_an_archive_run_after_a_day_lost_its_manifest_rows_leaves_its_objects_and_adopt_resolves_it(
    archived_days: dict[date, int],
) -> None:
    day = A_FIRST + timedelta(days=1)
    columns = (
        "object_key, shown_date, rows, bytes, sha256, ids_sha256, min_shown_at, max_shown_at, "
        "run_date, archived_at, restored_at"
    )
    saved = helpers.query(
        f"SELECT {columns} FROM archive_manifest WHERE shown_date = %s",  # noqa: S608
        (day,),
    )
    day_keys = sorted(row[0] for row in saved if row[10] is None)
    assert day_keys
    facts = "object_key, rows, bytes, sha256, ids_sha256, min_shown_at, max_shown_at"
    live = f"SELECT {facts} FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL"  # noqa: S608
    before_loss = sorted(helpers.query(live, (day,)))
    adoptions = "SELECT count(*) FROM archive_actions WHERE action = 'adopt' AND shown_date = %s"
    adopted_before = helpers.query(adoptions, (day,))[0][0]
    helpers.query("DELETE FROM archive_manifest WHERE shown_date = %s", (day,))
    adopted = None
    try:
        before = helpers.archive_keys()
        result = archive(A_RUN)
        assert result["exit_code"] == 3, result["stderr"]
        assert "left in place" in result["stderr"] and day_keys[0] in result["stderr"]
        assert f"archive adopt --date {day}" in result["stderr"]  # the command that resolves it
        assert "Traceback" not in result["stderr"]
        assert helpers.archive_keys() == before
        assert objects_rows(day_keys) == archived_days[day]  # every row still in an object
        adopted = run_job("archive", "adopt", "--date", day.isoformat())
        assert adopted["exit_code"] == 0, adopted["stderr"]
        assert adopted["objects_adopted"] == len(day_keys)
        # the manifest rows re-created from the objects say what the lost ones said
        assert sorted(helpers.query(live, (day,))) == before_loss
    finally:
        if not adopted or adopted["exit_code"]:  # put the history back by hand, as the owner
            marks = ", ".join(["%s"] * 11)
            helpers.query("DELETE FROM archive_manifest WHERE shown_date = %s", (day,))
            for row in saved:
                helpers.query(
                    f"INSERT INTO archive_manifest ({columns}) VALUES ({marks})",  # noqa: S608
                    row,
                )
    again = archive(A_RUN)
    assert again["exit_code"] == 0, again["stderr"]
    assert again["objects_unlisted"] == 0
    assert helpers.query(adoptions, (day,))[0][0] == adopted_before + len(day_keys)


@old_days
def test_adopt_refuses_an_object_whose_rows_are_in_the_table(
    archived_days: dict[date, int],
) -> None:
    day = A_FIRST
    helpers.restore_days(day.isoformat(), day.isoformat())  # the rows back, the object gone
    rearchived = archive(A_RUN)
    assert rearchived["exit_code"] == 0, rearchived["stderr"]
    (copy_key,) = helpers.query(
        "SELECT object_key FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL",
        (day,),
    )[0]
    copy = helpers.get(copy_key)
    helpers.restore_days(day.isoformat(), day.isoformat())
    # an object listed by no manifest row, holding rows that are in the table
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=copy_key, Body=copy)
    try:
        refused = run_job("archive", "adopt", "--date", day.isoformat())
        assert refused["exit_code"] == 3, refused["stderr"]
        assert "are in ad_impressions" in refused["stderr"]
        assert f"archive set-aside --key {copy_key}" in refused["stderr"]
        assert helpers.query(
            "SELECT count(*) FROM archive_manifest WHERE object_key = %s AND restored_at IS NULL",
            (copy_key,),
        ) == [(0,)]
    finally:
        # a copy of rows the table holds: redundant, removed as the operator
        helpers.s3().delete_object(Bucket=helpers.bucket(), Key=copy_key)
    done = archive(A_RUN)
    assert done["exit_code"] == 0, done["stderr"]
    assert len(pg_rows(day)) == 0


# --- 2. backups are immutable, and a load never shrinks a window silently -----------------

E_DAY = days.day("test_durability", span=4)  # above every archive cutoff


def test_an_empty_re_extract_keeps_the_backup_and_the_load_refuses_to_empty_the_window(
    empty_api: str,
) -> None:
    start = moment(E_DAY, 10)
    end = start + timedelta(hours=1)
    helpers.restore_days(E_DAY.isoformat(), E_DAY.isoformat())
    helpers.load_window(start, end)
    rows = helpers.window_checksum(start, end)
    backup = helpers.backup_objects(start, end)
    assert rows[0] > 0

    extracted = run_job("extract_backup", *window_args(start, end), AD_API_URL=empty_api)
    assert extracted["exit_code"] == 0, extracted["stderr"]
    assert extracted["records"] == 0 and extracted["backup_version_written"]
    loaded = run_job("load", *window_args(start, end))

    assert loaded["exit_code"] == 3
    assert f"holds {rows[0]} committed rows" in loaded["stderr"]
    assert "would leave 0" in loaded["stderr"] and "nothing loaded" in loaded["stderr"]
    assert helpers.window_checksum(start, end) == rows
    now = helpers.backup_objects(start, end)
    assert {key: now[key] for key in backup} == backup  # every earlier object, byte for byte

    # the operator's override, never the DAG's, empties the window on purpose
    forced = run_job("load", *window_args(start, end), "--allow-shrink")
    assert forced["exit_code"] == 0, forced["stderr"]
    assert helpers.window_checksum(start, end)[0] == 0
    # and the first version still loads the rows back
    again = run_job("extract_backup", *window_args(start, end))
    assert again["exit_code"] == 0 and again["backup_version_written"]
    assert run_job("load", *window_args(start, end))["exit_code"] == 0
    assert helpers.window_checksum(start, end) == rows


def test_a_re_extract_failing_on_page_2_leaves_the_backup_and_the_window_as_they_were(
    fault_api: str,
) -> None:
    start = moment(E_DAY, 12)
    end = start + timedelta(hours=1)
    helpers.load_window(start, end)
    rows = helpers.window_checksum(start, end)
    backup = helpers.backup_objects(start, end)
    manifests = helpers.backup_manifests(start, end)

    helpers.faults(fault_api, "none", "500", "500", "500")
    try:
        failed = run_job(
            "extract_backup",
            *window_args(start, end),
            EXTRACT_MAX_ATTEMPTS="2",
            AD_API_URL=fault_api,
        )
    finally:
        helpers.faults(fault_api)
    assert failed["exit_code"] == 4, failed["stderr"]
    assert "page 2" in failed["stderr"]
    now = helpers.backup_objects(start, end)
    assert {key: now[key] for key in backup} == backup
    assert helpers.backup_manifests(start, end) == manifests
    loaded = run_job("load", *window_args(start, end))
    assert loaded["exit_code"] == 0, loaded["stderr"]
    assert helpers.window_checksum(start, end) == rows


def test_identical_re_extracts_write_nothing_new() -> None:
    start = moment(E_DAY, 14)
    end = start + timedelta(hours=1)
    first = run_job("extract_backup", *window_args(start, end))
    backup = helpers.backup_objects(start, end)
    second = run_job("extract_backup", *window_args(start, end))
    assert second["exit_code"] == 0
    assert (second["pages_written"], second["backup_version_written"]) == (0, False)
    assert second["manifest"] == first["manifest"]
    assert helpers.backup_objects(start, end) == backup


# --- 3. a reload racing an archive of its day ----------------------------------------------

R_DAY = date(2023, 3, 1)


@old_days
def test_a_reload_racing_an_archive_of_its_day_leaves_each_row_in_one_place(
    small_api: str,
) -> None:
    start, end = moment(R_DAY), moment(R_DAY, 6)
    helpers.restore_days(R_DAY.isoformat(), R_DAY.isoformat())
    helpers.load_window(start, end, env={"AD_API_URL": small_api})
    original = pg_rows(R_DAY)
    assert original

    archiver = helpers.start_detached(
        "adpipe/archive:dev",
        "--date",
        (R_DAY + timedelta(days=31)).isoformat(),
        env={"ARCHIVE_RETENTION_DAYS": "30", "ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS": "6"},
    )
    wait_for_log(archiver, f"before committing {R_DAY}")
    # the archive has deleted the day's rows and not committed: the reload starts now
    loader = helpers.start_detached("adpipe/load:dev", *window_args(start, end))
    assert helpers.wait_exit(archiver) == 0
    load_code, load_log = helpers.finish(loader)

    assert load_code == 3, load_log
    assert "its day is archived" in load_log
    in_table, in_archive = pg_rows(R_DAY), archived_rows(R_DAY)
    assert not set(in_table) & set(in_archive)
    assert sorted(in_table + in_archive) == original


# --- 4. any text a row can hold survives the archive, field for field ---------------------

T_DAY = date(2023, 4, 1)
ODD_TEXT = (
    "line one\nline two",
    'say "hi", twice ""',
    "comma, separated, values",
    "back\\slash \\N \\.",
    "carriage\r\nreturn",
    "üñíçødé 😀 עברית",
    "\n",
    '"',
    ",",
)


@old_days
def test_text_with_newlines_quotes_and_commas_reads_back_equal_across_export_blocks() -> None:
    from adpipe.partitions import ensure_partitions

    helpers.restore_days(T_DAY.isoformat(), T_DAY.isoformat())
    conn = helpers.warehouse()
    ensure_partitions(conn, T_DAY, T_DAY)
    generator = random.Random(7)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for index in range(40_000):  # about 10 MB of CSV: several 2 MB export blocks
        writer.writerow(
            (
                str(uuid.UUID(int=generator.getrandbits(128))),
                index,
                index // 10,
                index // 100,
                # the table holds the record contract's 64 characters at most
                (generator.choice(ODD_TEXT) * generator.randint(1, 3))[:64],
                generator.choice(ODD_TEXT),
                "DE",
                (moment(T_DAY) + timedelta(microseconds=index * 2_000_000 + 1)).isoformat(),
                index,
                "EUR",
                index % 2 == 0,
                0,
            )
        )
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM ad_impressions_20230401")
        buffer.seek(0)
        cur.copy_expert(
            f"COPY ad_impressions_20230401 ({helpers.ROWS}, load_run_id)"
            " FROM STDIN WITH (FORMAT csv)",
            buffer,
        )
    conn.close()
    before = pg_rows(T_DAY)
    assert len(before) == 40_000

    result = archive(T_DAY + timedelta(days=31))

    assert result["exit_code"] == 0, result["stderr"]
    assert pg_rows(T_DAY) == []
    assert archived_rows(T_DAY) == before


# --- 5. every wait has a bound -------------------------------------------------------------

N_DAY = date(2023, 5, 1)


def _fresh_day(day: date) -> None:
    """The day has no rows and no partition, so the next load is its first."""
    helpers.restore_days(day.isoformat(), day.isoformat())
    helpers.query(f"DROP TABLE IF EXISTS ad_impressions_{day:%Y%m%d}")


def _first_load_of_a_day_while(
    day: date, statement: str, lock_timeout: str
) -> tuple[dict, float, tuple[datetime, datetime]]:
    """Back up an hour of a day that has no partition yet, then load it while another
    session holds what ``statement`` takes; returns the load's summary, its seconds and the
    window."""
    start, end = moment(day, 9), moment(day, 10)
    _fresh_day(day)
    assert run_job("extract_backup", *window_args(start, end))["exit_code"] == 0
    other = helpers.warehouse()
    with other.cursor() as cur:
        cur.execute(statement)
    try:
        began = time.monotonic()
        loaded = run_job("load", *window_args(start, end), WAREHOUSE_LOCK_TIMEOUT=lock_timeout)
        return loaded, time.monotonic() - began, (start, end)
    finally:
        other.rollback()
        other.close()


@old_days
def test_a_long_reader_does_not_block_the_first_load_of_a_new_day() -> None:
    # an open transaction that read the table holds ACCESS SHARE on it until it ends
    loaded, took, _ = _first_load_of_a_day_while(N_DAY, "SELECT count(*) FROM ad_impressions", "5s")
    assert loaded["exit_code"] == 0, loaded["stderr"]
    assert loaded["rows_written"] > 0 and took < 30


@old_days
def test_a_load_behind_a_conflicting_lock_fails_fast_with_exit_4() -> None:
    # what CREATE INDEX takes: no partition can be attached meanwhile
    loaded, took, (start, end) = _first_load_of_a_day_while(
        N_DAY + timedelta(days=1), "LOCK TABLE ad_impressions IN SHARE MODE", "2s"
    )
    assert loaded["exit_code"] == 4, loaded["stderr"]
    assert "lock_timeout (2s)" in loaded["stderr"] and "Traceback" not in loaded["stderr"]
    assert took < 20
    assert helpers.window_checksum(start, end)[0] == 0


@old_days
def test_retry_after_86400_and_inf_are_capped_by_the_extract(fault_api: str) -> None:
    start, end = moment(N_DAY, 11), moment(N_DAY, 12)
    helpers.faults(fault_api, "429:86400", "429:inf")
    try:
        began = time.monotonic()
        result = run_job(
            "extract_backup",
            *window_args(start, end),
            EXTRACT_RETRY_AFTER_MAX_SECONDS="2",
            AD_API_URL=fault_api,
        )
        took = time.monotonic() - began
    finally:
        helpers.faults(fault_api)
    assert result["exit_code"] == 0, result["stderr"]
    assert result["api_retries"] == 2 and took < 20
    assert helpers.backup_pages(start, end) == helpers.api_pages(start, end)


POISON = [
    {"placement": "lone \ud800 surrogate"},
    {"device": "new\nline"},
    {"placement": "bell\x07"},
    {"shown_at": "0001-01-01T00:00:00+05:00"},
    {"shown_at": "9999-12-31T23:59:59-05:00"},
    {"ad_id": 2**70},
    {"cost_micros": float("nan")},
]


@old_days
def test_poison_records_are_quarantined_with_reasons_and_the_rest_load() -> None:
    start, end = moment(N_DAY, 14), moment(N_DAY, 15)
    helpers.restore_days(N_DAY.isoformat(), N_DAY.isoformat())
    good = [
        {
            "impression_id": str(uuid.UUID(int=i + 1)),
            "ad_id": i,
            "campaign_id": 1,
            "advertiser_id": 1,
            "placement": 'feed, "quoted"',
            "device": "ctv",
            "country": "DE",
            "shown_at": (start + timedelta(seconds=i)).isoformat(),
            "cost_micros": 5,
            "currency": "EUR",
            "clicked": False,
        }
        for i in range(1000)
    ]
    records = good + [{**good[i], **change} for i, change in enumerate(POISON)]
    # json.dumps writes the surrogate as \ud800 and NaN as NaN, as a careless server would
    page = json.dumps({"impressions": records, "next_cursor": None}).encode()
    with scripted_api(lambda _: page) as api:
        extracted = run_job("extract_backup", *window_args(start, end), AD_API_URL=api)
    assert extracted["exit_code"] == 0, extracted["stderr"]
    loaded = run_job("load", *window_args(start, end), LOAD_MAX_REJECTED_SHARE="0.01")
    assert loaded["exit_code"] == 0, loaded["stderr"]
    assert (loaded["received"], loaded["rejected"]) == (1007, 7)
    assert loaded["rows_written"] == 1000  # every poisoned copy rejected, every good row in
    lines = helpers.gunzip(helpers.get(loaded["quarantine"].split("/", 3)[3])).splitlines()
    reasons = [json.loads(line)["reason"] for line in lines]
    assert len(reasons) == 7 and all(reasons)
    assert sum("not printable" in r for r in reasons) == 3
    assert sum("years 1 to 9999" in r for r in reasons) == 2


@old_days
def test_a_cursor_that_repeats_and_too_many_pages_stop_the_extract() -> None:
    start, end = moment(N_DAY, 16), moment(N_DAY, 17)
    looping = b'{"impressions": [], "next_cursor": "again"}'
    with scripted_api(lambda _: looping) as api:
        cycled = run_job("extract_backup", *window_args(start, end), AD_API_URL=api)
    assert cycled["exit_code"] == 3
    assert "page 2 sends a next_cursor the API sent before" in cycled["stderr"]
    capped = run_job("extract_backup", *window_args(start, end), EXTRACT_MAX_PAGES="2")
    assert capped["exit_code"] == 3 and "more than EXTRACT_MAX_PAGES (2)" in capped["stderr"]
    assert helpers.backup_manifests(start, end) == []  # nothing claims to be complete
