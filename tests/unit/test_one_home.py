"""Knowledge written once. Every advisory lock of the warehouse, and its key, lives in
adpipe/locks.py: a grep over the source fails the build when a lock is taken, or a key
written, anywhere else (an applied migration may hold a key's value: it must be locks.py's).
The job contract's failures live in adpipe/errors.py, which settings.py imports instead of
job.py (no import circle)."""

from __future__ import annotations

import re
from pathlib import Path

from adpipe import locks

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "jobs" / "adpipe" / "adpipe" / "locks.py"
SOURCES = ("jobs", "dags", "platform", "tests", "bench")
LOCK_CALL = re.compile(r"pg_(?:try_)?advisory_\w*lock")
KEY = re.compile(r"\b4_?242_?0\d\d\b")


def python_files() -> list[Path]:
    return [
        path
        for top in SOURCES
        for path in (ROOT / top).rglob("*.py")
        if path != HOME and path != Path(__file__).resolve()
    ]


def test_no_advisory_lock_is_taken_outside_locks_py() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if LOCK_CALL.search(line) or KEY.search(line)
    ]
    assert found == [], f"advisory locks and their keys belong in {HOME.relative_to(ROOT)}"


def test_a_key_in_an_applied_migration_is_the_one_locks_py_names() -> None:
    keys = {locks.MIGRATION, locks.PARTITION_LOCK, locks.ARCHIVE, locks.DAY}
    assert len(keys) == 4
    migrations = (ROOT / "jobs" / "adpipe" / "adpipe" / "migrations").glob("*.sql")
    used = {
        int(key)
        for path in migrations
        for key in re.findall(r"pg_advisory_\w*lock\((\d+)\)", path.read_text())
    }
    assert used and used <= keys, used - keys


def test_the_job_errors_live_in_errors_py_and_settings_imports_no_job_code() -> None:
    errors = ROOT / "jobs" / "adpipe" / "adpipe" / "errors.py"
    defined = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files()
        if path != errors
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"class \w+\((?:JobError|ConfigError|DataError|UpstreamError)\)", line)
    ]
    assert defined == [], "a job failure class belongs in adpipe/errors.py"
    settings = (ROOT / "jobs" / "adpipe" / "adpipe" / "settings.py").read_text()
    assert "adpipe.job" not in settings, "settings.py importing job.py makes an import circle"
