"""How restore works (what its user reads is RESTORE_DOC, its --help).

For each archive object of the days asked for: download it and prove it is the object that
was archived (its SHA-256, row count and ids digest equal its archive_manifest row), COPY its
rows into a temporary table, insert them, check that every one went in (a row already in the
table means the day holds it twice: nothing is inserted), mark its manifest row restored,
commit; then remove the object from the archive, so the archive prefix and the table never
hold the same row. That delete is safe because the commit before it holds every row of the
object in the table, counted, and the manifest row says so. A restored day older than the
retention cutoff is archived again by the next archive run.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from adpipe.errors import DataError
from adpipe.job import Command, check_day_range, day_range_arguments
from adpipe.locks import lock_days
from adpipe.partitions import ensure_partitions
from adpipe.pg_copy import LineStream, copy_in
from adpipe.settings import S3, WAREHOUSE
from adpipe.storage import Bucket
from adpipe.table import TABLE_COLUMNS as COLUMNS

from adpipe_archive.archive import archive_session
from adpipe_archive.parquet_files import batches, current
from adpipe_archive.verify import as_archived, download, set_aside_and_reload

RESTORE_DOC = """restore: Bring archived days back from S3 into ad_impressions.

For each archive object of the days from --from to --to (both included): downloads it,
proves it is the object that was archived (its SHA-256, row count and ids are those
archive_manifest records), puts its rows back into ad_impressions and marks its manifest
row restored, in one transaction; then deletes the object, so no row is in both the table
and the archive. The delete comes only after the commit that holds every row of the object,
counted. A restored day older than the retention is archived again by the next archive run.

Safe to run again: a restored object is no longer listed, so a rerun restores only what is
left. A failure leaves the objects restored before it restored and the one it failed on in
the archive, untouched. Refused, nothing of the object restored or deleted (exit 3): an
object that is missing or whose bytes are not those archived (the FAILED line names the
commands that put it right), and one with a row already in ad_impressions, which the day
would then hold twice. A --to before --from is exit 2.

    docker run --rm --network host --env-file .env.archive adpipe/archive:dev restore \\
        --from 2026-10-01 --to 2026-10-03
"""
RESTORABLE = """
SELECT archive_id, object_key, shown_date, rows, sha256, ids_sha256 FROM archive_manifest
WHERE shown_date BETWEEN %s AND %s AND restored_at IS NULL
ORDER BY shown_date, archive_id
"""
STAGE = (
    "CREATE TEMPORARY TABLE stage_restore (LIKE ad_impressions INCLUDING DEFAULTS) ON COMMIT DROP"
)


def _csv_lines(path: Path) -> Any:
    """CSV text for COPY, batch by batch (uuids rendered back to text)."""
    for batch in batches(path, size=50_000):
        raw = batch.column("impression_id").storage.buffers()[1].to_pybytes()
        ids = pa.array(
            [str(uuid.UUID(bytes=raw[i * 16 : (i + 1) * 16])) for i in range(batch.num_rows)]
        )
        table = current(batch).set_column(0, "impression_id", ids)
        out = io.BytesIO()
        pacsv.write_csv(table.select(list(COLUMNS)), out, pacsv.WriteOptions(include_header=False))
        yield out.getvalue().decode()


def restore(conn: Any, bucket: Bucket, first: date, last: date) -> dict[str, Any]:
    """Each live archive object of the days back into ad_impressions, one transaction each:
    downloaded and proven, its rows staged, counted and added, its manifest row marked
    restored; then the object, redundant, is deleted."""
    with conn, conn.cursor() as cur:
        cur.execute(RESTORABLE, (first, last))
        objects = cur.fetchall()
    restored_rows = 0
    days = set()
    with tempfile.TemporaryDirectory(prefix="adpipe-restore-") as tmp:
        path = Path(tmp) / "object.parquet"
        for archive_id, key, day, rows, sha256, ids in objects:
            fetch(bucket, key, day, (rows, sha256, ids), path)
            restored_rows += put_back(conn, bucket, (archive_id, key, day, rows), path)
            # the commit above holds every row of the object in the table, counted, and its
            # manifest row says so: the object is redundant now
            bucket.delete([key])
            days.add(day.isoformat())
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "objects_restored": len(objects),
        "rows_restored": restored_rows,
        "days": sorted(days),
    }


def fetch(bucket: Bucket, key: str, day: date, facts: tuple[int, str, str], path: Path) -> None:
    """The object into ``path``, proven to hold what archive_manifest records (``facts``:
    rows, sha256, ids' sha256)."""
    if not download(bucket, key, path):
        raise DataError(
            f"archive object s3://{bucket.name}/{key} is missing; nothing of it was restored",
            f"put the object back from a copy of the bucket, or reload day {day} "
            f"from its backups: {set_aside_and_reload(key, day)}",
        )
    as_archived(path, key, facts, bucket.name, day)


def put_back(conn: Any, bucket: Bucket, listed: tuple[int, str, date, int], path: Path) -> int:
    """The object's rows (``listed``: its manifest row's id, key, day and rows) into the
    table, and its manifest row marked restored, in one transaction; returns the rows."""
    archive_id, key, day, rows = listed
    ensure_partitions(conn, day, day)
    with conn, conn.cursor() as cur:
        lock_days(cur, day, day)  # no load of the day checks or writes meanwhile
        cur.execute(STAGE)
        copy_in(
            cur,
            f"COPY stage_restore ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)",
            LineStream(_csv_lines(path)),
        )
        cur.execute("SELECT count(*) FROM stage_restore")
        staged = cur.fetchone()[0]
        if staged != rows:
            raise DataError(f"{key} holds {staged} rows, the manifest says {rows}")
        cur.execute("INSERT INTO ad_impressions SELECT * FROM stage_restore ON CONFLICT DO NOTHING")
        if cur.rowcount != rows:
            raise DataError(
                f"{rows - cur.rowcount} of the {rows} rows of archive object "
                f"s3://{bucket.name}/{key} are in ad_impressions already: day {day} "
                "would hold them twice; nothing was restored or deleted",
                f"see which (make psql: ids of day {day}), remove the copies that "
                "should not be there, then rerun the restore",
            )
        cur.execute(
            "UPDATE archive_manifest SET restored_at = now() WHERE archive_id = %s", (archive_id,)
        )
    return rows


def main(args: argparse.Namespace) -> dict[str, Any]:
    check_day_range(args.first, args.last)
    with archive_session(args.settings) as conn:
        return restore(conn, Bucket(args.settings), args.first, args.last)


RESTORE = Command(
    "restore",
    "archive",
    RESTORE_DOC,
    main,
    day_range_arguments,
    env_file="archive",
    settings=(*WAREHOUSE, *S3),
)
