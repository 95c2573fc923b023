"""An operator's typo stops at the door: windows off the grid (by hand or through Airflow's REST
API), windows that have not ended and archive dates after tomorrow exit 2 and write nothing;
an off-grid backup from before the grid is named by reconcile and retired; a day with some
hours loaded is expected whole; and a window's end belongs to the next window."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import days
import helpers
import pytest
from adpipe.windows import backup_prefix, rfc3339
from helpers import docker_run, summary

pytestmark = pytest.mark.usefixtures("stack")

OWNER = "test_windows_and_clock"
H = timedelta(hours=1)


def job(image: str, start: datetime, end: datetime, claim: bool = True, **env: str) -> dict:
    done = docker_run(
        f"adpipe/{image}:dev",
        "run",
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        env=env or None,
        claim=claim,
    )
    return summary(done)


def reconcile(day: datetime) -> tuple[int, dict, str]:
    stamp = f"{day:%Y-%m-%d}"
    done = docker_run("adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp, "--json")
    found = json.loads(done.stdout[: done.stdout.index("SUMMARY")])
    return done.returncode, (found[0] if found else {}), done.stderr


@pytest.mark.parametrize("image", ["extract_backup", "load"])
def test_a_30_minute_window_by_hand_is_refused_naming_the_grid(image: str) -> None:
    start = days.moment(OWNER, hour=10)
    refused = job(image, start, start + timedelta(minutes=30))
    assert refused["exit_code"] == 2, refused["stderr"]
    assert "off the grid" in refused["stderr"] and "WINDOW_MINUTES=60" in refused["stderr"]
    assert helpers.backup_manifests(start, start + timedelta(minutes=30)) == []


def test_a_rest_api_run_with_a_30_minute_interval_fails_at_once_without_retries() -> None:
    airflow = helpers.Airflow()
    start = days.moment(OWNER, hour=12)
    run_id = f"grid-{uuid.uuid4().hex[:8]}"
    # Airflow takes any data interval through its REST API
    airflow.trigger("api-load", start + H, run_id, interval=(start, start + timedelta(minutes=30)))
    airflow.unpause("api-load")
    state = airflow.wait("api-load", [run_id], timeout=300)[run_id]
    assert state == "failed", airflow.explain("api-load", run_id)
    # one try ran the job (its container's FAILED line is in that try's log), and it was the
    # last: exit 2 is never retried (a try the machine lost before the job ran, say a
    # heartbeat missed under load, may come before it)
    tries = airflow.tries("api-load", run_id, "extract_backup")
    ran = [n for n, text in enumerate(tries) if any("FAILED extract_backup" in t for t in text)]
    assert ran == [len(tries) - 1], airflow.explain("api-load", run_id)
    refused = [t for t in tries[-1] if "FAILED extract_backup" in t]
    assert any("off the grid" in t for t in refused), refused
    assert any("which a retry cannot change" in t for t in tries[-1]), tries[-1]
    assert helpers.backup_manifests(start, start + timedelta(minutes=30)) == []


def test_a_window_that_has_not_ended_and_an_archive_date_after_tomorrow_are_refused() -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for image in ("extract_backup", "load"):
        early = job(image, now, now + H, claim=False)  # nothing is written: no day to own
        assert early["exit_code"] == 2 and "has not ended" in early["stderr"], early
    # What only an archive dated after tomorrow could touch: the days at or after tomorrow's
    # cutoff. (Tests beside this one load and archive other days: the table's and the
    # manifest's totals are theirs to change.)
    retention = int(os.environ["ARCHIVE_RETENTION_DAYS"])
    young = datetime.now(UTC).date() + timedelta(days=1 - retention)

    def touched() -> tuple[list[tuple], set[str]]:
        archived = helpers.query(
            "SELECT count(*) FROM archive_manifest WHERE shown_date >= %s", (young,)
        )
        partitions = helpers.query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE c.relname LIKE 'ad\\_impressions\\_%%' AND c.relname >= %s",
            (f"ad_impressions_{young:%Y%m%d}",),
        )
        return archived, {name for (name,) in partitions}

    archived, partitions = touched()
    for ahead in (timedelta(days=2), timedelta(days=365)):
        run_date = (datetime.now(UTC) + ahead).date().isoformat()
        done = summary(docker_run("adpipe/archive:dev", "run", "--date", run_date))
        assert done["exit_code"] == 2 and "later than tomorrow" in done["stderr"], done
        assert "Traceback" not in done["stderr"]
    archived_after, partitions_after = touched()
    assert archived_after == archived  # no young day archived
    assert partitions <= partitions_after  # none of their partitions dropped (loads add some)


def test_an_off_grid_backup_from_before_is_named_retired_and_the_day_balances() -> None:
    day = days.moment(OWNER, n=1)
    # an hour no session on this stack backed up yet (its retirement stays recorded)
    hour = next(
        day + n * H
        for n in range(24)
        if not helpers.keys(backup_prefix(day + n * H, day + (n + 1) * H))
    )
    half = hour + timedelta(minutes=30)
    assert job("extract_backup", hour, hour + H)["exit_code"] == 0
    assert job("load", hour, hour + H)["exit_code"] == 0
    # before the grid: the first half-hour backed up by hand (a 30-minute grid then)
    assert job("extract_backup", hour, half, WINDOW_MINUTES="30")["exit_code"] == 0
    # its load would hold the half-hour's rows under two windows: refused now
    overlap = job("load", hour, half, WINDOW_MINUTES="30")
    assert overlap["exit_code"] == 2 and "overlaps the window" in overlap["stderr"], overlap
    helpers.balance_day(day.date(), "windows test: one hour only")

    code, counted, err = reconcile(day)
    assert code == 3 and counted["difference"] < 0, (counted, err)  # the half counted twice
    problems = " ".join(counted["problems"])
    off_grid = f"{hour:%H:%M}-{half:%H:%M} UTC is off the grid"
    assert off_grid in problems and "overlap" in problems, problems
    retire = (
        "retire",
        "--start",
        rfc3339(hour),
        "--end",
        rfc3339(half),
        "--reason",
        "a 30-minute window run by hand",
    )
    assert f"archive retire --start {rfc3339(hour)} --end {rfc3339(half)}" in problems
    retired = summary(docker_run("adpipe/archive:dev", *retire))
    assert retired["exit_code"] == 0 and retired["retired"], retired
    assert summary(docker_run("adpipe/archive:dev", *retire))["before"]  # once
    code, counted, err = reconcile(day)
    assert code == 0 and counted["balanced"], (counted, err)
    # the backup objects stay: backups are never deleted
    assert helpers.backup_manifests(hour, half)
    # the grid's hour may be reloaded; the retired window may not
    assert job("load", hour, hour + H)["exit_code"] == 0
    again = job("load", hour, half, WINDOW_MINUTES="30")
    assert again["exit_code"] == 2 and "was retired" in again["stderr"], again
    # an hour on the grid that overlaps nothing is not retired
    whole = ("retire", "--start", rfc3339(hour), "--end", rfc3339(hour + H), "--reason", "typo")
    kept = summary(docker_run("adpipe/archive:dev", *whole))
    assert kept["exit_code"] == 2 and "nothing to retire" in kept["stderr"], kept


def test_a_day_loaded_from_03_to_06_before_expect_from_misses_its_other_21_hours() -> None:
    day = days.moment(OWNER, n=2)
    helpers.query(  # an earlier session's acceptance of this day's hours: this test's own
        "DELETE FROM accepted_gaps WHERE gap_start >= %s AND gap_end <= %s", (day, day + 24 * H)
    )
    helpers.load_window(day + 3 * H, day + 6 * H)  # one window of three hours
    code, counted, err = reconcile(day)  # .env's RECONCILE_EXPECT_FROM: after this day
    assert code == 3 and counted["difference"] == 0, (counted, err)
    spans = [p.split(" (")[0] for p in counted["problems"]]
    assert spans == ["no load for 00:00-03:00 UTC", "no load for 06:00-24:00 UTC"], spans
    assert "make backfill DAG=api-load FROM=" in counted["problems"][0]
    helpers.balance_day(day.date(), "windows test: 03:00-06:00 only")
    assert reconcile(day)[0] == 0


def test_a_record_at_a_windows_end_belongs_to_the_next_window() -> None:
    day = days.moment(OWNER, n=3)
    ten, eleven = day + 10 * H, day + 11 * H

    # enough records inside that one outside stays under LOAD_MAX_REJECTED_SHARE (1%)
    inside = [helpers.impression(ten + timedelta(seconds=10 * n)) for n in range(200)]
    at_end, next_first = helpers.impression(eleven), helpers.impression(eleven)
    helpers.put_backup(ten, eleven, [[*inside, at_end]], records=201)
    helpers.put_backup(eleven, eleven + H, [[next_first]], records=1)
    assert job("load", eleven, eleven + H)["exit_code"] == 0
    following = helpers.window_checksum(eleven, eleven + H)
    for _ in range(2):  # loaded, then reloaded over its committed rows
        loaded = job("load", ten, eleven)
        assert loaded["exit_code"] == 0, loaded["stderr"]
        assert (loaded["rows_written"], loaded["rejected"]) == (200, 1), loaded
    assert helpers.window_checksum(eleven, eleven + H) == following  # untouched
    assert helpers.query(
        "SELECT impression_id::text FROM ad_impressions WHERE shown_at = %s", (eleven,)
    ) == [(next_first["impression_id"],)]
    helpers.balance_day(day.date(), "windows test: hours 10 and 11 only")


@pytest.mark.parametrize(
    "command",
    [
        ("load", "run", "--start", "1969-12-31T10:00:00Z", "--end", "1969-12-31T11:00:00Z"),
        (
            "extract_backup",
            "run",
            "--start",
            "0999-01-01T10:00:00Z",
            "--end",
            "0999-01-01T11:00:00Z",
        ),
        ("archive", "restore", "--from", "1960-01-01", "--to", "1960-01-02"),
        ("archive", "reconcile", "--from", "2026-01-01", "--to", "9999-12-31"),
        ("archive", "run", "--date", "1970-01-10"),
    ],
    ids=lambda c: f"{c[0]}-{c[1]}",
)
def test_days_outside_the_ones_adpipe_holds_are_argument_errors_naming_the_range(
    command: tuple[str, ...],
) -> None:
    done = summary(docker_run(f"adpipe/{command[0]}:dev", *command[1:], claim=False))
    assert done["exit_code"] == 2, done
    assert "1970-01-01" in done["stderr"] and "Traceback" not in done["stderr"], done["stderr"]
