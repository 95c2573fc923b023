"""reconcile against what is really stored: a balanced day, then a row deleted by hand."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import helpers
import pytest
from helpers import docker_run

pytestmark = [pytest.mark.usefixtures("stack"), pytest.mark.old_days]

DAY = datetime(2024, 2, 29, tzinfo=UTC)


def reconcile(*extra: str) -> tuple[int, str, str]:
    done = docker_run(
        "adpipe/archive:dev",
        "reconcile",
        "--from",
        f"{DAY:%Y-%m-%d}",
        "--to",
        f"{DAY:%Y-%m-%d}",
        *extra,
    )
    return done.returncode, done.stdout, done.stderr


def test_a_loaded_day_balances_and_a_deleted_row_is_named() -> None:
    helpers.restore_days(f"{DAY:%Y-%m-%d}", f"{DAY:%Y-%m-%d}")  # archived by an earlier run?
    for hour in (5, 6, 7):
        start = DAY + timedelta(hours=hour)
        helpers.load_window(start, start + timedelta(hours=1))
    code, out, err = reconcile("--json")
    assert code == 0, err
    (day,) = json.loads(out[: out.index("SUMMARY")])
    assert day["balanced"] and day["backup"] == 9000
    assert day["postgres"] + day["rejected"] + day["duplicates"] == 9000

    helpers.query(
        "DELETE FROM ad_impressions WHERE (impression_id, shown_at) IN (SELECT "
        "impression_id, shown_at FROM ad_impressions WHERE shown_at >= %s AND "
        "shown_at < %s LIMIT 1)",
        (DAY, DAY + timedelta(days=1)),
    )
    code, out, err = reconcile()
    assert code != 0
    assert f"{DAY:%Y-%m-%d} off by -1" in err and "Traceback" not in err


# a day of its own each session (the API serves any hour), so no earlier load hides the gap;
# drawn from 2019-2020, which no other test loads (test_archive_job's 2025 days, loaded in
# 20-day windows, once put 613 rows of another test on the drawn day)
GAP_DAY = datetime(2019, 1, 1, tzinfo=UTC) + timedelta(days=secrets.randbelow(700))


def test_a_missed_hour_and_a_deleted_load_run_are_gaps_not_zero_equals_zero() -> None:
    stamp = f"{GAP_DAY:%Y-%m-%d}"
    helpers.restore_days(stamp, stamp)
    hour = {h: GAP_DAY + timedelta(hours=h) for h in range(3, 6)}
    # hours 3 and 5 loaded, 4 never (the scheduler was down): nothing in the backup and
    # nothing in the table, so the counts alone balance as 0 = 0
    for h in (3, 5):
        helpers.load_window(hour[h], hour[h] + timedelta(hours=1))
    missed = docker_run("adpipe/archive:dev", "reconcile", "--from", stamp, "--to", stamp, "--json")
    assert missed.returncode == 3, missed.stdout + missed.stderr
    (day,) = json.loads(missed.stdout[: missed.stdout.index("SUMMARY")])
    assert day["difference"] == 0 and not day["balanced"], day
    assert [p for p in day["problems"] if "no load for 04:00-05:00 UTC" in p], day["problems"]

    helpers.load_window(hour[4], hour[4] + timedelta(hours=1))
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


def test_a_backup_changed_after_its_load_is_named() -> None:
    day = GAP_DAY + timedelta(days=1)
    stamp = f"{day:%Y-%m-%d}"
    helpers.restore_days(stamp, stamp)
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
