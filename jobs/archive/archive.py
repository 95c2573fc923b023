"""archive: where a row leaves. Moves every whole day older than the cutoff (the run's date
minus ARCHIVE_RETENTION_DAYS) from ``ad_impressions`` to Parquet (zstd) in
``s3://ad-data/archive/ad_impressions/shown_date=YYYY-MM-DD/part-<sha256 prefix>.parquet``,
and restores archived days on demand.

Each day is one short transaction: ``COPY (DELETE ... RETURNING ...) TO STDOUT`` streams the
day's rows to a spool file, pyarrow turns it into Parquet batch by batch, the object is put
with If-None-Match, read back and checked (bytes, row count, ids), and only then is its
``archive_manifest`` row inserted and the transaction committed. Until that commit the rows
stay in PostgreSQL; an object no committed manifest row lists is an orphan and is adopted
(same content) or deleted by the next run. Late rows in an archived day become a second file.

    docker run --rm --network host --env-file .env adpipe/archive:dev --date 2026-11-20
    docker run --rm --network host --env-file .env adpipe/archive:dev restore \\
        --from 2026-10-01 --to 2026-10-03
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from adpipe.job import DataError, UpstreamError, check_day_range, day_range_arguments, run
from adpipe.settings import Settings
from adpipe.storage import ARCHIVE_PREFIX, Bucket
from adpipe.warehouse import session
from psycopg2 import sql
from restore import restore

log = logging.getLogger("adpipe.archive")

TABLE_PREFIX = f"{ARCHIVE_PREFIX}ad_impressions/"
ARCHIVE_LOCK = 4_242_003  # pg_try_advisory_lock key: one archiver at a time
BATCH_BYTES = 2 << 20  # CSV parsed per block: small blocks keep memory flat
ROW_GROUP_ROWS = 65_536  # batches are gathered into row groups of about this many rows
# Column, PostgreSQL expression for COPY, Arrow type of the CSV text, Arrow type in Parquet.
COLUMNS: list[tuple[str, str, pa.DataType, pa.DataType]] = [
    ("impression_id", "impression_id::text", pa.string(), pa.uuid()),
    ("ad_id", "ad_id", pa.int64(), pa.int64()),
    ("campaign_id", "campaign_id", pa.int64(), pa.int64()),
    ("advertiser_id", "advertiser_id", pa.int64(), pa.int64()),
    ("placement", "placement", pa.string(), pa.string()),
    ("device", "device", pa.string(), pa.string()),
    ("country", "country", pa.string(), pa.string()),
    (
        "shown_at",
        "(extract(epoch FROM shown_at) * 1000000)::bigint",
        pa.int64(),
        pa.timestamp("us", tz="UTC"),
    ),
    ("cost_micros", "cost_micros", pa.int64(), pa.int64()),
    ("currency", "currency", pa.string(), pa.string()),
    ("clicked", "clicked", pa.bool_(), pa.bool_()),
    ("load_run_id", "load_run_id", pa.int64(), pa.int64()),
    (
        "loaded_at",
        "(extract(epoch FROM loaded_at) * 1000000)::bigint",
        pa.int64(),
        pa.timestamp("us", tz="UTC"),
    ),
]
SCHEMA = pa.schema([(name, parquet_type, False) for name, _, _, parquet_type in COLUMNS])
MOVE_DAY = """
COPY (
    WITH moved AS (DELETE FROM {partition} RETURNING *)
    SELECT {expressions} FROM moved ORDER BY impression_id, shown_at
) TO STDOUT WITH (FORMAT csv)
"""
OLD_PARTITIONS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
WHERE p.relname = 'ad_impressions' AND c.relname < %s
ORDER BY c.relname
"""
INSERT_MANIFEST = """
INSERT INTO archive_manifest (object_key, shown_date, rows, bytes, sha256, ids_sha256,
    min_shown_at, max_shown_at, run_date)
VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s / 1e6), to_timestamp(%s / 1e6), %s)
"""


def day_prefix(day: date) -> str:
    return f"{TABLE_PREFIX}shown_date={day:%Y-%m-%d}/"


def partition_name(day: date) -> str:
    return f"ad_impressions_{day:%Y%m%d}"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def csv_blocks(path: Path, size: int = BATCH_BYTES) -> Iterator[bytes]:
    """The file in blocks of about ``size`` bytes that end on a line end. (pyarrow's
    streaming CSV reader reads ahead without bound, so a day would sit in memory.)"""
    rest = b""
    with path.open("rb") as handle:
        while data := handle.read(size):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                yield data[:cut]
    if rest:
        yield rest


def csv_to_parquet(csv_path: Path, parquet_path: Path) -> dict[str, Any]:
    """Stream a day's CSV into Parquet (zstd) in batches; returns rows, min and max shown_at,
    and the sha256 of the ordered 16-byte impression ids."""
    read_options = pacsv.ReadOptions(column_names=[c[0] for c in COLUMNS])
    convert_options = pacsv.ConvertOptions(
        column_types={name: csv_type for name, _, csv_type, _ in COLUMNS},
        true_values=["t"],
        false_values=["f"],
        strings_can_be_null=False,
    )
    reader = (
        batch
        for block in csv_blocks(csv_path)
        for batch in pacsv.read_csv(
            pa.py_buffer(block), read_options=read_options, convert_options=convert_options
        ).to_batches()
    )
    ids = hashlib.sha256()
    rows, low, high = 0, None, None
    pending: list[pa.RecordBatch] = []
    with pq.ParquetWriter(parquet_path, SCHEMA, compression="zstd") as writer:

        def flush() -> None:
            if pending:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=1 << 30)
                pending.clear()

        for batch in reader:
            if batch.num_rows == 0:
                continue
            raw = bytes.fromhex("".join(batch.column("impression_id").to_pylist()).replace("-", ""))
            ids.update(raw)
            storage = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(16), batch.num_rows, [None, pa.py_buffer(raw)]
            )
            arrays = []
            for (name, _, _, parquet_type), column in zip(COLUMNS, batch.columns, strict=True):
                if name == "impression_id":
                    arrays.append(pa.ExtensionArray.from_storage(pa.uuid(), storage))
                else:
                    arrays.append(column.cast(parquet_type))
            shown = batch.column("shown_at")
            low = min(v for v in (low, pc.min(shown).as_py()) if v is not None)
            high = max(v for v in (high, pc.max(shown).as_py()) if v is not None)
            pending.append(pa.RecordBatch.from_arrays(arrays, schema=SCHEMA))
            rows += batch.num_rows
            if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                flush()
        flush()
    return {"rows": rows, "min_us": low, "max_us": high, "ids_sha256": ids.hexdigest()}


def verify(
    bucket: Bucket, key: str, expected_sha: str, expected: dict[str, Any], workdir: Path
) -> None:
    """Read the object back and check its bytes, row count and ids, on this side."""
    copy = workdir / "readback.parquet"
    with copy.open("wb") as handle:
        if not bucket.download(key, handle):
            raise UpstreamError(f"archive object s3://{bucket.name}/{key} vanished after PUT")
    if _sha256_file(copy) != expected_sha:
        raise DataError(
            f"archive object s3://{bucket.name}/{key} reads back different bytes",
            "nothing was deleted; rerun",
        )
    parquet = pq.ParquetFile(copy)
    ids = hashlib.sha256()
    for batch in parquet.iter_batches(columns=["impression_id"], batch_size=65_536):
        ids.update(batch.column(0).storage.buffers()[1].to_pybytes()[: 16 * batch.num_rows])
    if parquet.metadata.num_rows != expected["rows"] or ids.hexdigest() != expected["ids_sha256"]:
        raise DataError(
            f"archive object s3://{bucket.name}/{key} holds other rows than the day's",
            "nothing was deleted; rerun",
        )
    copy.unlink()


def archive_day(
    conn: Any,
    bucket: Bucket,
    day: date,
    run_date: date,
    committed: set[str],
    orphans: list[str],
    workdir: Path,
) -> dict[str, Any]:
    """Move one day's rows to one verified archive object, in one transaction; ``orphans``
    are the day's objects no committed manifest row lists (one of them may be adopted)."""
    csv_path, parquet_path = workdir / "day.csv", workdir / "day.parquet"
    expressions = sql.SQL(", ").join(sql.SQL(expr) for _, expr, _, _ in COLUMNS)
    outcome = {
        "day": day.isoformat(),
        "rows": 0,
        "key": None,
        "written": False,
        "adopted": False,
        "orphans_deleted": 0,
    }
    with conn, conn.cursor() as cur:
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        with csv_path.open("wb") as spool:
            cur.copy_expert(
                sql.SQL(MOVE_DAY)
                .format(partition=sql.Identifier(partition_name(day)), expressions=expressions)
                .as_string(cur),
                spool,
                size=1 << 16,
            )
        facts = csv_to_parquet(csv_path, parquet_path)
        csv_path.unlink()
        prefix = day_prefix(day)
        if facts["rows"] == 0:
            bucket.delete(orphans)  # none of them holds rows we still have
            outcome["orphans_deleted"] = len(orphans)
            return outcome
        sha = _sha256_file(parquet_path)
        key = f"{prefix}part-{sha[:20]}.parquet"
        if key in committed:
            raise DataError(
                f"{key} is already archived, yet its rows were in the table",
                "inspect archive_manifest for this day before rerunning",
            )
        stale = [k for k in orphans if k != key]
        if key in orphans:
            outcome["adopted"] = True  # an earlier attempt uploaded it and died before commit
        else:
            with parquet_path.open("rb") as body:
                outcome["written"] = bucket.put_new(key, body, "application/vnd.apache.parquet")
            outcome["adopted"] = not outcome["written"]
        verify(bucket, key, sha, facts, workdir)
        cur.execute(
            INSERT_MANIFEST,
            (
                key,
                day,
                facts["rows"],
                parquet_path.stat().st_size,
                sha,
                facts["ids_sha256"],
                facts["min_us"],
                facts["max_us"],
                run_date,
            ),
        )
        parquet_path.unlink()
        pause = float(os.environ.get("ARCHIVE_PAUSE_BEFORE_COMMIT_SECONDS", "0"))
        if pause:  # a seam for fault tests: kill the job or cut its connection here
            log.warning("pausing %.1f s before committing %s", pause, day)
            time.sleep(pause)
    committed.add(key)
    bucket.delete(stale)
    outcome.update(rows=facts["rows"], key=f"s3://{bucket.name}/{key}", orphans_deleted=len(stale))
    return outcome


def drop_if_empty(conn: Any, day: date) -> bool:
    """Drop the day's partition when nothing is left in it; give up rather than wait."""
    name = sql.Identifier(partition_name(day))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '5s'")
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(name))
            cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name))
            if cur.fetchone()[0]:
                return False
            cur.execute(sql.SQL("DROP TABLE {}").format(name))
            return True
    except psycopg2.errors.LockNotAvailable:
        log.warning("partition of %s is busy; it is dropped by a later run", day)
        return False


def old_days(conn: Any, cutoff: date) -> list[date]:
    with conn, conn.cursor() as cur:
        cur.execute(OLD_PARTITIONS, (partition_name(cutoff),))
        names = [row[0] for row in cur.fetchall()]
    return [datetime.strptime(n[-8:], "%Y%m%d").replace(tzinfo=UTC).date() for n in names]


def committed_keys(conn: Any) -> set[str]:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT object_key FROM archive_manifest WHERE restored_at IS NULL")
        return {row[0] for row in cur.fetchall()}


def orphans_by_day(bucket: Bucket, committed: set[str]) -> dict[date | None, list[str]]:
    """Archive objects no committed manifest row lists, by their ``shown_date`` (None when a
    key names no day). Listed once a run: the archive lock keeps other writers out."""
    found: dict[date | None, list[str]] = {}
    for key in bucket.keys(TABLE_PREFIX):
        if key in committed:
            continue
        part = key[len(TABLE_PREFIX) :].split("/", 1)[0]
        try:
            day: date | None = date.fromisoformat(part.removeprefix("shown_date="))
        except ValueError:
            day = None
        found.setdefault(day, []).append(key)
    return found


def archive(conn: Any, bucket: Bucket, run_date: date, retention_days: int) -> dict[str, Any]:
    cutoff = run_date - timedelta(days=retention_days)
    days = old_days(conn, cutoff)
    committed = committed_keys(conn)
    orphans = orphans_by_day(bucket, committed)
    # days archived now may adopt theirs; every other orphan goes
    swept = [key for day, keys in orphans.items() if day not in days for key in keys]
    bucket.delete(swept)
    results = []
    failures = []
    with tempfile.TemporaryDirectory(prefix="adpipe-archive-") as tmp:
        for day in days:
            try:
                result = archive_day(
                    conn, bucket, day, run_date, committed, orphans.get(day, []), Path(tmp)
                )
            except (DataError, UpstreamError) as exc:
                log.error("day %s not archived: %s", day, exc)
                failures.append(f"{day}: {exc}")
                continue
            result["partition_dropped"] = drop_if_empty(conn, day)
            if result["rows"]:
                log.info("archived %s: %d rows to %s", day, result["rows"], result["key"])
            results.append(result)
    summary = {
        "date": run_date.isoformat(),
        "cutoff": cutoff.isoformat(),
        "days_archived": sum(1 for r in results if r["rows"]),
        "rows_archived": sum(r["rows"] for r in results),
        "objects_written": sum(1 for r in results if r["written"]),
        "objects_adopted": sum(1 for r in results if r["adopted"]),
        "orphans_deleted": len(swept) + sum(r["orphans_deleted"] for r in results),
        "partitions_dropped": sum(1 for r in results if r["partition_dropped"]),
        "keys": [r["key"] for r in results if r["key"]],
    }
    if failures:
        raise DataError(
            f"{len(failures)} of {len(days)} days not archived "
            f"({'; '.join(failures)}); archived: {summary['days_archived']}",
            "their rows are still in PostgreSQL; rerun once the cause is fixed",
        )
    return summary


def _with_lock(conn: Any, work: Any) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (ARCHIVE_LOCK,))
        got = cur.fetchone()[0]
    conn.commit()
    if not got:
        raise UpstreamError(
            "another archive or restore run holds the archive lock",
            "wait for it to end, then rerun",
        )
    try:
        return work()
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (ARCHIVE_LOCK,))
        conn.commit()


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    bucket = Bucket(settings)
    with session(
        settings.warehouse_dsn, "adpipe-archive", "the day in flight was rolled back; rerun"
    ) as conn:
        if args.command == "restore":
            check_day_range(args.first, args.last)
            return _with_lock(conn, lambda: restore(conn, bucket, args.first, args.last))
        return _with_lock(conn, lambda: archive(conn, bucket, args.date, settings.retention_days))


def parser() -> argparse.ArgumentParser:
    doc = (__doc__ or "").splitlines()[0]
    if len(sys.argv) > 1 and sys.argv[1] == "restore":
        restore_parser = argparse.ArgumentParser(prog="archive restore", description=doc)
        restore_parser.add_argument("command", choices=["restore"])
        day_range_arguments(restore_parser)
        return restore_parser
    archive_parser = argparse.ArgumentParser(description=doc)
    archive_parser.add_argument(
        "--date",
        type=date.fromisoformat,
        required=True,
        help="the run's date; days before date - retention move",
    )
    archive_parser.set_defaults(command="archive")
    return archive_parser


if __name__ == "__main__":
    run("archive", parser(), main)
