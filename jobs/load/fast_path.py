"""The load's fast path: a page's records checked column by column and kept as Arrow
rows for the load's binary COPY, without Python touching each row.

It only ever accepts. A record it accepts is one `impression_rules.normalise` would accept,
turned into the same row (the same UUID, the same integers and texts, the same instant);
every other record (a string where an integer belongs, a missing field, an id in capitals,
a timestamp in an unusual form, anything the rules reject) is left to the rules, which stay
the one specification and give every reason. A page the typed decoder cannot read at all
goes to the rules whole. `rules_rows` puts the rows the rules accept into the same Arrow
shape, so every row travels one way.

msgspec decodes the page into typed fields in C; pyarrow checks the columns. A timestamp
goes as the UTC instant Arrow parsed from the API's text, the instant the rules compute,
never the API's text itself: PostgreSQL takes offsets only up to 15:59, RFC 3339 allows
23:59.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from adpipe.table import COLUMNS, IMPRESSION_COLUMNS, arrow_type, uuid_bytes
from impression_rules import CURRENCIES

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# printable ASCII: printable to the rules too
SHORT_TEXT = r"^[\x20-\x7e]{1,64}$"
COUNTRY = r"^[A-Z]{2}$"
# RFC 3339 with an offset, in the forms Python's fromisoformat and Arrow read alike
SHOWN_AT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
EPOCH = "1970-01-01T00:00:00Z"  # stands in for a timestamp already left to the rules
API_COLUMNS = [c for c in COLUMNS if c.from_api]
INTEGERS = tuple(c.name for c in API_COLUMNS if c.arrow == "int64")
SENT_AS = {"bool": pa.bool_()}  # the API's other fields are read as text, then checked
INSTANT = pa.timestamp("us", tz="UTC")
TEXTS = ("placement", "device")
CURRENCY_SET = pa.array(sorted(CURRENCIES))
UUID_BYTES = pa.binary(16)  # what PostgreSQL's uuid reads in binary COPY
# a checked row's columns: its record's ordinal (its place in the window), then the API's
STAGE_SCHEMA = pa.schema(
    [("ordinal", pa.int64())]
    + [(c.name, UUID_BYTES if c.arrow == "uuid" else arrow_type(c)) for c in API_COLUMNS]
)


class Impression(msgspec.Struct):
    """The fields the rules read, typed loosely enough that one odd record does not fail the
    page: a missing field is None, an integer may come as a string (the rules decide it)."""

    impression_id: str | None = None
    ad_id: int | str | None = None
    campaign_id: int | str | None = None
    advertiser_id: int | str | None = None
    placement: str | None = None
    device: str | None = None
    country: str | None = None
    shown_at: str | None = None
    cost_micros: int | str | None = None
    currency: str | None = None
    clicked: bool | None = None


class Page(msgspec.Struct):
    impressions: list[Impression]


class RawPage(msgspec.Struct):
    impressions: list[msgspec.Raw]


PAGE = msgspec.json.Decoder(Page)
FIELDS = [(c, attrgetter(c.name)) for c in API_COLUMNS]  # a column's values from the records
RAW_PAGE = msgspec.json.Decoder(RawPage)


class Batch:
    """A page through the fast path: ``rows`` holds the accepted rows (`STAGE_SCHEMA`),
    ``left`` the positions left to the rules, ``records`` how many the page holds."""

    def __init__(self, rows: pa.RecordBatch, left: list[int], records: int) -> None:
        self.rows, self.left, self.records = rows, left, records

    @property
    def accepted(self) -> int:
        return self.rows.num_rows


EMPTY = pa.RecordBatch.from_pylist([], schema=STAGE_SCHEMA)


def page_batch(body: bytes, start: datetime, end: datetime, first_ordinal: int) -> Batch | None:
    """The page's records the fast path accepts, as rows for the load (ordinal
    ``first_ordinal + position``), or None when the page is for the rules whole."""
    try:
        records = PAGE.decode(body).impressions
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    count = len(records)
    if not count:
        return Batch(EMPTY, [], 0)
    try:
        columns = {}
        for column, field in FIELDS:  # each as the API sends it: ids and times as text
            values = list(map(field, records))
            if column.arrow == "int64":
                columns[column.name] = _integers(values)
            else:
                columns[column.name] = pa.array(values, SENT_AS.get(column.arrow, pa.string()))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    ok = pc.and_kleene(
        pc.match_substring_regex(columns["impression_id"], UUID),
        pc.match_substring_regex(columns["country"], COUNTRY),
    )
    ok = pc.and_kleene(ok, pc.is_in(columns["currency"], value_set=CURRENCY_SET))
    ok = pc.and_kleene(ok, pc.is_valid(columns["clicked"]))
    for name in TEXTS:
        ok = pc.and_kleene(ok, pc.match_substring_regex(columns[name], SHORT_TEXT))
    for name in INTEGERS:
        ok = pc.and_kleene(ok, pc.greater_equal(columns[name], 0))
    ok = pc.and_kleene(ok, pc.match_substring_regex(columns["shown_at"], SHOWN_AT))
    ok = pc.fill_null(ok, False)
    try:
        shown_at = pc.cast(pc.if_else(ok, columns["shown_at"], EPOCH), INSTANT)
    except pa.ArrowInvalid:  # a date that does not exist (Feb 30): the rules say so
        return None
    in_window = pc.and_(
        pc.greater_equal(shown_at, pa.scalar(start, INSTANT)),
        pc.less(shown_at, pa.scalar(end, INSTANT)),
    )
    ok = pc.and_(ok, in_window)
    left = pc.indices_nonzero(pc.invert(ok)).to_pylist()
    columns["shown_at"] = shown_at
    ordinals = pa.array(range(first_ordinal, first_ordinal + count), pa.int64())
    kept = [column.filter(ok) for column in (ordinals, *map(columns.get, IMPRESSION_COLUMNS))]
    kept[1] = _ids(kept[1])
    return Batch(pa.RecordBatch.from_arrays(kept, schema=STAGE_SCHEMA), left, count)


def rules_rows(rows: list[tuple[Any, ...]], ordinals: list[int]) -> pa.RecordBatch:
    """The rows `impression_rules.normalise` accepted, each after its ordinal, in the fast
    path's shape: one way into PostgreSQL for every row."""
    if not rows:
        return EMPTY
    fields = list(zip(*rows, strict=True))
    position = IMPRESSION_COLUMNS.index("shown_at")
    fields[position] = tuple(map(datetime.fromisoformat, fields[position]))
    ids = pa.array(fields[0], pa.string())
    arrays = [
        pa.array(values, STAGE_SCHEMA.field(name).type)
        for name, values in zip(IMPRESSION_COLUMNS[1:], fields[1:], strict=True)
    ]
    return pa.RecordBatch.from_arrays(
        [pa.array(ordinals, pa.int64()), _ids(ids), *arrays], schema=STAGE_SCHEMA
    )


def _ids(texts: pa.StringArray) -> pa.Array:
    """Canonical ids as the 16 bytes binary COPY sends for a uuid."""
    return pa.Array.from_buffers(UUID_BYTES, len(texts), [None, pa.py_buffer(uuid_bytes(texts))])


def raw_records(body: bytes) -> list[msgspec.Raw]:
    """Each record's own bytes (``bytes(raw)``), for the records left to the rules."""
    return RAW_PAGE.decode(body).impressions


def _integers(values: Sequence[object]) -> pa.Array:
    """int64 of the values that are integers (not bools) that fit, or strings of 1 to 18
    ASCII digits (which always fit; the rules read them as the same integer); None for the
    rest, which the rules read. One pass in Python, only for a page that sends a value other
    than an integer in the column."""
    try:
        return pa.array(values, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    integers = [
        v
        if v.__class__ is int
        else int(v)
        if v.__class__ is str and len(v) <= 18 and v.isascii() and v.isdigit()
        else None
        for v in values
    ]
    try:
        return pa.array(integers, pa.int64())
    except OverflowError:  # beyond a bigint
        fits = [v if v is None or -(2**63) <= v < 2**63 else None for v in integers]  # type: ignore[operator]
        return pa.array(fits, pa.int64())
