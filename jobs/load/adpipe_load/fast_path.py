"""The load's fast path: a page's records checked column by column and kept as Arrow
rows for the load's binary COPY, without Python touching each row.

It only ever accepts. A record it accepts is one `impression_rules` would accept, turned into
the same row (the same UUID, the same integers and texts, the same instant); every other
record (a string where an integer belongs, a missing field, an id in capitals, a timestamp in
an unusual form, anything the rules reject) is left to the rules, which stay the one
specification and give every reason. A page the typed decoder cannot read (a record in it is
not UTF-8 throughout, or not JSON it reads) is read again one record at a time, and a record
it cannot read is the rules'; only a page that breaks the page contract goes to the rules
whole. `rules_rows` puts the rows the rules accept into the same Arrow shape, so every row
travels one way.

msgspec decodes the page into typed fields in C; pyarrow checks the columns. What the typed
decoder cannot see in a record (a contract field given twice, of which it keeps the last; a
key spelled with escapes; nesting in a field it skips) is ruled out by the record's length: a
record exactly as long as the compact JSON of its eleven values holds nothing else, and only
the longer ones are searched for a key written twice, a \\u escape or deep nesting
(`_cleared`). A timestamp goes as the UTC instant Arrow parsed from the API's text, the
instant the rules compute, never the API's text itself: PostgreSQL takes offsets only up to
15:59, RFC 3339 allows 23:59.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from adpipe import pages
from adpipe.table import COLUMNS, IMPRESSION_COLUMNS, arrow_type, uuid_bytes

from adpipe_load.impression_rules import CURRENCIES, MAX_NESTING

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
# each contract field's key as it appears in a record's bytes (unless spelled with escapes)
KEYS = tuple(f'"{c.name}"'.encode() for c in API_COLUMNS)
# the bytes of a compact record of the eleven fields, its values aside: braces, commas, each
# key in quotes with its colon
FRAME = 2 + (len(API_COLUMNS) - 1) + sum(len(key) + 1 for key in KEYS)
TENS = np.array([10**power for power in range(1, 19)], np.int64)  # where a digit is added
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


PAGE = msgspec.json.Decoder(Page)
RECORD = msgspec.json.Decoder(Impression)
UNREAD = Impression()  # a record the typed decoder cannot read: every check fails it
UNREADABLE = (UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError, RecursionError)
FIELDS = [(c, attrgetter(c.name)) for c in API_COLUMNS]  # a column's values from the records


class Batch:
    """A page through the fast path: ``rows`` holds the accepted rows (`STAGE_SCHEMA`),
    ``left`` the positions left to the rules, ``records`` how many the page holds, ``raws``
    each record's bytes as received (`adpipe.pages.split`)."""

    def __init__(self, rows: pa.RecordBatch, left: list[int], records: int, raws: list) -> None:
        self.rows, self.left, self.records, self.raws = rows, left, records, raws

    @property
    def accepted(self) -> int:
        return self.rows.num_rows


EMPTY = pa.RecordBatch.from_pylist([], schema=STAGE_SCHEMA)


def page_batch(body: bytes, start: datetime, end: datetime, first_ordinal: int) -> Batch | None:
    """The page's records the fast path accepts, as rows for the load (ordinal
    ``first_ordinal + position``), or None when the page is for the rules whole."""
    try:
        raws = pages.split(body).records
    except pages.PageError:  # the rules name how the page breaks the contract
        return None
    try:
        if not body.isascii():
            body.decode()  # the typed decoder skips bytes it does not read: they must be text
        records = PAGE.decode(body).impressions
    except UNREADABLE:  # one record, usually: the page is read one record at a time
        records = list(map(_record, raws))
    count = len(records)
    if not count:
        return Batch(EMPTY, [], 0, raws)
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
    ok = _cleared(pc.and_(ok, in_window), columns, raws)
    left = pc.indices_nonzero(pc.invert(ok)).to_pylist()
    columns["shown_at"] = shown_at
    ordinals = pa.array(range(first_ordinal, first_ordinal + count), pa.int64())
    kept = [column.filter(ok) for column in (ordinals, *map(columns.get, IMPRESSION_COLUMNS))]
    kept[1] = _ids(kept[1])
    return Batch(pa.RecordBatch.from_arrays(kept, schema=STAGE_SCHEMA), left, count, raws)


def _record(raw: Any) -> Impression:
    """One record through the typed decoder, or `UNREAD`, for the rules."""
    try:
        data = bytes(raw)
        if not data.isascii():
            data.decode()
        return RECORD.decode(data)
    except UNREADABLE:
        return UNREAD


def _cleared(ok: pa.Array, columns: dict[str, pa.Array], raws: list) -> pa.Array:
    """``ok`` without the records whose bytes may hold what the typed decoder does not see.

    A record's bytes are never shorter than the compact JSON of the values decoded from them
    (an escape is longer than what it stands for; a JSON integer has no shorter form), and a
    second member, whitespace or an escape makes them longer. So a record exactly that long
    gives each field once and nests one level; only the longer ones are looked at."""
    lengths = np.fromiter(map(len, raws), np.int64, len(raws))
    accepted = ok.to_numpy(zero_copy_only=False, writable=True)
    suspects = np.flatnonzero(accepted & (lengths != _compact_lengths(columns))).tolist()
    doubtful = _ambiguous([bytes(raws[position]) for position in suspects])
    if not doubtful:
        return ok
    accepted[[suspects[index] for index in doubtful]] = False
    return pa.array(accepted, pa.bool_())


def _compact_lengths(columns: dict[str, pa.Array]) -> np.ndarray:
    """Each record's length as compact JSON of its eleven values: braces, commas and keys,
    texts in quotes (their UTF-8 bytes, from Arrow's offsets), integers in digits, true or
    false. Exact for the records the checks accept; anything for the others."""
    total = np.full(len(columns["impression_id"]), FRAME, np.int64)
    for column, _ in FIELDS:
        values = columns[column.name]
        if values.null_count and column.arrow in ("bool", "int64"):  # numpy reads no nulls
            values = values.fill_null(0 if column.arrow == "int64" else False)  # not accepted
        if column.arrow == "bool":
            total += 5 - values.to_numpy(zero_copy_only=False)
        elif column.arrow == "int64":
            total += 1 + np.searchsorted(TENS, values.to_numpy(), side="right")
        else:
            offsets = np.frombuffer(
                values.buffers()[1], np.int32, len(values) + 1, 4 * values.offset
            )
            total += np.diff(offsets) + 2
    return total


def _ambiguous(records: list[bytes]) -> list[int]:
    """Which of these records may give a contract field twice (a key written twice, or spelled
    with \\u escapes: no other escape stands for a letter or '_') or nest deeper than the
    rules allow. Each is one the typed decoder read every field of, so each holds every key
    once at least, and an opening brace: counted over all of them at once first (in C), and
    one by one only when the counts do not add up."""
    joined = b"\0".join(records)  # JSON never holds a raw NUL, so no key spans two records
    if (
        b"\\u" not in joined
        and all(joined.count(key) == len(records) for key in KEYS)
        and joined.count(b"[") + joined.count(b"{") - len(records) < MAX_NESTING
    ):
        return []
    return [
        index
        for index, record in enumerate(records)
        if b"\\u" in record
        or any(record.count(key) > 1 for key in KEYS)
        or record.count(b"[") + record.count(b"{") > MAX_NESTING
    ]


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
