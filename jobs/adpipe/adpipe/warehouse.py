"""Connections to the warehouse, and what a job says when PostgreSQL stops it.

A job's `session` is a connection to a warehouse whose schema is current
(`adpipe.migrations.check_schema`). Every connection waits at most ``lock_timeout`` for a
lock and runs a statement at most ``statement_timeout`` (settings), so no job hangs behind
another session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from adpipe.errors import ConfigError, DataError, UpstreamError
from adpipe.migrations import check_schema
from adpipe.settings import Settings


def conninfo(
    dsn: str,
    application_name: str,
    settings: Settings | None = None,
    setting: str = "WAREHOUSE_DSN",
) -> str:
    """The libpq connection string of every session a job opens: keepalives, so a dead peer
    is noticed instead of waited on, and the settings' lock and statement timeouts, so no
    wait is without bound. `ConfigError` when libpq cannot parse ``dsn``, naming the
    ``setting`` it came from as the identity reads it (``LOAD_WAREHOUSE_DSN``)."""
    settings = settings or Settings()
    try:
        return psycopg2.extensions.make_dsn(
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
            f"check {settings.name(setting)} (percent-encode @, #, / and % in a password)",
        ) from None


def connect(
    dsn: str,
    application_name: str,
    settings: Settings | None = None,
    setting: str = "WAREHOUSE_DSN",
) -> psycopg2.extensions.connection:
    """A connection made with `conninfo`; a refusal names ``setting`` as the identity reads
    it."""
    settings = settings or Settings()
    info = conninfo(dsn, application_name, settings, setting)
    try:
        return psycopg2.connect(info)
    except psycopg2.OperationalError as exc:
        raise unreachable(str(exc), dsn, settings.name(setting)) from None


def unreachable(message: str, dsn: str, name: str) -> UpstreamError:
    """What a job says when the warehouse does not take its connection (its DSN and
    password never in it); ``name``: the setting the DSN was read from."""
    lines = message.strip().splitlines() or ["no answer"]
    first_line = lines[0]
    if "certificate" in message:  # TLS: the server's certificate did not verify
        root = _ssl_root_certificate(dsn)
        said = " ".join(line.strip() for line in lines)
        return UpstreamError(
            f"cannot connect to the warehouse: its certificate does not verify against the "
            f"CA of {name} (sslrootcert={root}): {_without_secrets(said, dsn)}",
            f"give the job the CA that signed the server's certificate at {root} (the local "
            "stack: `make start TLS=1` makes both; docker run -v "
            f".state/tls/ca.crt:{root}:ro), then rerun",
        )
    return UpstreamError(
        f"cannot connect to the warehouse: {_without_secrets(first_line, dsn)}",
        f"check that PostgreSQL is up and {name} is right",
    )


def _ssl_root_certificate(dsn: str) -> str:
    """The CA file libpq verified the server against: the DSN's sslrootcert, else libpq's
    default (~/.postgresql/root.crt)."""
    try:
        return psycopg2.extensions.parse_dsn(dsn).get("sslrootcert") or "~/.postgresql/root.crt"
    except psycopg2.Error:
        return "~/.postgresql/root.crt"


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
