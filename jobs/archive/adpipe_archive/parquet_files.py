"""The archive's Parquet files: the column layout (per version of the record contract), a
day's Arrow record batches written as Parquet (zstd) a batch at a time, and files read back
a batch at a time, so memory stays a few batches whatever the day's size. ``archive`` writes
with it, ``verify``, ``restore`` and ``repair`` read what it wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from adpipe.errors import DataError
from adpipe.record import VERSION
from adpipe.table import COLUMNS, arrow_type

ROW_GROUP_ROWS = 65_536  # batches are gathered into row groups of about this many rows


def schema(version: int = VERSION) -> pa.Schema:
    """The table's columns (adpipe.table) as an object written at ``version`` of the record
    contract holds them, each with its type there: ids as Arrow's 16-byte uuid, timestamps in
    microseconds, UTC."""
    return pa.schema([(c.name, arrow_type(c), c.nullable) for c in COLUMNS if c.since <= version])


SCHEMA = schema()  # what the archive writes now (archive_manifest.schema_version: VERSION)


def version_of(path: Path) -> int:
    """The record contract's version an object was written at, by the columns it holds."""
    names = set(pq.read_schema(path).names)
    return max(c.since for c in COLUMNS if c.name in names)


def current(batch: pa.RecordBatch) -> pa.Table:
    """A batch of an object written at any version, in today's columns: a column added
    since is NULL (the record contract adds only nullable fields to what is stored)."""
    names = batch.schema.names
    return pa.Table.from_arrays(
        [
            batch.column(f.name) if f.name in names else pa.nulls(batch.num_rows, f.type)
            for f in SCHEMA
        ],
        names=SCHEMA.names,
    )


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_parquet(rows: Iterable[pa.RecordBatch], parquet_path: Path) -> dict[str, Any]:
    """The day's rows (record batches of the table's columns, as ADBC reads them) into
    Parquet (zstd) in row groups of about ROW_GROUP_ROWS; returns what the manifest records
    of them: the row count, the first and last ``shown_at`` (microseconds since the epoch)
    and the sha256 of the ids in file order."""
    ids = hashlib.sha256()
    count, low, high = 0, None, None
    pending: list[pa.RecordBatch] = []
    with pq.ParquetWriter(parquet_path, SCHEMA, compression="zstd") as writer:

        def flush() -> None:
            if pending:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=1 << 30)
                pending.clear()

        for batch in rows:
            if batch.num_rows == 0:
                continue
            batch = as_archived(batch)
            ids.update(uuid_storage(batch.column(0)))
            first, last = pc.min_max(batch.column("shown_at").cast(pa.int64())).values()
            low = first.as_py() if low is None else min(low, first.as_py())
            high = last.as_py() if high is None else max(high, last.as_py())
            pending.append(batch)
            count += batch.num_rows
            if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                flush()
        flush()
    return {"rows": count, "min_us": low, "max_us": high, "ids_sha256": ids.hexdigest()}


def as_archived(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch under the archive's schema (PostgreSQL's field notes and nullability left
    behind); `DataError` when its columns are not the archive's."""
    found = [(f.name, f.type) for f in batch.schema]
    if found != [(f.name, f.type) for f in SCHEMA]:
        raise DataError(
            f"the day's rows come as {found}, not in the archive's columns; nothing was deleted",
            "check that the warehouse's schema is this image's (make migrate)",
        )
    return pa.RecordBatch.from_arrays(batch.columns, schema=SCHEMA)


def uuid_storage(ids: pa.Array) -> bytes:
    """A uuid column's ids, 16 bytes each, back to back, in order."""
    storage = ids.storage
    data = storage.buffers()[1]
    return data[16 * storage.offset : 16 * (storage.offset + len(storage))].to_pybytes()


def batches(
    path: Path, columns: list[str] | None = None, size: int = 65_536
) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows (or some of its columns) a batch at a time, in memory bounded by
    a batch whatever the file's size: pyarrow's pre-buffering is off, which otherwise keeps
    every column chunk it read until the file is closed (166 MB for a 10M-row day's ids)."""
    yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=size, columns=columns)


def ids_sha256(path: Path) -> tuple[int, str]:
    """A Parquet file's row count and the sha256 of its ordered 16-byte impression ids, read
    column-wise a batch at a time."""
    ids, rows = hashlib.sha256(), 0
    for batch in batches(path, ["impression_id"]):
        ids.update(uuid_storage(batch.column(0)))
        rows += batch.num_rows
    return rows, ids.hexdigest()
