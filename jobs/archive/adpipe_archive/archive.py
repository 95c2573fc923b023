"""How the archive works, where a row leaves (what its user reads is RUN_DOC, its --help).

Moves every whole day older than the cutoff (the run's date minus
ARCHIVE_RETENTION_DAYS) from ad_impressions to Parquet (zstd) in
s3://ad-data/archive/ad_impressions/shown_date=YYYY-MM-DD/part-<sha256 prefix>.parquet.

Each day is one short transaction under the day's lock (so no load of the day interleaves),
holding the day's partition against every writer (adpipe_hold_partition). A second session,
through ADBC, reads the day's rows as Arrow record batches (binary COPY, in their stored
order), which become a Parquet file batch by batch (parquet_files.write_parquet); it reads
only after the hold, so it reads exactly what the partition holds until the commit. The file
is checked (row count, ids), then put with If-None-Match and its SHA-256, which S3 checks on
receipt and keeps, and a HEAD proves the stored object is that file (one kept without a
SHA-256 is read back and checked whole); only then is its archive_manifest row inserted, the
partition emptied (TRUNCATE when it holds exactly the rows exported; a DELETE of them when
readers keep it busy past 10 s) and the transaction committed. Until that commit the rows
stay in PostgreSQL. Late rows in an archived day become a second file. One day's failure
fails that day, not the others.

The archive never deletes an object. An object under the archive prefix that no committed
manifest row lists is adopted only when it is exactly the object this run writes for its day
(same content-derived key, verified by its bytes, the rows still in PostgreSQL); any other is
left in place and the run fails naming it. A run whose database has no archive history while
the bucket holds archive objects of days it is not archiving (the wrong
ARCHIVE_WAREHOUSE_DSN, a new or restored old database) refuses to start; a first run's own
crashed upload is adopted.
"""

from __future__ import annotations

import argparse
import base64
import logging
import tempfile
import time
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import psycopg2
import pyarrow as pa
from adpipe.errors import ConfigError, DataError, JobError, UpstreamError
from adpipe.grid import check_run_date
from adpipe.job import Command, Phases
from adpipe.locks import archive_lock, lock_days
from adpipe.partitions import partition_day, partition_name
from adpipe.record import VERSION
from adpipe.settings import S3, WAREHOUSE, Settings
from adpipe.storage import Bucket
from adpipe.table import TABLE_COLUMNS
from adpipe.warehouse import conninfo, service_error, session, unreachable
from adpipe.windows import ARCHIVE_TABLE_PREFIX as TABLE_PREFIX
from adpipe.windows import archive_key, archive_key_day
from psycopg2 import sql

from adpipe_archive import verify
from adpipe_archive.parquet_files import sha256_file, write_parquet

log = logging.getLogger("adpipe.archive")

RUN_DOC = """archive: Move every day older than the retention from PostgreSQL to S3 as Parquet.

Moves each whole day before --date minus ARCHIVE_RETENTION_DAYS (--date 2026-11-20 with 30
days moves 2026-10-20 and earlier) from ad_impressions to a Parquet file in the bucket,
under archive/ad_impressions/shown_date=YYYY-MM-DD/, and records it in archive_manifest.
restore brings a day back; make query reads archived days where they are.

A day's rows leave PostgreSQL only in the transaction that records a file S3 holds and that
is proven to be exactly those rows (its row count, ids and SHA-256), so a failure at any
point leaves them in PostgreSQL. Each day is a transaction of its own: a day that fails is
named and keeps its rows, the other days still move, and the run exits 4 when each failed
day failed for a service (S3, or a load holding the day longer than WAREHOUSE_LOCK_TIMEOUT),
else 3. Rows loaded into a day after it was archived go to a second file of the day at the
next run. A load and an archive of the same day never interleave, and one archive, restore,
adopt or set-aside runs at a time: the other waits at most WAREHOUSE_LOCK_TIMEOUT, then
exits 4.

Safe to run again: a day archived has nothing left to move, and the file a failed run
uploaded for a day is kept when it holds exactly the day's rows. The archive never deletes
an object. Refused:
- a --date later than tomorrow (exit 2), so no cutoff reaches a day still loading;
- a database with no archive history while the bucket holds archive objects of other days
  (exit 2; the wrong ARCHIVE_WAREHOUSE_DSN, or a new or restored warehouse): nothing moves;
- an archive object that no archive_manifest row lists: it is left in place and named, with
  the adopt or set-aside command that resolves it (exit 3, once every day has moved).

    docker run --rm --network host --env-file .env.archive adpipe/archive:dev run --date 2026-11-20
"""

EXPORT_DAY = sql.SQL(
    "SELECT {columns} FROM ad_impressions WHERE shown_at >= %(low)s AND shown_at < %(high)s"
).format(columns=sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS)))
# the reading session's scans start at a partition's first block and read it in order, so
# the same rows give the same file (an earlier attempt's upload is adopted by that)
STORED_ORDER = (
    "SET synchronize_seqscans = off",  # else a scan may start where another one is
    "SET max_parallel_workers_per_gather = 0",  # else workers interleave the blocks
)
EXPORT_SESSION = "adpipe-archive-export"
DELETE_DAY = "DELETE FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s"
OLD_PARTITIONS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'ad_impressions' AND c.relname < %s
ORDER BY c.relname
"""
INSERT_MANIFEST = """
INSERT INTO archive_manifest (object_key, shown_date, rows, bytes, sha256, ids_sha256,
    min_shown_at, max_shown_at, run_date, schema_version)
VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s / 1e6), to_timestamp(%s / 1e6), %s, %s)
"""


class ArchiveRun:
    """One archive run, as its steps (`run`): survey what is archived already, move each old
    day (`archive_day`), then say what was done or what stops the run. Its context: the
    sessions (``conn`` writes, ``reader`` exports: `export_session`), the bucket, the run's
    date and settings, the keys committed and unlisted, a work folder and the phases."""

    def __init__(self, conn: Any, bucket: Bucket, run_date: date, settings: Settings) -> None:
        self.conn, self.bucket, self.run_date, self.settings = conn, bucket, run_date, settings
        self.cutoff = run_date - timedelta(days=settings.retention_days)
        self.phases = Phases()
        self.committed: set[str] = set()  # keys live manifest rows list
        self.unlisted: set[str] = set()  # keys under archive/ no committed row lists
        self.days: list[date] = []
        self.reader: Any = None
        self.workdir = Path()

    def run(self) -> dict[str, Any]:
        self.survey()
        results: list[dict[str, Any]] = []
        failures: list[tuple[date, BaseException]] = []
        with (
            tempfile.TemporaryDirectory(prefix="adpipe-archive-") as tmp,
            export_session(self.settings) as self.reader,
        ):
            self.workdir = Path(tmp)
            for day in self.days:
                try:
                    result = self.archive_day(day)
                except (
                    JobError,
                    psycopg2.Error,
                    pa.ArrowException,
                    adbc_driver_manager.Error,
                ) as exc:
                    if self.conn.closed:
                        raise  # the connection is gone: no later day can run either
                    failures.append((day, self.reason(exc)))
                    log.error("day %s not archived: %s", day, failures[-1][1])
                    continue
                result["partition_dropped"] = drop_if_empty(self.conn, day)
                if result["rows"]:
                    log.info("archived %s: %d rows to %s", day, result["rows"], result["key"])
                results.append(result)
        summary = self.summary(results)
        if failures:
            raise days_not_archived(failures, len(self.days), summary["days_archived"])
        self.refuse_strays(summary["days_archived"])
        return summary

    def survey(self) -> None:
        """What is archived (listed once a run: the archive lock keeps other archive writers
        out), which days this run moves; refused when the database has no archive history
        while the bucket holds objects of other days: the wrong warehouse."""
        self.committed, has_history = committed_keys(self.conn)
        self.unlisted = {k for k in self.bucket.keys(TABLE_PREFIX) if k not in self.committed}
        self.days = old_days(self.conn, self.cutoff)
        # objects of days this run archives may be its own earlier, crashed attempt
        # (adopted); any other object in a database with no archive history means the wrong one
        foreign = sorted(k for k in self.unlisted if archive_key_day(k) not in self.days)
        if foreign and not has_history:
            raise ConfigError(
                f"this database has no archive history (archive_manifest is empty), yet "
                f"s3://{self.bucket.name}/{TABLE_PREFIX} holds {len(foreign)} archive objects "
                f"(first: {foreign[0]}); archiving from here could treat the only copy of "
                "those rows as strays; nothing was done",
                "check that ARCHIVE_WAREHOUSE_DSN names the warehouse that wrote this archive",
            )

    def reason(self, exc: Exception) -> Exception:
        if isinstance(exc, psycopg2.OperationalError):
            return service_error(exc, self.settings, "")
        return exc

    def archive_day(self, day: date) -> dict[str, Any]:
        """Move one day's rows to one verified archive object, in one transaction. The key
        this run would write for the day, when unlisted, is adopted (and leaves the set); the
        other unlisted keys are never touched."""
        outcome = {"day": day.isoformat(), "rows": 0, "key": None, "written": False}
        outcome["adopted"] = False
        with self.conn, self.conn.cursor() as cur:
            lock_days(cur, day, day)  # no load of the day checks or writes until this commits
            cur.execute("SELECT adpipe_hold_partition(%s)", (day,))
            if not cur.fetchone()[0]:
                return outcome
            facts = self.export(cur, day)
            if facts["rows"] == 0:
                return outcome
            sha = sha256_file(self.parquet)
            key = archive_key(day, sha)
            outcome.update(self.upload(key, sha, facts))
            self.record(cur, day, key, sha, facts)
        self.phases.lap("commit")
        self.committed.add(key)
        self.unlisted.discard(key)
        outcome.update(rows=facts["rows"], key=f"s3://{self.bucket.name}/{key}")
        return outcome

    @property
    def parquet(self) -> Path:
        return self.workdir / "day.parquet"

    def export(self, cur: Any, day: date) -> dict[str, Any]:
        """The held day's rows into the Parquet file, checked before it leaves."""
        low, high = day_span(day)
        # ADBC reads by binary COPY only a query without parameters: bound into its text here
        export = cur.mogrify(EXPORT_DAY, {"low": low, "high": high})
        self.phases.start()
        with closing(read_rows(self.reader, export.decode())) as rows:  # closed on errors too
            facts = write_parquet(rows, self.parquet)
        self.phases.lap("export_rows")  # and write the Parquet file, meanwhile
        if facts["rows"]:
            verify.check_rows(self.parquet, facts, "the Parquet file written")
            self.phases.lap("check_parquet")
        return facts

    def upload(self, key: str, sha: str, facts: dict[str, Any]) -> dict[str, bool]:
        """Put the file under its content's key, or adopt the same key left by an earlier
        attempt (the same key is the same content: it uploaded exactly these rows, still
        here, and died before its commit); either way prove the stored bytes."""
        if key in self.committed:
            raise DataError(
                f"{key} is already archived, yet its rows were in the table",
                "inspect archive_manifest for this day before rerunning",
            )
        written = False
        if key not in self.unlisted:
            # S3 refuses the PUT (BadDigest) unless the bytes it received have this sha256
            checksum = base64.b64encode(bytes.fromhex(sha)).decode()
            with self.parquet.open("rb") as body:
                written = self.bucket.put_new(
                    key, body, "application/vnd.apache.parquet", ChecksumSHA256=checksum
                )
        self.phases.lap("upload")
        verify.stored(self.bucket, key, sha, facts, self.workdir)
        self.phases.lap("verify")
        return {"written": written, "adopted": not written}

    def record(self, cur: Any, day: date, key: str, sha: str, facts: dict[str, Any]) -> None:
        """The object in archive_manifest and the day's rows gone, in the day's transaction."""
        row = (key, day, facts["rows"], self.parquet.stat().st_size, sha, facts["ids_sha256"])
        cur.execute(
            INSERT_MANIFEST, (*row, facts["min_us"], facts["max_us"], self.run_date, VERSION)
        )
        self.parquet.unlink()
        empty_day(cur, day, day_span(day), facts["rows"])
        self.phases.lap("empty_day")
        pause = self.settings.pause_before_commit
        if pause:  # a seam for fault tests: kill the job or cut its connection here
            log.warning("pausing %.1f s before committing %s", pause, day)
            time.sleep(pause)

    def summary(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "date": self.run_date.isoformat(),
            "cutoff": self.cutoff.isoformat(),
            "days_archived": sum(1 for r in results if r["rows"]),
            "rows_archived": sum(r["rows"] for r in results),
            "objects_written": sum(1 for r in results if r["written"]),
            "objects_adopted": sum(1 for r in results if r["adopted"]),
            "objects_unlisted": len(self.unlisted),
            "partitions_dropped": sum(1 for r in results if r["partition_dropped"]),
            "keys": [r["key"] for r in results if r["key"]],
            # where the time went, over all days: the day's rows streamed into Parquet, the
            # file checked, the PUT, the proof, emptying the partition, the commit
            "phase_seconds": self.phases.summary(),
        }

    def refuse_strays(self, archived: int) -> None:
        """Exit 3 when objects no manifest row lists are left in place, every day archived."""
        if not self.unlisted:
            return
        named = sorted(self.unlisted)
        by_day = sorted({str(archive_key_day(k) or "no day") for k in named})
        raise DataError(
            f"{len(named)} archive objects that no archive_manifest row lists were left in "
            f"place (days: {', '.join(by_day[:10])}; keys: {', '.join(named[:5])}"
            f"{' ...' if len(named) > 5 else ''}); every old day was archived ({archived} now)",
            _unlisted_hint(by_day, named[0]),
        )


def day_span(day: date) -> tuple[datetime, datetime]:
    """The day's instants, ``[midnight, next midnight)`` in UTC: its partition's bounds."""
    low = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return low, low + timedelta(days=1)


def empty_day(cur: Any, day: date, span: tuple[datetime, datetime], rows: int) -> None:
    """Empty the held day's partition of the ``rows`` just archived: TRUNCATE, which proves
    the count first, or, when readers keep the partition past its bound, a DELETE of the
    same rows (held since before the export: none can have changed)."""
    cur.execute("SAVEPOINT empty_day")
    try:
        cur.execute("SELECT adpipe_empty_partition(%s, %s)", (day, rows))
    except psycopg2.errors.LockNotAvailable:
        cur.execute("ROLLBACK TO SAVEPOINT empty_day")
        log.warning("partition of %s is being read; deleting its rows instead", day)
        cur.execute(DELETE_DAY, span)
        if cur.rowcount != rows:
            raise DataError(
                f"{day} held {cur.rowcount} rows when deleted, not the {rows} archived; "
                "nothing was committed",
                "rerun the archive",
            ) from None
    cur.execute("RELEASE SAVEPOINT empty_day")


def read_rows(reader: Any, query: str) -> Generator[pa.RecordBatch]:
    """The query's rows as Arrow record batches, by ADBC's binary COPY."""
    with reader.cursor() as cur:
        cur.execute(query)
        yield from cur.fetch_record_batch()


@contextmanager
def export_session(settings: Settings) -> Iterator[Any]:
    """The archive role's second session, which reads days as Arrow (ADBC: binary COPY, no
    text on either side). Each read is a transaction of its own that ends with it, so it
    holds nothing the first session then waits for; it reads a day only while the first
    session holds it against writers."""
    try:
        reader = adbc.connect(
            conninfo(settings.warehouse_dsn, EXPORT_SESSION, settings), autocommit=True
        )
    except adbc_driver_manager.Error as exc:
        raise unreachable(
            str(exc), settings.warehouse_dsn, settings.name("WAREHOUSE_DSN")
        ) from None
    try:
        with reader.cursor() as cur:
            for setting in STORED_ORDER:
                cur.execute(setting)
        yield reader
    finally:
        reader.close()


def drop_if_empty(conn: Any, day: date) -> bool:
    """Drop the day's partition when nothing is left in it (through the owner's
    ``adpipe_drop_empty_partition``); give up rather than wait. Its rows are committed in the
    archive already: a partition left empty is dropped by a later run. A reader scanning the
    whole table (``SELECT count(*) FROM ad_impressions``) holds the parent and waits for
    this partition while the drop waits for the parent: PostgreSQL ends that deadlock by
    failing one of the two, and this one gives way."""
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '5s'")
            lock_days(cur, day, day)  # a load of the day may be about to write into it
            cur.execute("SELECT adpipe_drop_empty_partition(%s)", (day,))
            return bool(cur.fetchone()[0])
    except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected) as exc:
        log.warning("partition of %s is busy (%s); it is dropped by a later run", day, exc.pgcode)
        return False


def old_days(conn: Any, cutoff: date) -> list[date]:
    with conn, conn.cursor() as cur:
        cur.execute(OLD_PARTITIONS, (partition_name(cutoff),))
        names = [row[0] for row in cur.fetchall()]
    return [partition_day(n) for n in names]


def committed_keys(conn: Any) -> tuple[set[str], bool]:
    """The keys live manifest rows list, and whether this database has any archive history
    at all (restored rows included)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT object_key, restored_at IS NULL FROM archive_manifest")
        rows = cur.fetchall()
    return {key for key, live in rows if live}, bool(rows)


def days_not_archived(
    failures: list[tuple[date, BaseException]], of: int, archived: int
) -> JobError:
    """The run's failure when some days failed: exit 4 (Airflow retries it) when each failed
    for a service (a load holding the day past WAREHOUSE_LOCK_TIMEOUT, S3 down), else 3: a
    retry would fail the same way on what the data holds."""
    message = (
        f"{len(failures)} of {of} days not archived "
        f"({'; '.join(f'{day}: {reason}' for day, reason in failures)}); archived: {archived}"
    )
    if all(isinstance(reason, UpstreamError) for _, reason in failures):
        return UpstreamError(
            message, "their rows are still in PostgreSQL; the run is retried, or rerun it"
        )
    return DataError(message, "their rows are still in PostgreSQL; rerun once the cause is fixed")


def _unlisted_hint(days: list[str], first_key: str) -> str:
    """The commands that resolve unlisted archive objects, for a FAILED line."""
    adopt = [f"archive adopt --date {day}" for day in days[:3] if day != "no day"]
    return (
        "nothing was deleted: they may hold the only copy of their rows. Check that "
        "ARCHIVE_WAREHOUSE_DSN is the right database; "
        + (
            f"if their manifest rows were lost, {'; '.join(adopt)} re-creates them from the "
            "objects (it refuses an object whose rows are already placed); "
            if adopt
            else ""
        )
        + f"an object adopt refuses, or of unknown content: archive set-aside --key {first_key}"
    )


@contextmanager
def archive_session(settings: Settings) -> Iterator[Any]:
    """A warehouse session of the archive identity holding the archive lock: every command
    of that identity (run, restore, adopt, set-aside) runs in one, one at a time."""
    with (
        session(
            settings.warehouse_dsn,
            "adpipe-archive",
            "the day in flight was rolled back; rerun",
            settings,
        ) as conn,
        archive_lock(settings),
    ):
        yield conn


def main(args: argparse.Namespace) -> dict[str, Any]:
    check_run_date(args.date, args.settings.retention_days)  # not later than tomorrow
    with archive_session(args.settings) as conn:
        return ArchiveRun(conn, Bucket(args.settings), args.date, args.settings).run()


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date",
        type=date.fromisoformat,
        required=True,
        help="the run's date (YYYY-MM-DD); whole days before date - ARCHIVE_RETENTION_DAYS move",
    )


RUN = Command(
    "run",
    "archive",
    RUN_DOC,
    main,
    _arguments,
    env_file="archive",
    settings=(*WAREHOUSE, *S3, "ARCHIVE_RETENTION_DAYS", "ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS"),
)
