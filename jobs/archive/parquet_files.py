"""The archive's Parquet files: the column layout, and the day's CSV (as PostgreSQL's
``COPY ... TO STDOUT WITH (FORMAT csv)`` writes it) turned into Parquet (zstd) batch by batch,
in memory bounded by a few megabytes whatever the day's size. ``archive`` writes with it,
``verify`` and ``reconcile`` read what it wrote.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from adpipe.table import COLUMNS, arrow_type, uuid_bytes

BATCH_BYTES = 2 << 20  # CSV parsed per block: small blocks keep memory flat
ROW_GROUP_ROWS = 65_536  # batches are gathered into row groups of about this many rows
# The table's columns (adpipe.table) in Parquet, each with its type there. The day travels
# as CSV: ids as text (stored as Arrow's 16-byte uuid), timestamps as PostgreSQL's own text
# in UTC ("2026-08-03 00:00:01.5+00", the archive sets TimeZone), which Arrow parses exactly;
# numeric extract(epoch ...) cost more than the rest of the export.
SCHEMA = pa.schema([(c.name, arrow_type(c), False) for c in COLUMNS])
CSV_TYPES = {f.name: pa.string() if f.name == "impression_id" else f.type for f in SCHEMA}


def copy_expressions() -> list[str]:
    """Each column as the archive's COPY selects it, for the CSV `blocks_to_parquet` reads."""
    return [f"{c.name}::text" if c.arrow == "uuid" else c.name for c in COLUMNS]


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def record_end(data: bytes | bytearray) -> int:
    """Just past the last line end of ``data`` that ends a CSV record, or 0 when none does.

    PostgreSQL's CSV quotes every field holding a quote, comma or line end, and doubles the
    quotes inside it; so a line end ends a record exactly when the quotes before it are even
    in number. Counting is done by ``bytes.count``, not per character in Python."""
    quotes = data.count(b'"')
    after, end = 0, len(data)
    while (line_end := data.rfind(b"\n", 0, end)) >= 0:
        after += data.count(b'"', line_end, end)
        if (quotes - after) % 2 == 0:
            return line_end + 1
        end = line_end
    return 0


class ParquetSink:
    """A file to hand ``COPY ... TO STDOUT``: the CSV PostgreSQL sends is cut into blocks at
    record ends and turned into Parquet by a thread while the server goes on sending (Arrow
    releases the GIL), instead of after it. At most QUEUED blocks wait, so memory stays at a
    few megabytes whatever the day's size. ``facts`` is what `blocks_to_parquet` returns.

        with ParquetSink(path) as sink:
            cur.copy_expert("COPY (...) TO STDOUT WITH (FORMAT csv)", sink)
    """

    QUEUED = 4

    def __init__(self, parquet_path: Path) -> None:
        self.facts: dict[str, Any] = {}
        self._pending = bytearray()
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=self.QUEUED)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._convert, args=(parquet_path,), name="parquet", daemon=True
        )

    def __enter__(self) -> ParquetSink:
        self._thread.start()
        return self

    def write(self, data: bytes) -> int:
        self._pending += data
        if len(self._pending) >= BATCH_BYTES:
            cut = record_end(self._pending)
            if cut:
                self._put(bytes(self._pending[:cut]))
                del self._pending[:cut]
        return len(data)

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if error is None and self._pending:
            self._put(bytes(self._pending))
        self._pending.clear()
        self._blocks.put(None)  # the converter ends: on the last block, or at once on error
        self._thread.join()
        if error is None and self._error is not None:
            raise self._error

    def _put(self, block: bytes) -> None:
        if self._error is not None:  # fail the COPY: the converter gave up
            raise self._error
        self._blocks.put(block)

    def _blocks_until_end(self) -> Iterator[bytes]:
        while (block := self._blocks.get()) is not None:
            yield block

    def _convert(self, parquet_path: Path) -> None:
        try:
            self.facts = blocks_to_parquet(self._blocks_until_end(), parquet_path)
        except BaseException as exc:  # handed to the COPY's thread; drain so it never blocks
            self._error = exc
            while self._blocks.get() is not None:
                pass


def blocks_to_parquet(blocks: Iterable[bytes], parquet_path: Path) -> dict[str, Any]:
    """CSV blocks, each ending where a record ends, into Parquet (zstd) in batches."""
    read_options = pacsv.ReadOptions(column_names=SCHEMA.names)
    convert_options = pacsv.ConvertOptions(
        column_types=CSV_TYPES,
        true_values=["t"],
        false_values=["f"],
        strings_can_be_null=False,
    )
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    reader = (
        batch
        for block in blocks
        for batch in pacsv.read_csv(
            pa.py_buffer(block),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
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
            raw = uuid_bytes(batch.column("impression_id"))
            ids.update(raw)
            storage = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(16), batch.num_rows, [None, pa.py_buffer(raw)]
            )
            arrays = []
            for field, column in zip(SCHEMA, batch.columns, strict=True):
                if field.name == "impression_id":
                    arrays.append(pa.ExtensionArray.from_storage(field.type, storage))
                else:
                    arrays.append(column.cast(field.type))
            shown = batch.column("shown_at").cast(pa.int64())  # microseconds since the epoch
            low = min(v for v in (low, pc.min(shown).as_py()) if v is not None)
            high = max(v for v in (high, pc.max(shown).as_py()) if v is not None)
            pending.append(pa.RecordBatch.from_arrays(arrays, schema=SCHEMA))
            rows += batch.num_rows
            if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                flush()
        flush()
    return {"rows": rows, "min_us": low, "max_us": high, "ids_sha256": ids.hexdigest()}


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
        ids.update(batch.column(0).storage.buffers()[1].to_pybytes()[: 16 * batch.num_rows])
        rows += batch.num_rows
    return rows, ids.hexdigest()
