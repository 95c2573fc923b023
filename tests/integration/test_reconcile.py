"""reconcile against what is really stored: a balanced day, then a row deleted by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import helpers
import pytest
from helpers import docker_run

pytestmark = pytest.mark.usefixtures("stack")

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
