"""The load's fast path: a page's records checked column by column, written as CSV for COPY
without Python touching each row.

It only ever accepts. A record it accepts is one `impression_rules.normalise` would accept,
turned into the same row (the same UUID text, the same integers and texts, the same instant);
every other record (a string where an integer belongs, a missing field, an id in capitals,
a timestamp in an unusual form, anything the rules reject) is left to the rules, which stay
the one specification and give every reason. A page the typed decoder cannot read at all
goes to the rules whole.

msgspec decodes the page into typed fields in C; pyarrow checks the columns and joins
them into CSV lines. Nothing a line holds needs quoting: texts with a quote or a comma are
the rules' (rare). A timestamp goes as the UTC instant Arrow parsed from the API's text, the
instant the rules compute, never the API's text itself: PostgreSQL takes offsets only up to
15:59, RFC 3339 allows 23:59.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from adpipe.table import COLUMNS, IMPRESSION_COLUMNS
from impression_rules import CURRENCIES

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# printable ASCII (printable to the rules too) without the quote and comma CSV would quote
SHORT_TEXT = r"^[\x20\x21\x23-\x2b\x2d-\x7e]{1,64}$"
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
    """A page through the fast path: ``csv`` holds the accepted rows (ordinal first),
    ``left`` the positions left to the rules, ``records`` how many the page holds."""

    def __init__(self, csv: bytes, accepted: int, left: list[int], records: int) -> None:
        self.csv, self.accepted, self.left, self.records = csv, accepted, left, records


def page_batch(body: bytes, start: datetime, end: datetime, first_ordinal: int) -> Batch | None:
    """The page's records the fast path accepts as CSV lines for the load's stage table
    (ordinal ``first_ordinal + position``), or None when the page is for the rules whole."""
    try:
        records = PAGE.decode(body).impressions
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    count = len(records)
    if not count:
        return Batch(b"", 0, [], 0)
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
    accepted = pc.sum(ok).as_py() or 0
    left = pc.indices_nonzero(pc.invert(ok)).to_pylist()
    ordinals = pa.array(range(first_ordinal, first_ordinal + count), pa.int64())
    # the UTC instant as text PostgreSQL reads: "2026-11-20 10:00:00.000000Z"
    columns["shown_at"] = pc.cast(shown_at, pa.string())
    fields = [pc.cast(ordinals, pa.string())]
    for name in IMPRESSION_COLUMNS:  # the stage table's columns after the ordinal
        column = columns[name]
        if column.type != pa.string():
            column = pc.cast(column, pa.string())  # integers; booleans as true/false
        fields.append(column)
    line = pc.binary_join_element_wise(*fields, ",")  # nothing in them needs quoting
    lines = pc.binary_join_element_wise(line.filter(ok), "", "\n")
    return Batch(_text(lines), accepted, left, count)


def _text(lines: pa.StringArray) -> bytes:
    """An array's strings back to back: its character data, without a Python object per
    row."""
    _, offsets_buffer, data_buffer = lines.buffers()
    if data_buffer is None:
        return b""
    offsets = pa.Array.from_buffers(
        pa.int32(), len(lines) + 1, [None, offsets_buffer], offset=lines.offset
    )
    return data_buffer[offsets[0].as_py() : offsets[-1].as_py()].to_pybytes()


def raw_records(body: bytes) -> list[bytes]:
    """Each record's own bytes, for the records left to the rules."""
    return [bytes(raw) for raw in RAW_PAGE.decode(body).impressions]


def _integers(values: Sequence[object]) -> pa.Array:
    """int64 of the values that are integers (not bools) and fit; None for the rest."""
    try:
        return pa.array(values, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    values = list(values)
    for position in [i for i, v in enumerate(values) if type(v) is not int]:
        values[position] = None  # strings, mostly: the rules read them
    try:
        return pa.array(values, pa.int64())
    except (pa.ArrowInvalid, OverflowError):  # beyond a bigint
        return pa.array([v if v is None or v < 2**63 else None for v in values], pa.int64())  # type: ignore[operator]
