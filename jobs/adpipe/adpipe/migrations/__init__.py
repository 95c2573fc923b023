"""The warehouse schema as numbered migrations, and their runner.

Migrations are the files ``NNNN_name.sql`` beside this module, applied in order, each once,
inside one transaction under the migration lock, recorded in ``schema_migrations`` with the
sha256 of their text; a migration edited after it was applied is refused. Only the owner
role applies them (`adpipe.migrate`: ``archive migrate``, run once at stack start and by
``make migrate``); a job checks that the schema is current (`check_schema`) and changes
nothing.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from adpipe.errors import ConfigError
from adpipe.locks import lock_migrations

SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now(), sha256 char(64) NOT NULL)"
)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration, in order."""
    found = []
    for entry in resources.files(__name__).iterdir():
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


def apply(conn: psycopg2.extensions.connection) -> list[str]:
    """Apply the migrations this database has not seen; returns their names. Refuses when an
    applied migration's text changed since (its sha256 is recorded)."""
    applied = []
    with conn, conn.cursor() as cur:
        lock_migrations(cur, SCHEMA_MIGRATIONS)  # the lock is the table, made when missing
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
