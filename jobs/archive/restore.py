"""restore: archived days back into ``ad_impressions``.

For each archive object of the days asked for: read it (batch by batch), COPY its rows into a
temporary table, insert them with ON CONFLICT DO NOTHING (so a second restore changes
nothing), mark its manifest row restored, commit; then remove the object from the archive, so
the archive prefix and the table never hold the same row. That delete is safe because the
commit before it holds every row of the object (the staged count equals the manifest's) in
the table, and the manifest row says so. A restored day older than the
retention cutoff is archived again by the next archive run.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from adpipe.job import DataError
from adpipe.storage import Bucket
from adpipe.warehouse import TABLE_COLUMNS as COLUMNS
from adpipe.warehouse import LineStream, copy_in, ensure_partitions, lock_days

RESTORABLE = """
SELECT archive_id, object_key, shown_date, rows FROM archive_manifest
WHERE shown_date BETWEEN %s AND %s AND restored_at IS NULL
ORDER BY shown_date, archive_id
"""
STAGE = (
    "CREATE TEMPORARY TABLE stage_restore (LIKE ad_impressions INCLUDING DEFAULTS) ON COMMIT DROP"
)


def _csv_lines(path: Path) -> Any:
    """CSV text for COPY, batch by batch (uuids rendered back to text)."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=50_000):
        raw = batch.column("impression_id").storage.buffers()[1].to_pybytes()
        ids = pa.array(
            [str(uuid.UUID(bytes=raw[i * 16 : (i + 1) * 16])) for i in range(batch.num_rows)]
        )
        table = pa.Table.from_batches([batch]).set_column(0, "impression_id", ids)
        out = io.BytesIO()
        pacsv.write_csv(table.select(list(COLUMNS)), out, pacsv.WriteOptions(include_header=False))
        yield out.getvalue().decode()


def restore(conn: Any, bucket: Bucket, first: date, last: date) -> dict[str, Any]:
    with conn, conn.cursor() as cur:
        cur.execute(RESTORABLE, (first, last))
        objects = cur.fetchall()
    restored_rows = 0
    days = set()
    with tempfile.TemporaryDirectory(prefix="adpipe-restore-") as tmp:
        path = Path(tmp) / "object.parquet"
        for archive_id, key, day, rows in objects:
            with path.open("wb") as handle:
                if not bucket.download(key, handle):
                    raise DataError(
                        f"archive object s3://{bucket.name}/{key} is missing",
                        "the manifest lists it; inspect the bucket",
                    )
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
                cur.execute(
                    "INSERT INTO ad_impressions SELECT * FROM stage_restore ON CONFLICT DO NOTHING"
                )
                restored_rows += cur.rowcount
                cur.execute(
                    "UPDATE archive_manifest SET restored_at = now() WHERE archive_id = %s",
                    (archive_id,),
                )
            bucket.delete([key])
            days.add(day.isoformat())
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "objects_restored": len(objects),
        "rows_restored": restored_rows,
        "days": sorted(days),
    }
