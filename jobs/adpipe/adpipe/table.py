"""The table ad_impressions: its columns in order, each with its PostgreSQL and Arrow type:
the record contract's fields (`adpipe.record`), then the two the load adds. The load, its fast
path, the archive's Parquet files, restore and the bench read the columns from here (the
migrations create them; its day partitions: `adpipe.partitions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adpipe.record import CONTRACT, Field

if TYPE_CHECKING:  # pyarrow ships in the load and archive images only
    import pyarrow as pa

TABLE = "ad_impressions"


@dataclass(frozen=True)
class Column:
    """One column of ``ad_impressions``.

    Attributes:
        name: its name.
        postgres: its type in PostgreSQL, as migration 0001 declares it.
        arrow: its Arrow type as the archive's Parquet files store it (`arrow_type`).
        from_api: whether the ad API sends it; the load adds the others.
        nullable: whether it may be NULL (a field the contract added later, for one).
        since: the record contract's version that added it.
    """

    name: str
    postgres: str
    arrow: str
    from_api: bool = True
    nullable: bool = False
    since: int = 1


COLUMNS = (
    *(
        Column(f.name, f.postgres_type, f.arrow, nullable=f.nullable, since=f.since)
        for f in CONTRACT
    ),
    Column("load_run_id", "bigint", "int64", from_api=False),
    Column("loaded_at", "timestamptz", "timestamp", from_api=False),
)
TABLE_COLUMNS = tuple(c.name for c in COLUMNS)  # every column, in table order
# the columns that come from the ad API, in table order: a normalised record's fields
IMPRESSION_COLUMNS = tuple(c.name for c in COLUMNS if c.from_api)


def arrow_type(column: Column | Field) -> pa.DataType:
    """The column's Arrow type: timestamps in microseconds, UTC; ids as Arrow's uuid."""
    import pyarrow as pa  # only the images that write or read Arrow call this

    if column.arrow == "timestamp":
        return pa.timestamp("us", tz="UTC")
    return {"uuid": pa.uuid, "int64": pa.int64, "string": pa.string, "bool": pa.bool_}[
        column.arrow
    ]()


def uuid_bytes(texts: pa.StringArray) -> bytes:
    """The 16-byte forms of canonical uuid texts (the API's, once checked), in order, without
    a Python object per row: the array's character data is the texts back to back."""
    import pyarrow as pa

    _, offsets_buffer, data_buffer = texts.buffers()
    if not len(texts):
        return b""
    offsets = pa.Array.from_buffers(
        pa.int32(), len(texts) + 1, [None, offsets_buffer], offset=texts.offset
    )
    data = data_buffer[offsets[0].as_py() : offsets[-1].as_py()].to_pybytes()
    return bytes.fromhex(data.translate(None, b"-").decode("ascii"))
