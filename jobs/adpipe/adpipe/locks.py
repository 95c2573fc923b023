"""Every lock the warehouse's writers take: the only place one is taken.

The writers lock rows of ``adpipe_locks`` (migration 0006), ``(kind, key)``, with
``SELECT ... FOR SHARE`` or ``FOR UPDATE``. Those clauses need UPDATE privilege on the table,
which only the loader, the archiver and the owner have: the reader role (``make psql``,
reconcile, tools) has no privilege on it, so no reader session can take or hold a writer's
lock. PostgreSQL's advisory locks, used before, are open to every role, and closing them
(REVOKE on pg_catalog's functions) needs a superuser, which managed services do not give.

The migration lock is ``schema_migrations`` itself, locked EXCLUSIVE: a role that may only
SELECT it can take nothing stronger than ACCESS SHARE, which does not conflict with it.

Migration 0006's partition function locks the ``partition`` row and makes each day's row in
SQL, with the kind names below (``tests/unit/test_one_home.py`` checks they agree).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import psycopg2.errors

from adpipe.errors import ConfigError, UpstreamError
from adpipe.settings import Settings
from adpipe.windows import backup_prefix, days_between

# the kinds of adpipe_locks rows; the key of a kind with one row is ONE
# one archive, restore or repair at a time (held for a whole run; a second waits for up to
# WAREHOUSE_LOCK_TIMEOUT)
ARCHIVE = "archive"
PARTITION = "partition"  # adpipe_ensure_partition: one partition DDL at a time
DAY = "day"  # one day's rows, keyed YYYY-MM-DD
WINDOW = "window"  # one load of a window at a time, keyed by its backup prefix
KINDS = (ARCHIVE, PARTITION, DAY, WINDOW)
ONE = ""

LOCK_ROW = "SELECT 1 FROM adpipe_locks WHERE kind = %s AND key = %s"
LOCK_SHARED = LOCK_ROW + " FOR SHARE"
LOCK_EXCLUSIVE = LOCK_ROW + " FOR UPDATE"
MAKE_ROW = "INSERT INTO adpipe_locks (kind, key) VALUES (%s, %s) ON CONFLICT DO NOTHING"
LOCK_MIGRATIONS = "LOCK TABLE schema_migrations IN EXCLUSIVE MODE"


def lock_migrations(cur: Any, create: str) -> None:
    """Hold the migration lock, EXCLUSIVE on ``schema_migrations``, until the caller's
    transaction ends; ``create`` makes the table on a new database.

    Two first migrations of a new database both make it: the second waits for the first to
    commit and then fails on the table's name, so that failure is undone (a savepoint) and it
    takes the lock on the table the first one made, then finds its migrations applied."""
    cur.execute("SAVEPOINT adpipe_migration_lock")
    try:
        cur.execute(create)
    except (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateTable):
        cur.execute("ROLLBACK TO SAVEPOINT adpipe_migration_lock")
    cur.execute(LOCK_MIGRATIONS)


def lock_window(cur: Any, start: datetime, end: datetime) -> None:
    """Hold the window's load lock until the caller's transaction ends: one load of a window
    at a time.

    The window's row is made here when missing: only another load of the same window can
    meet that insert, and it is to wait for this one anyway."""
    _lock(cur, WINDOW, backup_prefix(start, end), LOCK_EXCLUSIVE)


def lock_days(cur: Any, first: date, last: date, *, shared: bool = False) -> None:
    """Hold each day's lock until the caller's transaction ends, in day order (no deadlock).

    Loads take it shared (loads of different windows of a day may run together); the
    archive, restore and partition drops take it exclusive, so a load and an archive of the
    same day never interleave and what one checked is still true when it acts.

    A day's row is made with its partition (``adpipe_ensure_partition``, before the caller's
    transaction) or by migration 0006 for the days that had one; a day with neither gets its
    row here."""
    statement = LOCK_SHARED if shared else LOCK_EXCLUSIVE
    for day in days_between(first, last):
        _lock(cur, DAY, day.isoformat(), statement)


def _lock(cur: Any, kind: str, key: str, statement: str) -> None:
    cur.execute(statement, (kind, key))
    if cur.fetchone() is None:  # no row yet: nothing was locked
        cur.execute(MAKE_ROW, (kind, key))
        cur.execute(statement, (kind, key))
        if cur.fetchone() is None:
            raise ConfigError(
                f"the {kind} lock {key!r} has no row in adpipe_locks",
                "run `make migrate` (migration 0006 makes the table)",
            )


@contextmanager
def archive_lock(settings: Settings) -> Iterator[None]:
    """Hold the archive lock while the block runs: one archive, restore or repair at a time.
    Waited for up to WAREHOUSE_LOCK_TIMEOUT, like every lock the jobs take (a restore the
    operator runs while the night's archive commits waits for it, the archive DAG for a
    restore); `UpstreamError` (exit 4) when another run still holds it then.

    A row lock lasts one transaction and the run commits once a day, so a connection of its
    own (``settings``' warehouse DSN: a connection's ``dsn`` hides the password) holds it in a
    transaction left open for the block. Closing that connection ends the transaction, and
    so does the server when the job dies and its connection drops."""
    from adpipe.warehouse import connect  # warehouse imports the migrations, which import this

    holder = connect(settings.warehouse_dsn, "adpipe-archive-lock", settings)
    try:
        with holder.cursor() as cur:
            # idle in its transaction for the whole run: no idle timeout may end it, and the
            # lock with it, before the run ends
            cur.execute("SET idle_in_transaction_session_timeout = 0")
            try:
                cur.execute(LOCK_EXCLUSIVE, (ARCHIVE, ONE))
            except psycopg2.errors.LockNotAvailable:
                raise UpstreamError(
                    "another archive or restore run holds the archive lock "
                    f"(waited WAREHOUSE_LOCK_TIMEOUT, {settings.lock_timeout})",
                    "wait for it to end, then rerun",
                ) from None
            if cur.fetchone() is None:
                raise ConfigError(
                    "the archive lock has no row in adpipe_locks",
                    "run `make migrate` (migration 0006 makes it)",
                )
        yield
    finally:
        holder.close()
