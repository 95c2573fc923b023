"""PostgreSQL access for the jobs, and the warehouse schema as numbered migrations.

Migrations are the files ``migrations/NNNN_name.sql`` beside this module, applied in order,
each once, inside one transaction under an advisory lock, recorded in ``schema_migrations``.
Every job that touches the warehouse calls `migrate` first, so no one changes the schema by
hand.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from adpipe.job import UpstreamError

# The columns of ad_impressions that come from the ad API, in table order; load metadata
# (load_run_id, loaded_at) follows them.
IMPRESSION_COLUMNS = (
    "impression_id",
    "ad_id",
    "campaign_id",
    "advertiser_id",
    "placement",
    "device",
    "country",
    "shown_at",
    "cost_micros",
    "currency",
    "clicked",
)
MIGRATION_LOCK = 4_242_001  # pg_advisory_xact_lock key for schema changes
PARTITION_LOCK = 4_242_002  # pg_advisory_xact_lock key while creating partitions


def connect(dsn: str, application_name: str) -> psycopg2.extensions.connection:
    """A connection with keepalives, so a dead peer is noticed instead of waited on."""
    try:
        return psycopg2.connect(
            dsn,
            application_name=application_name,
            connect_timeout=10,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
    except psycopg2.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise UpstreamError(
            f"cannot connect to the warehouse: {first_line}",
            "check that PostgreSQL is up and WAREHOUSE_DSN is right",
        ) from None


@contextmanager
def session(dsn: str, application_name: str, lost_hint: str) -> Iterator[Any]:
    """A connection with the schema migrated, closed afterwards. A connection lost on the
    way becomes one `UpstreamError`; ``lost_hint`` says what state that left and what to do."""
    conn = connect(dsn, application_name)
    try:
        migrate(conn)
        yield conn
    except psycopg2.OperationalError as exc:
        raise UpstreamError(
            f"the warehouse connection failed: {str(exc).strip()}", lost_hint
        ) from None
    finally:
        conn.close()


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration, in order."""
    found = []
    for entry in resources.files("adpipe.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


def migrate(conn: psycopg2.extensions.connection) -> list[str]:
    """Apply the migrations this database has not seen; returns their names."""
    applied = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM schema_migrations")
        seen = {row[0] for row in cur.fetchall()}
        for version, name, sql in migrations():
            if version not in seen:
                cur.execute(sql)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(name)
    return applied


def ensure_partitions(cur: Any, first: date, last: date) -> None:
    """One ``ad_impressions_YYYYMMDD`` partition for each UTC day from ``first`` to ``last``
    (inclusive), created when missing, inside the caller's transaction."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
    day = first
    while day <= last:
        low = datetime(day.year, day.month, day.day, tzinfo=UTC)
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF ad_impressions "
                "FOR VALUES FROM (%s) TO (%s)"
            ).format(sql.Identifier(f"ad_impressions_{day:%Y%m%d}")),
            (low, low + timedelta(days=1)),
        )
        day += timedelta(days=1)


def copy_in(cur: Any, statement: str, stream: LineStream) -> None:
    """COPY ``stream`` into the table; an error raised while producing its lines (bad data,
    S3) surfaces as itself, not as the database error psycopg2 wraps it in."""
    try:
        cur.copy_expert(statement, stream, size=1 << 16)
    except psycopg2.Error:
        if stream.error is not None:
            raise stream.error from None
        raise


class LineStream(io.RawIOBase):
    """A read-only file over an iterable of text lines, for ``copy_expert`` without buffering
    the whole input: COPY pulls what it needs, the iterable produces it on demand."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines: Iterator[str] = iter(lines)
        self._pending = b""
        self.error: BaseException | None = None  # what the lines raised, if anything

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self._pending) < len(buffer):
            try:
                line = next(self._lines, None)
            except BaseException as exc:  # psycopg2 reports it as a COPY failure: keep it
                self.error = exc
                raise
            if line is None:
                break
            self._pending += line.encode()
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
