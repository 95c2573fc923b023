"""`make query`: every impression, live or archived, as one read-only table, `impressions`.

    make query SQL="select shown_date, count(*) from impressions group by 1 order by 1"
    make query SQL="select * from impressions where shown_date = '2026-10-18'" \
        FORMAT=csv OUT=day.csv
    make -s query SQL="select ..." FORMAT=csv | head    # CSV to standard output
    make query                     # a shell: statements end with ;  (Ctrl-D leaves)

DuckDB, in memory in the host venv, unions two sources:
- `ad_impressions` in PostgreSQL, attached read-only as the reader role (WAREHOUSE_DSN);
- every archived Parquet object that archive_manifest lists as live (not restored, not set
  aside), read from s3://<bucket>/archive/ with the query identity (QUERY_AWS_*), which may
  read archive/ and nothing else. `shown_date` is the objects' Hive partition, so a filter on
  it reads only that day's objects.

A row is never in both: the archive deletes a day's rows in the transaction that records
its object in archive_manifest, and restore marks the object restored in the transaction
that inserts its rows. The manifest and the table are read in one PostgreSQL snapshot, so
the view counts each row once even while an archive or a restore runs.

Nothing is written anywhere: the warehouse is attached READ_ONLY (and the role may only
read), the S3 identity may only read, and once the view is made the session may touch no
file but OUT (or the pipe to standard output) and no object outside archive/ (DuckDB's
external access is off and locked). CSV to standard output is DuckDB's COPY into a named
pipe that a thread relays to the descriptor as it is (COPY to /dev/stdout would open the file
anew and truncate it: `>> all.csv` would lose what was there), streamed, so memory stays
bounded however many rows a query returns.
Extensions load from the PyPI wheels by path; DuckDB never downloads anything.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path
from types import TracebackType

import duckdb
import psycopg2.extensions
from adpipe.table import COLUMNS, Column
from adpipe.windows import ARCHIVE_PREFIX
from stack_client import load_env

EXTENSIONS = ("duckdb_extension_postgres_scanner", "duckdb_extension_httpfs")
LIVE = (
    "SELECT {}, CAST(shown_at AS DATE) AS shown_date, 'postgres' AS source "
    "FROM warehouse.public.ad_impressions"
)
# DuckDB's name of each Arrow type the archive stores
DUCKDB_TYPES = {
    "uuid": "UUID",
    "int64": "BIGINT",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
}


def archived(schema_version: int, columns: tuple[Column, ...] = COLUMNS) -> str:
    """The view's columns from archive objects written at ``schema_version`` of the record
    contract: a column added after it is NULL (shown_date: the objects' Hive partition)."""
    found = [
        c.name
        if c.since <= schema_version
        else f"CAST(NULL AS {DUCKDB_TYPES[c.arrow]}) AS {c.name}"
        for c in columns
    ]
    return ", ".join(found) + ", shown_date, 'archive' AS source"


FORMATS = ("table", "csv", "parquet")


class QueryError(Exception):
    """A refusal the user can act on: printed as one line, exit 2."""


def literal(text: str) -> str:
    """A SQL string literal (DuckDB's ATTACH, SECRET and COPY take no bound parameters)."""
    return "'" + text.replace("'", "''") + "'"


def connect(out: Path | None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the `impressions` view, locked to reading."""
    db = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for package in EXTENSIONS:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise QueryError(f"{package} is not installed: run `make venv`")
        (path,) = Path(spec.origin).parent.rglob("*.duckdb_extension")
        db.execute(f"LOAD {literal(str(path))}")
    db.execute("SET TimeZone = 'UTC'")

    # the reader role; its password through libpq's environment, never in a SQL string
    dsn = psycopg2.extensions.parse_dsn(os.environ["WAREHOUSE_DSN"])
    os.environ["PGPASSWORD"] = dsn.pop("password", "")
    try:
        db.execute(
            f"ATTACH {literal(psycopg2.extensions.make_dsn(**dsn))} AS warehouse "
            "(TYPE postgres, READ_ONLY)"
        )
    except duckdb.Error as exc:
        raise QueryError(
            f"cannot attach the warehouse ({str(exc).strip()}); is this checkout's stack up? "
            "`make start`"
        ) from None

    endpoint = urllib.parse.urlsplit(os.environ["S3_ENDPOINT_URL"])
    key, secret = (
        os.environ.get(f"QUERY_AWS_{n}", "") for n in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
    )
    if not key or not secret:
        raise QueryError(
            "QUERY_AWS_ACCESS_KEY_ID and QUERY_AWS_SECRET_ACCESS_KEY are missing: run `make env`"
        )
    db.execute(
        "CREATE SECRET archive (TYPE s3, KEY_ID {}, SECRET {}, REGION {}, ENDPOINT {}, "
        "URL_STYLE 'path', USE_SSL {})".format(
            literal(key),
            literal(secret),
            literal(os.environ["AWS_DEFAULT_REGION"]),
            literal(endpoint.netloc),
            "true" if endpoint.scheme == "https" else "false",
        )
    )
    archive = f"s3://{os.environ['S3_BUCKET']}/{ARCHIVE_PREFIX}"
    db.execute(f"SET allowed_directories = [{literal(archive)}]")
    if out is not None:
        db.execute(f"SET allowed_paths = [{literal(str(out.resolve()))}]")
    db.execute("SET enable_external_access = false")
    db.execute("SET lock_configuration = true")
    return db


def define_view(db: duckdb.DuckDBPyConnection, columns: tuple[Column, ...] = COLUMNS) -> None:
    """`impressions` over the table and the objects the manifest lists as live now, with
    the table's columns (``columns``: those of a contract a test has grown)."""
    bucket = f"s3://{os.environ['S3_BUCKET']}/"
    keys: dict[int, list[str]] = {}  # the objects' keys by their schema version
    for key, version in db.execute(
        "SELECT object_key, schema_version FROM warehouse.public.archive_manifest "
        "WHERE restored_at IS NULL ORDER BY object_key"
    ).fetchall():
        keys.setdefault(version, []).append(bucket + key)
    view = db.sql(LIVE.format(", ".join(c.name for c in columns)))
    for version, listed in sorted(keys.items()):
        objects = db.read_parquet(listed, hive_partitioning=True)
        view = view.union(objects.select(archived(version, columns)))
    view.create_view("impressions", replace=True)


class Relay:
    """Standard output behind a named pipe in ``directory``: what COPY writes to ``path``
    goes on to the descriptor as it comes. ``gone`` is set when the reader of standard
    output stopped reading (``| head``); the pipe is then closed, so COPY fails at once."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "stdout.csv"
        os.mkfifo(self.path, 0o600)
        self.gone = threading.Event()
        self.thread = threading.Thread(target=self.relay, daemon=True)

    def relay(self) -> None:
        with open(self.path, "rb") as source:
            try:
                shutil.copyfileobj(source, sys.stdout.buffer, 1 << 16)
                sys.stdout.buffer.flush()
            except BrokenPipeError:
                self.gone.set()
                # nothing more reaches it, and Python's own flush at exit does not complain
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def __enter__(self) -> Relay:
        sys.stdout.flush()
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.thread.is_alive():  # COPY failed before it opened the pipe: end the relay
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # the relay has not opened it yet, or closed it already
                pass
        self.thread.join(timeout=10)


def run(
    db: duckdb.DuckDBPyConnection, sql: str, fmt: str, out: Path, relay: Relay | None = None
) -> None:
    """One statement in one transaction: the manifest and the table in one PostgreSQL
    snapshot, held no longer than the statement. ``relay``: ``out`` is its pipe to standard
    output."""
    db.execute("BEGIN TRANSACTION")
    try:
        define_view(db)
        if fmt == "table":
            relation = db.sql(sql)
            if relation is not None:
                relation.show(max_width=200, max_rows=200)
        else:
            copy = (
                f"COPY ({sql.rstrip().rstrip(';')}) TO {literal(str(out.resolve()))} "
                # written in place: a temporary file beside OUT is not a path it may touch
                f"(FORMAT {fmt}, USE_TMP_FILE false{', HEADER' if fmt == 'csv' else ''})"
            )
            if relay is None:
                db.execute(copy)
                print(f"query: wrote {out} ({fmt})", file=sys.stderr)
                return
            with relay:
                try:
                    db.execute(copy)
                except duckdb.IOException:
                    if not relay.gone.is_set():
                        raise
                    # the reader stopped reading (`| head`): it has what it asked for
    finally:
        db.execute("ROLLBACK")


def shell(db: duckdb.DuckDBPyConnection) -> None:
    print("impressions: the table and the archive as one; statements end with ; (Ctrl-D leaves)")
    buffer = ""
    while True:
        try:
            line = input("impressions> " if not buffer else "          ...> ")
        except EOFError:
            print()
            return
        buffer += line + "\n"
        if buffer.rstrip().endswith(";"):
            try:
                run(db, buffer, "table", Path())
            except duckdb.Error as exc:
                print(f"error: {exc}")
            buffer = ""


def main() -> int:
    load_env()
    sql = os.environ.get("QUERY_SQL", "").strip()
    fmt = os.environ.get("QUERY_FORMAT", "").strip() or "table"
    out_text = os.environ.get("QUERY_OUT", "").strip()
    try:
        if fmt not in FORMATS:
            raise QueryError(f"FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
        if fmt == "table" and out_text:
            raise QueryError("OUT=<path> goes with FORMAT=csv or FORMAT=parquet")
        if fmt == "parquet" and not out_text:
            raise QueryError(
                "FORMAT=parquet writes a file: add OUT=<path> (FORMAT=csv without OUT writes "
                "to standard output)"
            )
        if fmt != "table" and not sql and sys.stdin.isatty():
            raise QueryError(f'FORMAT={fmt} runs one statement: add SQL="select ..."')
        with tempfile.TemporaryDirectory(prefix="adpipe-query-") as tmp:
            relay = Relay(Path(tmp)) if fmt == "csv" and not out_text else None
            out = Path(out_text) if out_text else relay.path if relay else None
            db = connect(out)
            if not sql and out is None and sys.stdin.isatty():
                shell(db)
            else:
                run(db, sql or sys.stdin.read(), fmt, out or Path(), relay)
    except QueryError as exc:
        print(f"FAILED query: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"FAILED query: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
