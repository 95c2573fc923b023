"""`make query`: the table and the archive as one read-only table. Runs after the other e2e
tests (their api-load and archive runs), and builds one day split three ways: two archive
objects (an archive run, late rows, another archive run) and rows still in the table."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import days
import helpers
import pytest
from helpers import docker_run

pytestmark = [pytest.mark.usefixtures("stack"), pytest.mark.alone]

TODAY = datetime.combine(days.TODAY, datetime.min.time(), UTC)
SPLIT = days.moment("test_query")  # older than the retention: an archive run moves it


def make_query(sql: str, tmp_path: Path | None = None, *more: str) -> subprocess.CompletedProcess:
    args = ["make", "-s", "query", f"SQL={sql}", *more]
    if tmp_path is not None:
        args += ["FORMAT=csv", f"OUT={tmp_path / 'out.csv'}"]
    return subprocess.run(
        args, cwd=helpers.ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def shell(command: str) -> subprocess.CompletedProcess:
    """``command`` in bash with pipefail, from the checkout."""
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=helpers.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def rows_of(sql: str, tmp_path: Path) -> list[dict[str, str]]:
    done = make_query(sql, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(tmp_path / "out.csv", newline="") as out:
        return list(csv.DictReader(out))


def live_objects(day: date) -> list[tuple[datetime, datetime]]:
    return helpers.query(
        "SELECT min_shown_at, max_shown_at FROM archive_manifest "
        "WHERE shown_date = %s AND restored_at IS NULL",
        (day,),
    )


def table_rows(day: date) -> int:
    return helpers.query(
        "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s",
        (day, day + timedelta(days=1)),
    )[0][0]


def archive_now() -> None:
    done = docker_run("adpipe/archive:dev", "run", "--date", f"{TODAY:%Y-%m-%d}")
    assert done.returncode == 0, done.stdout + done.stderr


def covered(hour: int) -> bool:
    start = SPLIT + timedelta(hours=hour)
    return any(lo < start + timedelta(hours=1) and hi >= start for lo, hi in live_objects(SPLIT))


def loaded(hour: int) -> bool:
    start = SPLIT + timedelta(hours=hour)
    return bool(helpers.query("SELECT 1 FROM load_runs WHERE window_start = %s", (start,)))


@pytest.fixture(scope="module")
def split_day() -> date:
    """SPLIT in two archive objects and the table. Each step runs only when its state is
    missing, so a rerun on a used stack (where the day is already split) changes nothing."""
    for hour in (12, 10):  # an archived hour, then late rows of an earlier one, archived next
        if not covered(hour):
            start = SPLIT + timedelta(hours=hour)
            helpers.load_window(start, start + timedelta(hours=1))
            archive_now()
    if table_rows(SPLIT.date()) == 0:  # late rows once more, left in the table
        hour = next(h for h in range(13, 24) if not loaded(h))
        start = SPLIT + timedelta(hours=hour)
        helpers.load_window(start, start + timedelta(hours=1))
    assert len(live_objects(SPLIT.date())) >= 2 and table_rows(SPLIT.date()) > 0
    return SPLIT.date()


def test_each_day_counts_what_reconcile_places_in_postgres_and_the_archive(
    split_day: date, tmp_path: Path
) -> None:
    days = {
        r["shown_date"]: (int(r["rows"]), int(r["ids"]))
        for r in rows_of(
            "select shown_date, count(*) as rows, count(distinct impression_id) as ids "
            "from impressions group by 1 order by 1",
            tmp_path,
        )
    }
    assert split_day.isoformat() in days
    first, last = min(days), max(days)
    checked = docker_run("adpipe/archive:dev", "reconcile", "--from", first, "--to", last, "--json")
    # an unbalanced day (a test's deliberate fault) fails reconcile; its counts still stand
    reconciled = json.loads(checked.stdout.partition("SUMMARY")[0])
    expected = {
        d["day"]: d["postgres"] + d["archive"]
        for d in reconciled
        if d["postgres"] + d["archive"] > 0
    }
    assert {day: rows for day, (rows, _) in days.items()} == expected
    assert all(rows == ids for rows, ids in days.values()), "an id counted twice in a day"
    (everything,) = rows_of(
        "select count(*) as rows, count(distinct impression_id) as ids from impressions",
        tmp_path,
    )
    assert everything["rows"] == everything["ids"], "an id in both sources or two days"


def test_csv_without_out_is_written_to_standard_output_as_the_file_would_be(
    split_day: date, tmp_path: Path
) -> None:
    sql = (  # the day: the module's own date
        "select impression_id, shown_at, source from impressions "  # noqa: S608
        f"where shown_date = '{split_day}' order by impression_id"
    )
    done = make_query(sql, None, "FORMAT=csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "impression_id,shown_at,source"  # nothing before it
    piped = list(csv.DictReader(io.StringIO(done.stdout)))
    assert piped and piped == rows_of(sql, tmp_path)
    # a reader that stops early (`| head`) ends the query quietly, as Unix tools end; a file
    # it is appended to (`>>`) keeps what it held
    head = shell("make -s query FORMAT=csv SQL='select range as n from range(5000000)' | head -2")
    assert (head.returncode, head.stdout) == (0, "n\n0\n"), head
    assert "FAILED" not in head.stderr and "Traceback" not in head.stderr, head.stderr
    kept = tmp_path / "kept.csv"
    kept.write_text("before\n")
    appended = shell(f"make -s query FORMAT=csv SQL='select 1 as a' >> {kept}")
    assert appended.returncode == 0 and kept.read_text() == "before\na\n1\n", appended
    refused = make_query(sql, None, "FORMAT=parquet")
    assert refused.returncode == 2 and "add OUT=<path>" in refused.stderr, refused.stderr
    assert refused.stdout == ""


def test_a_day_split_across_the_table_and_two_objects_counts_each_row_once(
    split_day: date, tmp_path: Path
) -> None:
    found = rows_of(
        "select shown_date, source, count(*) as rows, count(distinct impression_id) as ids "
        "from impressions group by all",
        tmp_path,
    )
    sources = {
        r["source"]: (int(r["rows"]), int(r["ids"]))
        for r in found
        if r["shown_date"] == split_day.isoformat()
    }
    in_table = table_rows(split_day)
    archived = helpers.query(
        "SELECT sum(rows) FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL",
        (split_day,),
    )[0][0]
    assert sources == {"postgres": (in_table, in_table), "archive": (archived, archived)}


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        (
            "insert into warehouse.public.ad_impressions "
            "select * from warehouse.public.ad_impressions limit 1",
            "read-only",
        ),
        ("copy (select 1 as x) to 's3://ad-data/archive/written-by-query.csv'", "403"),
        ("copy (select 1 as x) to 'written-by-query.csv'", "access"),
        ("set enable_external_access = true", "configuration"),
        ("delete from impressions", ""),
    ],
)
def test_a_query_that_tries_to_write_fails(sql: str, refusal: str) -> None:
    done = make_query(sql)
    assert done.returncode != 0, done.stdout
    assert "FAILED query:" in done.stderr and refusal.lower() in done.stderr.lower(), done.stderr
    assert not (helpers.ROOT / "written-by-query.csv").exists()
    assert helpers.keys("archive/written-by-query") == []
