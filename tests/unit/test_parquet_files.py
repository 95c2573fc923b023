"""The archive's Parquet writing: a day's rows, however they are cut into batches, give the
same rows and the same facts; a batch in other columns is refused, never written; a file is
read back a batch at a time in memory that does not grow with it."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from adpipe.errors import DataError
from adpipe_archive.parquet_files import SCHEMA, batches, ids_sha256, write_parquet


def day_rows(rows: int) -> pa.Table:
    """A day's rows as ADBC reads them: the table's columns, nullable, uuids as Arrow's."""
    start = int(datetime(2026, 8, 3, tzinfo=UTC).timestamp() * 1e6)
    ids = b"".join(uuid.UUID(int=n * 7919 + 1).bytes for n in range(min(rows, 3000)))
    ids += os.urandom(16 * rows - len(ids))
    numbers = pa.array(range(rows), pa.int64())
    every = pa.array([0] * rows, pa.int64())

    def instants(micros: pa.Array) -> pa.Array:
        return pc.add(micros, start).cast(pa.timestamp("us", "UTC"))

    columns = {
        "impression_id": pa.ExtensionArray.from_storage(
            pa.uuid(), pa.Array.from_buffers(pa.binary(16), rows, [None, pa.py_buffer(ids)])
        ),
        "ad_id": numbers,
        "campaign_id": pc.divide(numbers, 10),
        "advertiser_id": pc.divide(numbers, 50),
        "placement": pc.if_else(pc.equal(numbers, 0), 'line\nbreak, "quoted"', "feed"),
        "device": pa.repeat("ctv", rows),
        "country": pa.repeat("DE", rows),
        "shown_at": instants(pc.multiply(numbers, 7_500_000)),
        "cost_micros": pc.multiply(numbers, 3),
        "currency": pa.repeat("EUR", rows),
        "clicked": pc.equal(pc.bit_wise_and(numbers, 1), 1),
        "load_run_id": pc.add(every, 42),
        "loaded_at": instants(pc.add(every, 86_400_000_000)),
    }
    return pa.table(columns)


def test_the_same_rows_in_other_batches_give_the_same_rows_and_facts(tmp_path: Path) -> None:
    table = day_rows(3000)
    whole = write_parquet(table.to_batches(), tmp_path / "whole.parquet")
    cut = write_parquet(table.to_batches(max_chunksize=97), tmp_path / "cut.parquet")
    assert whole == cut
    assert whole["rows"] == 3000
    assert whole["min_us"] == int(datetime(2026, 8, 3, tzinfo=UTC).timestamp() * 1e6)
    assert ids_sha256(tmp_path / "cut.parquet") == (3000, whole["ids_sha256"])
    written = pq.read_table(tmp_path / "cut.parquet")
    assert written.schema == SCHEMA
    assert written.equals(pq.read_table(tmp_path / "whole.parquet"))
    assert written.column("placement")[0].as_py() == 'line\nbreak, "quoted"'
    assert written.column("impression_id").combine_chunks().storage.to_pylist()[:2] == [
        uuid.UUID(int=1).bytes,
        uuid.UUID(int=7920).bytes,
    ]


def test_rows_in_other_columns_than_the_archives_are_refused(tmp_path: Path) -> None:
    table = day_rows(10).drop_columns(["loaded_at"])
    with pytest.raises(DataError, match="not in the archive's columns"):
        write_parquet(table.to_batches(), tmp_path / "day.parquet")
    swapped = day_rows(10).set_column(1, "ad_id", pa.array([str(n) for n in range(10)]))
    with pytest.raises(DataError, match="not in the archive's columns"):
        write_parquet(swapped.to_batches(), tmp_path / "day.parquet")


def test_a_file_is_read_back_in_memory_that_does_not_grow_with_it(tmp_path: Path) -> None:
    write_parquet(day_rows(2_000_000).to_batches(65_536), tmp_path / "day.parquet")
    base, peak = pa.total_allocated_bytes(), 0
    for batch in batches(tmp_path / "day.parquet", ["impression_id"]):
        peak = max(peak, pa.total_allocated_bytes() - base)
        assert batch.num_rows <= 65_536
    # a batch of ids is 1 MiB; the column, which pyarrow's pre-buffering kept, is 32 MB
    assert peak < 8 << 20
