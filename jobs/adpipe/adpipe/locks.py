"""Every advisory lock the warehouse's writers take, and its key: the only place a key is
written (migration 0003's partition function holds PARTITION_LOCK's value in its text, as
applied migrations are never edited).

The keys live in PostgreSQL's one-key space (``pg_advisory_*lock(bigint)``) or, for the days,
its two-key space (``pg_advisory_*lock(int, int)``); a window's load lock is the one-key hash
of its backup prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from adpipe.errors import UpstreamError
from adpipe.windows import backup_prefix, days_between

MIGRATION = 4_242_001  # schema changes, one migrate at a time
PARTITION_LOCK = 4_242_002  # adpipe_ensure_partition (migration 0003), one partition DDL at a time
ARCHIVE = 4_242_003  # one archive, restore or repair at a time (session lock, tried once)
DAY = 4_242_004  # (DAY, days since 1970-01-01): one day's rows
EPOCH = date(1970, 1, 1)
LOCK_DAY = "SELECT pg_advisory_xact_lock(%s, %s)"
LOCK_DAY_SHARED = "SELECT pg_advisory_xact_lock_shared(%s, %s)"


def lock_migrations(cur: Any) -> None:
    """Hold the migration lock until the caller's transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION,))


def lock_window(cur: Any, start: datetime, end: datetime) -> None:
    """Hold the window's load lock until the caller's transaction ends: one load of a window
    at a time."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (backup_prefix(start, end),))


def lock_days(cur: Any, first: date, last: date, *, shared: bool = False) -> None:
    """Hold each day's lock until the caller's transaction ends, in day order (no deadlock).

    Loads take it shared (loads of different windows of a day may run together); the
    archive, restore and partition drops take it exclusive, so a load and an archive of the
    same day never interleave and what one checked is still true when it acts."""
    statement = LOCK_DAY_SHARED if shared else LOCK_DAY
    for day in days_between(first, last):
        cur.execute(statement, (DAY, (day - EPOCH).days))


@contextmanager
def archive_lock(conn: Any) -> Iterator[None]:
    """Hold the archive's session lock while the block runs: one archive, restore or repair
    at a time. Tried once: `UpstreamError` (exit 4) when another session holds it."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (ARCHIVE,))
        got = bool(cur.fetchone()[0])
    conn.commit()
    if not got:
        raise UpstreamError(
            "another archive or restore run holds the archive lock",
            "wait for it to end, then rerun",
        )
    try:
        yield
    finally:
        if not conn.closed:  # a lost connection released the lock with the session
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (ARCHIVE,))
            conn.commit()
