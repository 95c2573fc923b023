"""reconcile against what is really stored: a balanced day, then a row deleted by hand."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import days as registry
import helpers
import pytest
from helpers import docker_run

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture(scope="module")
def days() -> list[datetime]:
    """Three consecutive days no session has backed up (hence loaded or archived) yet, drawn
    with the session's seed from this module's own range (tests/days.py): above every archive
    cutoff of the old-days tests, so these tests run beside them and never restore."""
    taken: set[date] = set()
    for _ in range(50):
        chosen = registry.draw("test_reconcile", 3, taken)
        used = {d for d in chosen if helpers.keys(f"backup/impressions/date={d:%Y-%m-%d}/")}
        if not used:
            return [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in chosen]
        taken |= used
    pytest.fail("no three untouched days left in test_reconcile's range (tests/days.py)")


def reconcile(day: datetime, *extra: str) -> tuple[int, str, str]:
    stamp = f"{day:%Y-%m-%d}"
    done = docker_run("adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp, *extra)
    return done.returncode, done.stdout, done.stderr


def test_a_loaded_day_balances_and_a_deleted_row_is_named(days: list[datetime]) -> None:
    day = days[0]
    for hour in (5, 6, 7):
        start = day + timedelta(hours=hour)
        helpers.load_window(start, start + timedelta(hours=1))
    # the day's other 21 hours: an outage with nothing to fetch (reconcile expects a day with
    # a load whole)
    assert len(helpers.balance_day(day.date(), "reconcile test: 3 hours")) == 2
    code, out, err = reconcile(day, "--json")
    assert code == 0, err
    (counts,) = json.loads(out[: out.index("SUMMARY")])
    assert counts["balanced"] and counts["backup"] == 9000
    assert counts["postgres"] + counts["rejected"] + counts["duplicates"] == 9000

    helpers.query(
        "DELETE FROM ad_impressions WHERE (impression_id, shown_at) IN (SELECT "
        "impression_id, shown_at FROM ad_impressions WHERE shown_at >= %s AND "
        "shown_at < %s LIMIT 1)",
        (day, day + timedelta(days=1)),
    )
    code, out, err = reconcile(day)
    assert code != 0
    assert f"{day:%Y-%m-%d} off by -1" in err and "Traceback" not in err


def test_a_missed_hour_and_a_deleted_load_run_are_gaps_not_zero_equals_zero(
    days: list[datetime],
) -> None:
    gap_day = days[1]
    stamp = f"{gap_day:%Y-%m-%d}"
    hour = {h: gap_day + timedelta(hours=h) for h in range(3, 6)}
    # hours 3 and 5 loaded, 4 never (the scheduler was down): nothing in the backup and
    # nothing in the table, so the counts alone balance as 0 = 0
    for h in (3, 5):
        helpers.load_window(hour[h], hour[h] + timedelta(hours=1))
    missed = docker_run("adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp, "--json")
    assert missed.returncode == 3, missed.stdout + missed.stderr
    (counts,) = json.loads(missed.stdout[: missed.stdout.index("SUMMARY")])
    assert counts["difference"] == 0 and not counts["balanced"], counts
    assert [p for p in counts["problems"] if "no load for 04:00-05:00 UTC" in p], counts["problems"]

    helpers.load_window(hour[4], hour[4] + timedelta(hours=1))
    still = docker_run("adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp)
    assert still.returncode == 3  # the day's other 21 hours, expected since it holds a load
    assert "no load for 00:00-03:00 UTC" in still.stderr, still.stderr
    assert "no load for 06:00-24:00 UTC" in still.stderr, still.stderr
    helpers.balance_day(gap_day.date(), "reconcile test: hours 3 to 5 only")
    filled = docker_run("adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp)
    assert filled.returncode == 0, filled.stdout + filled.stderr

    # the load run of hour 4 deleted by hand, its rows with it: a gap again, and off
    helpers.query(  # as the warehouse's owner
        "DELETE FROM ad_impressions WHERE load_run_id IN "
        "(SELECT load_run_id FROM load_runs WHERE window_start = %s)",
        (hour[4],),
    )
    helpers.query("DELETE FROM load_runs WHERE window_start = %s", (hour[4],))
    deleted = docker_run("adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp)
    assert deleted.returncode == 3
    assert "no load for 04:00-05:00 UTC" in deleted.stdout + deleted.stderr
    assert f"{stamp} off by -" in deleted.stderr and "Traceback" not in deleted.stderr


def test_a_backup_changed_after_its_load_is_named(days: list[datetime]) -> None:
    day = days[2]
    stamp = f"{day:%Y-%m-%d}"
    start = day + timedelta(hours=8)
    helpers.load_window(start, start + timedelta(hours=1))
    (key,) = helpers.backup_manifests(start, start + timedelta(hours=1))[-1:]
    body = helpers.get(key)
    # an operator's identity may write there (the server cannot forbid every overwrite);
    # the manifest says the same, in other bytes
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=key, Body=body + b"\n")
    changed = docker_run("adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp)
    assert changed.returncode == 3, changed.stdout + changed.stderr
    assert f"backup manifest {key} no longer matches the sha256 its load recorded" in (
        changed.stdout + changed.stderr
    )
