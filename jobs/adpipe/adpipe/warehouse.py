"""PostgreSQL access for the jobs, and the warehouse schema as numbered migrations.

Migrations are the files ``migrations/NNNN_name.sql`` beside this module, applied in order,
each once, inside one transaction under an advisory lock, recorded in ``schema_migrations``
with the sha256 of their text; a migration edited after it was applied is refused. Only the
owner role applies them (`archive migrate`, run once at stack start and by ``make migrate``);
a job checks that the schema is current and changes nothing.

Every connection waits at most ``lock_timeout`` for a lock and runs a statement at most
``statement_timeout`` (settings), so no job hangs behind another session.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from importlib import resources
from typing import Any
from urllib.parse import quote

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from adpipe.errors import ConfigError, DataError, UpstreamError
from adpipe.locks import lock_migrations
from adpipe.settings import Settings
from adpipe.windows import days_between

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
TABLE_COLUMNS = (*IMPRESSION_COLUMNS, "load_run_id", "loaded_at")  # every column, in order


def connect(
    dsn: str, application_name: str, settings: Settings | None = None
) -> psycopg2.extensions.connection:
    """A connection with keepalives, so a dead peer is noticed instead of waited on, and the
    settings' lock and statement timeouts, so no wait is without bound."""
    settings = settings or Settings()
    try:
        return psycopg2.connect(
            dsn,
            application_name=application_name,
            connect_timeout=10,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
            options=f"-c lock_timeout={settings.lock_timeout} "
            f"-c statement_timeout={settings.statement_timeout}",
        )
    except psycopg2.ProgrammingError:  # libpq could not parse it: its message quotes the DSN
        raise ConfigError(
            "the warehouse DSN is not a valid libpq connection string",
            "check WAREHOUSE_DSN (percent-encode @, #, / and % in a password)",
        ) from None
    except psycopg2.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise UpstreamError(
            f"cannot connect to the warehouse: {_without_secrets(first_line, dsn)}",
            "check that PostgreSQL is up and WAREHOUSE_DSN is right",
        ) from None


def _without_secrets(text: str, dsn: str) -> str:
    """``text`` with the DSN and its password (as written and decoded) blanked out."""
    secrets = {dsn}
    try:
        password = psycopg2.extensions.parse_dsn(dsn).get("password")
    except psycopg2.Error:
        password = None
    if password:
        secrets |= {password, quote(password, safe="")}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _original(exc: BaseException) -> BaseException:
    """The first database error in ``exc``'s chain: a rollback or unlock on a connection the
    server dropped raises "connection already closed" over the error that said why."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg2.OperationalError):
            return seen
        seen = seen.__context__
    return exc


def service_error(exc: BaseException, settings: Settings, lost_hint: str) -> UpstreamError:
    """The one line a job prints when the warehouse stops it: a lock it waited too long for,
    a statement that ran too long, or a lost connection, with the server's own words."""
    original = _original(exc)
    words = (str(original).strip().splitlines() or [type(original).__name__])[0]
    if isinstance(original, psycopg2.errors.LockNotAvailable):
        return UpstreamError(
            f"waited longer than lock_timeout ({settings.lock_timeout}) for a lock in the "
            f"warehouse: {words}",
            "another session holds it (see pg_locks); nothing was committed; rerun, or raise "
            "WAREHOUSE_LOCK_TIMEOUT",
        )
    if isinstance(original, psycopg2.errors.QueryCanceled):
        return UpstreamError(
            f"a statement ran longer than statement_timeout ({settings.statement_timeout}) "
            f"or was cancelled: {words}",
            "nothing was committed; rerun, or raise WAREHOUSE_STATEMENT_TIMEOUT",
        )
    return UpstreamError(f"lost the warehouse connection: {words}", lost_hint)


@contextmanager
def session(
    dsn: str, application_name: str, lost_hint: str, settings: Settings | None = None
) -> Iterator[Any]:
    """A connection to a warehouse whose schema is current, closed afterwards. A lock or
    statement timeout or a connection lost on the way becomes one `UpstreamError` (exit 4);
    ``lost_hint`` says what state a lost connection left and what to do."""
    settings = settings or Settings()
    conn = connect(dsn, application_name, settings)
    try:
        check_schema(conn)
        yield conn
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        raise service_error(exc, settings, lost_hint) from None
    except (psycopg2.IntegrityError, psycopg2.DataError) as exc:
        # a constraint or a value PostgreSQL refused: the data, not the service (exit 3)
        words = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"PostgreSQL refused the data: {words}",
            "nothing was committed; the constraint or value it names is what to look at "
            "(make psql ROLE=owner: \\d+ on the table)",
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


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_schema(conn: psycopg2.extensions.connection) -> None:
    """`ConfigError` unless every migration this code knows is applied, as written."""
    expected = {version: (name, _sha256(text)) for version, name, text in migrations()}
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT version, sha256 FROM schema_migrations")
            applied = dict(cur.fetchall())
    except psycopg2.errors.UndefinedTable:
        raise ConfigError(
            "the warehouse has no adpipe schema (no schema_migrations table)",
            "check that the DSN names the warehouse; a new one is set up by `make migrate`",
        ) from None
    missing = sorted(set(expected) - set(applied))
    if missing:
        raise ConfigError(
            f"the warehouse schema is behind this job: {expected[missing[0]][0]} is not applied",
            "run `make migrate` (the owner applies migrations; jobs never do)",
        )
    for version, sha in applied.items():
        if version in expected and sha and sha != expected[version][1]:
            raise ConfigError(
                f"migration {expected[version][0]} differs from the one applied",
                "applied migrations are never edited: add a new one instead",
            )


def migrate(conn: psycopg2.extensions.connection) -> list[str]:
    """Apply the migrations this database has not seen; returns their names. Refuses when an
    applied migration's text changed since (its sha256 is recorded)."""
    applied = []
    with conn, conn.cursor() as cur:
        lock_migrations(cur)
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), sha256 char(64) NOT NULL)"
        )
        cur.execute("SELECT version, sha256 FROM schema_migrations")
        seen = dict(cur.fetchall())
        for version, name, text in migrations():
            sha = _sha256(text)
            if version in seen:
                if seen[version] != sha:
                    raise ConfigError(
                        f"migration {name} was edited after it was applied",
                        "restore its text and add the change as a new migration",
                    )
                continue
            cur.execute(text)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                (version, name, sha),
            )
            applied.append(name)
    return applied


def partition_name(day: date) -> str:
    """The partition of ``ad_impressions`` that holds the rows shown on ``day`` (UTC)."""
    return f"ad_impressions_{day:%Y%m%d}"


def ensure_partitions(conn: Any, first: date, last: date) -> list[str]:
    """One partition for each UTC day from ``first`` to ``last`` (inclusive), created when
    missing, in a short transaction of its own; returns the ones created.

    Jobs do not own the table: ``adpipe_ensure_partition`` (migration 0003) runs as the
    owner. It creates a new day's table on its own and then attaches it: ATTACH PARTITION
    takes SHARE UPDATE EXCLUSIVE on ``ad_impressions``, which readers do not conflict with,
    where CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE and queue every reader."""
    created = []
    with conn, conn.cursor() as cur:
        for day in days_between(first, last):
            cur.execute("SELECT adpipe_ensure_partition(%s)", (day,))
            if cur.fetchone()[0]:
                created.append(partition_name(day))
    return created


def missing_partitions(cur: Any, first: date, last: date) -> list[str]:
    """The days' partitions that are missing (an archive may drop an emptied one)."""
    missing = []
    for day in days_between(first, last):
        cur.execute("SELECT to_regclass(%s) IS NULL", (partition_name(day),))
        if cur.fetchone()[0]:
            missing.append(partition_name(day))
    return missing


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
    """A read-only file over an iterable of text lines or byte chunks, for ``copy_expert``
    without buffering the whole input: COPY pulls what it needs, the iterable produces it on
    demand."""

    def __init__(self, lines: Iterable[str | bytes]) -> None:
        self._lines: Iterator[str | bytes] = iter(lines)
        self._pending = memoryview(b"")
        self.error: BaseException | None = None  # what the lines raised, if anything

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view):
            if not self._pending:
                try:
                    line = next(self._lines, None)
                except BaseException as exc:  # psycopg2 reports it as a COPY failure: keep it
                    self.error = exc
                    raise
                if line is None:
                    break
                self._pending = memoryview(line.encode() if isinstance(line, str) else line)
                continue
            size = min(len(view) - filled, len(self._pending))
            view[filled : filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled
