"""The archive's Parquet writing: streamed from COPY's CSV while it arrives, it gives the same
file as the whole CSV in one block, cuts blocks only where records end, and a failure surfaces
instead of hanging the COPY."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import parquet_files
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from parquet_files import ParquetSink, blocks_to_parquet


def day_csv(rows: int) -> bytes:
    """PostgreSQL's CSV of a day, as the archive's COPY writes it (TimeZone UTC)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for n in range(rows):
        placement = 'line\nbreak, "quoted"' if n % 7 == 0 else "feed"
        writer.writerow(
            [
                str(uuid.UUID(int=n * 7919 + 1)),
                n,
                n // 10,
                n // 50,
                placement,
                "ctv",
                "DE",
                f"2026-08-03 00:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}+00",
                n * 3,
                "EUR",
                "t" if n % 2 else "f",
                42,
                "2026-08-04 10:00:00+00",
            ]
        )
    return out.getvalue().encode()


def test_streamed_parquet_equals_the_one_from_the_whole_csv(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(parquet_files, "BATCH_BYTES", 4096)  # many blocks, cut mid-record
    data = day_csv(3000)
    expected = blocks_to_parquet([data], tmp_path / "whole.parquet")  # one block, no cuts
    with ParquetSink(tmp_path / "streamed.parquet") as sink:
        for start in range(0, len(data), 157):  # COPY's writes are a row or less each
            sink.write(data[start : start + 157])
    assert sink.facts == expected
    assert expected["rows"] == 3000
    streamed = pq.read_table(tmp_path / "streamed.parquet")
    assert streamed.equals(pq.read_table(tmp_path / "whole.parquet"))
    assert streamed.column("placement")[0].as_py() == 'line\nbreak, "quoted"'


def test_a_block_the_converter_cannot_read_fails_the_copy_and_ends_the_thread(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(parquet_files, "BATCH_BYTES", 1024)
    bad = day_csv(50).replace(b",ctv,", b",ctv,,", 1)  # one record with a column too many
    sink = ParquetSink(tmp_path / "day.parquet")
    with pytest.raises(pa.ArrowInvalid, match=r"(?i)column|field"), sink:
        for _ in range(200):
            sink.write(bad)
    assert not sink._thread.is_alive()


def test_an_error_in_the_copy_stops_the_converter_without_waiting_for_more(
    tmp_path: Path,
) -> None:
    sink = ParquetSink(tmp_path / "day.parquet")
    with pytest.raises(RuntimeError, match="connection lost"), sink:
        sink.write(day_csv(10))
        raise RuntimeError("connection lost")
    assert not sink._thread.is_alive()
