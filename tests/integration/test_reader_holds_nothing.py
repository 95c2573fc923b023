"""The read-only role holds up no one. A session as adpipe_reader (what `make psql` opens) is
refused every lock the writers take (the rows of adpipe_locks, the migration lock); holding
every advisory key the writers took before migration 0006, it stalls no load, restore or
migrate; past its connection limit it is refused while a load goes on; and the warehouse's
roles together leave Airflow's metadata database its connections, and cannot enter it.

This module writes only hourly windows of its days in tests/days.py.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import days
import helpers
import psycopg2
import psycopg2.errors
import pytest
from adpipe import locks
from adpipe.migrations import SCHEMA_MIGRATIONS
from adpipe.settings import Settings
from adpipe.windows import backup_prefix

pytestmark = pytest.mark.usefixtures("stack")

OWNER = "test_reader_holds_nothing"
HELD_DAY = days.day(OWNER, n=0)  # loaded while the reader holds every old advisory key
LIMIT_DAY = days.day(OWNER, n=1)  # loaded while the reader is at its connection limit
RESTORED_DAY = days.day(OWNER, n=2)  # restored while the reader holds the old keys
MODULE_DAYS = [HELD_DAY + timedelta(days=n) for n in range(5)]  # their keys, held: no write
EPOCH = date(1970, 1, 1)

# The advisory keys the writers took before migration 0006: migrations, partition DDL, the
# archive's session lock; a day was (4_242_004, days since 1970-01-01), a window the one-key
# hashtext of its backup prefix.
RETIRED_KEYS = (4_242_001, 4_242_002, 4_242_003)
RETIRED_DAY_KEY = 4_242_004
ROLES_SQL = helpers.ROOT / "platform" / "postgres" / "roles.sql"


def hour(day: date, at: int) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, at, tzinfo=UTC)
    return start, start + timedelta(hours=1)


def window_args(window: tuple[datetime, datetime]) -> tuple[str, ...]:
    return ("--start", window[0].isoformat(), "--end", window[1].isoformat())


def run_job(image: str, *args: str, **env: str) -> dict:
    return helpers.summary(helpers.docker_run(f"adpipe/{image}:dev", *args, env=env))


def reader() -> Any:
    return psycopg2.connect(os.environ["WAREHOUSE_DSN"])


def refusal(take: Callable[[Any], None]) -> str:
    """The error PostgreSQL answered a reader session's attempt with ('ok' if none)."""
    return helpers.attempt("WAREHOUSE_DSN", take)


def statement(sql: str, params: tuple = ()) -> Callable[[Any], None]:
    return lambda cur: cur.execute(sql, params)


START, END = hour(HELD_DAY, 3)
# every lock the writers take, taken by the writers' own code (adpipe/locks.py) or spelled out
WRITER_LOCKS = {
    "migrations": lambda cur: locks.lock_migrations(cur, SCHEMA_MIGRATIONS),
    "window": lambda cur: locks.lock_window(cur, START, END),
    "day, shared (a load)": lambda cur: locks.lock_days(cur, HELD_DAY, HELD_DAY, shared=True),
    "day, exclusive (archive, restore)": lambda cur: locks.lock_days(cur, HELD_DAY, HELD_DAY),
    "partition (adpipe_ensure_partition)": statement(
        "SELECT adpipe_ensure_partition(%s)", (HELD_DAY,)
    ),
    **{
        f"{kind} row {strength}": statement(
            f"SELECT 1 FROM adpipe_locks WHERE kind = %s {strength}",  # noqa: S608
            (kind,),
        )
        for kind in locks.KINDS
        for strength in ("FOR KEY SHARE", "FOR SHARE", "FOR NO KEY UPDATE", "FOR UPDATE NOWAIT")
    },
    "the lock table, read (ACCESS SHARE)": statement("SELECT count(*) FROM adpipe_locks"),
    "the lock table, locked": statement("LOCK TABLE adpipe_locks IN ACCESS SHARE MODE"),
    "a lock row made": statement("INSERT INTO adpipe_locks VALUES ('day', '2026-07-09')"),
    **{
        f"schema_migrations in {mode} mode": statement(
            f"LOCK TABLE schema_migrations IN {mode} MODE"
        )
        for mode in (
            "ROW SHARE",
            "ROW EXCLUSIVE",
            "SHARE UPDATE EXCLUSIVE",
            "SHARE",
            "SHARE ROW EXCLUSIVE",
            "EXCLUSIVE",
            "ACCESS EXCLUSIVE",
        )
    },
    "schema_migrations rows": statement("SELECT 1 FROM schema_migrations FOR KEY SHARE"),
}


@pytest.mark.parametrize("what", WRITER_LOCKS)
def test_the_reader_is_refused_every_lock_a_writer_takes(what: str) -> None:
    assert refusal(WRITER_LOCKS[what]) == "InsufficientPrivilege"


def test_the_reader_is_refused_the_archive_lock_it_would_hold_for_a_whole_run() -> None:
    # Settings() reads the read-only WAREHOUSE_DSN: the archive's own code, as the reader
    with pytest.raises(psycopg2.errors.InsufficientPrivilege), locks.archive_lock(Settings()):
        pass


@pytest.mark.parametrize(
    ("setting", "sql"),
    [
        ("LOAD_WAREHOUSE_DSN", "UPDATE adpipe_locks SET key = key WHERE kind = 'archive'"),
        ("ARCHIVE_WAREHOUSE_DSN", "UPDATE adpipe_locks SET kind = 'day' WHERE kind = 'archive'"),
        ("ARCHIVE_WAREHOUSE_DSN", "DELETE FROM adpipe_locks WHERE kind = 'archive'"),
        ("LOAD_WAREHOUSE_DSN", "TRUNCATE adpipe_locks"),
    ],
)
def test_a_writer_locks_the_rows_but_never_changes_or_removes_one(setting: str, sql: str) -> None:
    conn = psycopg2.connect(os.environ[setting])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM adpipe_locks WHERE kind = 'archive' FOR SHARE")
            assert cur.fetchone() == (1,)  # its UPDATE privilege is for this
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(sql)
    finally:
        conn.rollback()
        conn.close()


@contextmanager
def every_old_key_held() -> Iterator[Any]:
    """A reader session holding every advisory key of the old scheme (session locks, so the
    writers would have waited on each) and, in an open transaction, ACCESS SHARE on the
    tables it read."""
    conn = reader()
    try:
        with conn.cursor() as cur:
            for key in RETIRED_KEYS:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                assert cur.fetchone()[0], key
            for day in MODULE_DAYS:
                cur.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (RETIRED_DAY_KEY, (day - EPOCH).days)
                )
                assert cur.fetchone()[0], day
                for at in range(24):
                    cur.execute(
                        "SELECT pg_try_advisory_lock(hashtext(%s))",
                        (backup_prefix(*hour(day, at)),),
                    )
                    assert cur.fetchone()[0], (day, at)
            cur.execute("SELECT count(*) FROM ad_impressions WHERE shown_at >= %s", (START,))
            cur.execute("SELECT count(*) FROM schema_migrations")
        yield conn
    finally:
        conn.rollback()
        conn.close()  # and its session locks with it


def drop_partition(day: date) -> None:
    """The day has no partition: its next load makes it (taking the partition lock)."""
    helpers.query(f"DROP TABLE IF EXISTS ad_impressions_{day:%Y%m%d}")


@contextmanager
def jobs_blocked_by(pid: int) -> Iterator[list[tuple]]:
    """Every job's session (``adpipe-*``: a load, migrate, restore, of this test or another
    group's) that waits on a lock the session ``pid`` holds while the block runs, sampled
    every 50 ms from pg_stat_activity: a wait on a lock the reader holds lasts until the reader
    lets go or the waiter's lock timeout (seconds), so none slips between two samples. The
    list is complete once the block has left. Left out: the tests' own sessions (another
    group's DROP of a partition waits for the reader's open transaction, as it would for any)
    and the archive's drop of an emptied partition, which gives way by design
    (archive.drop_if_empty)."""
    seen: list[tuple] = []
    done = threading.Event()
    conn = helpers.superuser()  # pg_stat_activity shows every database's sessions

    def watch() -> None:
        with conn.cursor() as cur:
            while not done.is_set():
                cur.execute(
                    "SELECT pid, application_name, wait_event_type, wait_event, query"
                    " FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
                    " AND application_name LIKE 'adpipe-%%' AND application_name <> %s"
                    " AND query NOT LIKE '%%adpipe_drop_empty_partition%%'",
                    (pid, helpers.SUPERUSER_APP),
                )
                seen.extend(cur.fetchall())
                done.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join(timeout=10)
        conn.close()


def test_a_reader_holding_every_old_advisory_key_holds_up_no_load_restore_or_migrate() -> None:
    window = (START, END)
    assert run_job("extract_backup", *window_args(window))["exit_code"] == 0
    drop_partition(HELD_DAY)
    usual = run_job("load", *window_args(window))
    assert usual["exit_code"] == 0, usual["stderr"]
    drop_partition(HELD_DAY)  # before the reader reads: a DROP would wait for its transaction
    with every_old_key_held() as held, jobs_blocked_by(held.get_backend_pid()) as blocked:
        loaded = run_job("load", *window_args(window))
        migrated = run_job("archive", "migrate")
        helpers.restore_days(RESTORED_DAY.isoformat(), RESTORED_DAY.isoformat(), always=True)
    assert loaded["exit_code"] == 0, loaded["stderr"]
    assert loaded["rows_written"] == usual["rows_written"] > 0
    assert migrated["exit_code"] == 0, migrated["stderr"]
    # not one moment of waiting: no session of the load, migrate or restore (nor any other)
    # ever waited on a lock the reader held
    assert blocked == [], blocked


def reader_limit() -> int:
    (limit,) = helpers.query(
        "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'adpipe_reader'",
        dsn=os.environ["WAREHOUSE_DSN"],
    )[0]
    return limit


@pytest.mark.alone  # it takes every connection the reader role has: reconcile would be refused
def test_a_reader_past_its_connection_limit_is_refused_while_a_load_goes_on() -> None:
    limit = reader_limit()
    assert 0 < limit <= 20, limit
    window = hour(LIMIT_DAY, 4)
    assert run_job("extract_backup", *window_args(window))["exit_code"] == 0
    with ExitStack() as held:
        for _ in range(limit):  # every connection the role has left (another test's too)
            try:
                held.callback(reader().close)  # made before its close is pushed
            except psycopg2.OperationalError:
                break
        load = helpers.start_detached("adpipe/load:dev", *window_args(window))
        # the reader asks for one more while the load runs
        with pytest.raises(psycopg2.OperationalError, match="too many connections for role"):
            reader().close()
        code, log = helpers.finish(load)
        health = json.loads(
            urllib.request.urlopen(  # noqa: S310 - the local stack
                f"{os.environ['AIRFLOW_URL']}/api/v2/monitor/health", timeout=30
            ).read()
        )
    assert code == 0, log
    summary = json.loads(log.split("SUMMARY ", 1)[1].splitlines()[0])
    assert summary["rows_written"] > 0
    # Airflow's own database, on the same server, still answers
    assert health["metadatabase"]["status"] == "healthy", health


def airflow_needs() -> int:
    """The connections roles.sql leaves Airflow (its one statement of that number)."""
    (found,) = re.findall(r"^\\set airflow_connections (\d+)$", ROLES_SQL.read_text(), re.M)
    return int(found)


def test_the_warehouse_roles_together_leave_airflow_the_connections_it_needs() -> None:
    roles = (os.environ["WAREHOUSE_USER"], "adpipe_loader", "adpipe_archiver", "adpipe_reader")
    rows = helpers.query(
        "SELECT rolname, rolconnlimit, current_setting('max_connections')::int,"
        " current_setting('superuser_reserved_connections')::int"
        " FROM pg_roles WHERE rolname = ANY(%s)",
        (list(roles),),
        dsn=os.environ["WAREHOUSE_DSN"],
    )
    limits = {name: limit for name, limit, _, _ in rows}
    assert set(limits) == set(roles) and all(limit > 0 for limit in limits.values()), limits
    _, _, most, reserved = rows[0]
    assert most - reserved - sum(limits.values()) >= airflow_needs() > 0


@pytest.mark.parametrize(
    "setting",
    ["WAREHOUSE_DSN", "LOAD_WAREHOUSE_DSN", "ARCHIVE_WAREHOUSE_DSN", "WAREHOUSE_OWNER_DSN"],
)
def test_no_warehouse_role_may_enter_airflows_database(setting: str) -> None:
    # Airflow takes advisory locks there (its migrations at every start, for up to 30 min)
    dsn = os.environ[setting].rsplit("/", 1)[0] + "/" + os.environ["POSTGRES_DB"]
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        psycopg2.connect(dsn).close()


def test_a_reader_session_has_a_statement_and_an_idle_transaction_timeout() -> None:
    found = dict(
        helpers.query(
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('statement_timeout', 'idle_in_transaction_session_timeout')",
            dsn=os.environ["WAREHOUSE_DSN"],
        )
    )
    assert (
        int(found["statement_timeout"]) > 0
        and int(found["idle_in_transaction_session_timeout"]) > 0
    )
