"""The same api-load and archive runs through the scheduler, whichever executor the stack runs
(LocalExecutor in `make test`, Celery in `make test-celery`), recording what they left: each
window's row checksum, the backup's manifest keys, and the archived day's rows and ids. A
second executor's record must equal the first's (`make test-celery` compares them).

Archive object keys hold the sha256 of the Parquet bytes, which carry load_run_id and
loaded_at (load metadata, new on every load), and the manifest's ids_sha256 digests the ids in
the order the day's partition stored them, which depends on where PostgreSQL put each row
(free space, vacuum), not on the executor. So the archive is compared by its content: the
objects' rows, read back and sorted, must be the rows the windows held, and their md5 is
recorded."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import days
import helpers
import pytest

pytestmark = [pytest.mark.usefixtures("stack"), pytest.mark.alone]

TODAY = datetime.combine(days.TODAY, datetime.min.time(), UTC)
DAY = days.moment("test_executor_parity")  # older than the retention: the archive moves it
HOURS = (13, 14)


def executor() -> str:
    """celery when the stack runs Celery workers, else local."""
    found = helpers.service_container("airflow-worker-1")
    return "celery" if found else "local"


def record(name: str) -> Path:
    return helpers.ROOT / ".state" / f"parity-{name}.json"


def test_api_load_and_archive_leave_the_same_state_under_every_executor() -> None:
    airflow = helpers.Airflow()
    stamp = f"{DAY:%Y-%m-%d}"
    helpers.restore_days(stamp, stamp)  # an earlier run archived it
    windows = {}
    starts = {f"parity-{DAY:%Y%m%d}T{hour:02}": DAY + timedelta(hours=hour) for hour in HOURS}
    ends = {run_id: start + timedelta(hours=1) for run_id, start in starts.items()}
    for run_id, run in airflow.run_all("api-load", ends).items():
        assert run["state"] == "success", airflow.explain("api-load", run_id)
    for start in starts.values():
        rows, checksum = helpers.window_checksum(start, start + timedelta(hours=1))
        assert rows > 0
        manifests = helpers.backup_manifests(start, start + timedelta(hours=1))
        windows[start.isoformat()] = {"rows": rows, "md5": checksum, "manifests": manifests}
    held = helpers.pg_rows(DAY.date())
    helpers.balance_days("test_executor_parity")  # the day's other hours: accepted gaps
    run_id = f"parity-archive-{TODAY:%Y%m%d}"
    # yesterday 03:00: a logical date in the past at any hour of the day (the scheduler
    # refuses a future one), and still 31 days after DAY, so the run moves it
    run = airflow.run("archive", TODAY - timedelta(hours=21), run_id)
    assert run["state"] == "success", airflow.explain("archive", run_id)
    assert helpers.pg_rows(DAY.date()) == []
    archived = helpers.archived_rows(DAY.date())
    assert len(archived) == sum(w["rows"] for w in windows.values())
    assert archived == held, "the archive holds other rows than the windows did"
    content = hashlib.md5(json.dumps(archived).encode(), usedforsecurity=False).hexdigest()
    state = {"day": stamp, "windows": windows, "archive": {"rows": len(archived), "md5": content}}
    mine = executor()
    record(mine).parent.mkdir(exist_ok=True)
    record(mine).write_text(json.dumps(state, indent=1))
    if mine == "celery":  # `make test-celery` records the LocalExecutor's first
        theirs = json.loads(record("local").read_text()) if record("local").exists() else {}
        assert theirs.get("day") == stamp, "no LocalExecutor record of this day to compare"
        assert state == theirs, "Celery left another state than the LocalExecutor"
