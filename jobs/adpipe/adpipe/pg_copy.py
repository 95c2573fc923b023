"""COPY into PostgreSQL from a stream that is produced while COPY reads it: no input is ever
held whole in memory. `binary_rows` turns Arrow record batches into COPY's binary format."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg2

if TYPE_CHECKING:  # pyarrow ships in the load and archive images only
    import pyarrow as pa


def copy_in(cur: Any, statement: str, stream: LineStream) -> None:
    """COPY ``stream`` into the table; an error raised while producing its lines (bad data,
    S3) surfaces as itself, not as the database error psycopg2 wraps it in."""
    try:
        cur.copy_expert(statement, stream, size=1 << 16)
    except psycopg2.Error:
        if stream.error is not None:
            raise stream.error from None
        raise


class LineStream(io.RawIOBase):
    """A read-only file over an iterable of text lines or byte chunks, for ``copy_expert``
    without buffering the whole input: COPY pulls what it needs, the iterable produces it on
    demand."""

    def __init__(self, lines: Iterable[str | bytes]) -> None:
        self._lines: Iterator[str | bytes] = iter(lines)
        self._pending = memoryview(b"")
        self.error: BaseException | None = None  # what the lines raised, if anything

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view):
            if not self._pending:
                try:
                    line = next(self._lines, None)
                except BaseException as exc:  # psycopg2 reports it as a COPY failure: keep it
                    self.error = exc
                    raise
                if line is None:
                    break
                self._pending = memoryview(line.encode() if isinstance(line, str) else line)
                continue
            size = min(len(view) - filled, len(self._pending))
            view[filled : filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled


def binary_rows(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """The batches (each of ``schema``, its fields in the table's column order) as one
    ``COPY ... WITH (FORMAT binary)`` stream, encoded by pgpq. It hands out its buffer about
    every megabyte, so memory stays a batch and a buffer whatever the rows. The server reads
    each field by its column's type, not the batch's: a string is text to text and char(n),
    16 fixed bytes are a uuid, microseconds since 1970 in UTC a timestamptz."""
    import pgpq  # only the load's image encodes binary COPY

    encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
    yield encoder.write_header()
    for batch in batches:
        yield encoder.write_batch(batch)
    yield encoder.finish()
