"""The load's fast path: a page's records checked column by column and kept as Arrow
rows for the load's binary COPY, without Python touching each row.

It only ever accepts. Its checks are the record contract's (`adpipe.record`), made into
column checks by `FastPath`: a record it accepts is one `impression_rules` would accept, turned into
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
record exactly as long as the compact JSON of its values holds nothing else, and only
the longer ones are searched for a key written twice, a \\u escape or deep nesting
(`_cleared`). A timestamp goes as the UTC instant Arrow parsed from the API's text, the
instant the rules compute, never the API's text itself: PostgreSQL takes offsets only up to
15:59, RFC 3339 allows 23:59.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from adpipe import pages
from adpipe.record import CONTRACT, Field, window_field
from adpipe.table import arrow_type, uuid_bytes

from adpipe_load.impression_rules import MAX_NESTING

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# RFC 3339 with an offset, in the forms Python's fromisoformat and Arrow read alike
TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
EPOCH = "1970-01-01T00:00:00Z"  # stands in for a timestamp already left to the rules
INSTANT = pa.timestamp("us", tz="UTC")
UUID_BYTES = pa.binary(16)  # what PostgreSQL's uuid reads in binary COPY
TENS = np.array([10**power for power in range(1, 19)], np.int64)  # where a digit is added
NULL = 4  # the bytes of a null in a record: a nullable field the API sent as null
# how the typed decoder reads each kind: loosely enough that one odd record does not fail the
# page (a missing field is None, an integer may come as a string: the rules decide it)
DECODED: dict[str, Any] = {
    "uuid": str | None,
    "integer": int | str | None,
    "text": str | None,
    "timestamp": str | None,
    "boolean": bool | None,
}
UNREADABLE = (UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError, RecursionError)
Check = Callable[[pa.Array], pa.Array]


def printable_text(field: Field) -> str:
    """Printable ASCII of 1 to the field's length: printable to the rules too."""
    return rf"^[\x20-\x7e]{{1,{field.max_length}}}$"


def checks(field: Field) -> list[Check]:
    """The column checks of one contract entry, as the API sent the column (ids, texts and
    times as text, integers as int64 or null, booleans as bool); each true where the rules
    would accept the value (a timestamp's window aside: `FastPath.page_batch`)."""
    if field.kind == "uuid":
        return [lambda c: pc.match_substring_regex(c, UUID)]
    if field.kind == "timestamp":
        return [lambda c: pc.match_substring_regex(c, TIMESTAMP)]
    if field.kind == "boolean":
        return [pc.is_valid]
    if field.kind == "integer":
        found = [lambda c: pc.greater_equal(c, field.low)]
        if field.high < 2**63 - 1:
            found.append(lambda c: pc.less_equal(c, field.high))
        return found
    if field.allowed is not None:  # the contract holds them to short printable texts
        allowed = pa.array(sorted(field.allowed))
        found = [lambda c: pc.is_in(c, value_set=allowed)]
    elif field.pattern:  # printable ASCII by the contract: its length is left to check
        found = [lambda c: pc.less_equal(pc.utf8_length(c), field.max_length)]
    else:
        found = [lambda c: pc.match_substring_regex(c, printable_text(field))]
    if field.pattern:
        pattern = f"^(?:{field.pattern})$"
        found.append(lambda c: pc.match_substring_regex(c, pattern))
    return found


class Batch:
    """A page through the fast path: ``rows`` holds the accepted rows (`STAGE_SCHEMA`),
    ``left`` the positions left to the rules, ``records`` how many the page holds, ``raws``
    each record's bytes as received (`adpipe.pages.split`)."""

    def __init__(self, rows: pa.RecordBatch, left: list[int], records: int, raws: list) -> None:
        self.rows, self.left, self.records, self.raws = rows, left, records, raws

    @property
    def accepted(self) -> int:
        return self.rows.num_rows


class FastPath:
    """The fast path of one record contract: its typed decoder, its column checks, the
    shape of its rows. The load uses the one of `adpipe.record.CONTRACT` (`page_batch`)."""

    def __init__(self, contract: tuple[Field, ...]) -> None:
        self.contract = contract
        self.names = tuple(f.name for f in contract)
        self.window = window_field(contract)
        self.struct = msgspec.defstruct(
            "Impression", [(f.name, DECODED[f.kind], None) for f in contract]
        )
        self.page = msgspec.json.Decoder(
            msgspec.defstruct("Page", [(pages.RECORDS, list[self.struct])])  # type: ignore[name-defined]
        )
        self.record = msgspec.json.Decoder(self.struct)
        self.unread = self.struct()  # a record the typed decoder cannot read: checks fail it
        self.fields = [(f, attrgetter(f.name), checks(f)) for f in contract]
        # a checked row's columns: its record's ordinal (its place in the window), then the
        # contract's fields
        self.stage_schema = pa.schema(
            [("ordinal", pa.int64())]
            + [(f.name, UUID_BYTES if f.kind == "uuid" else arrow_type(f)) for f in contract]
        )
        self.empty = pa.RecordBatch.from_pylist([], schema=self.stage_schema)
        # each field's key as it appears in a record's bytes (unless spelled with escapes)
        self.keys = tuple(f'"{f.name}"'.encode() for f in contract)
        self.required = tuple(k for k, f in zip(self.keys, contract, strict=True) if not f.nullable)
        self.optional = tuple(k for k, f in zip(self.keys, contract, strict=True) if f.nullable)
        # the bytes of a compact record of every field, its values aside: braces, commas,
        # each key in quotes with its colon
        self.frame = 2 + (len(contract) - 1) + sum(len(key) + 1 for key in self.keys)

    def page_batch(
        self, body: bytes, start: datetime, end: datetime, first_ordinal: int
    ) -> Batch | None:
        """The page's records the fast path accepts, as rows for the load (ordinal
        ``first_ordinal + position``), or None when the page is for the rules whole."""
        try:
            raws = pages.split(body).records
        except pages.PageError:  # the rules name how the page breaks the contract
            return None
        try:
            if not body.isascii():
                body.decode()  # the typed decoder skips bytes it does not read: they must be text
            records = getattr(self.page.decode(body), pages.RECORDS)
        except UNREADABLE:  # one record, usually: the page is read one record at a time
            records = list(map(self._record, raws))
        count = len(records)
        if not count:
            return Batch(self.empty, [], 0, raws)
        try:
            columns, ok = self._checked(records)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None
        try:  # each as the instant Arrow reads from the API's text
            instants = {
                f.name: pc.cast(pc.if_else(ok, columns[f.name], EPOCH), INSTANT)
                for f in self.contract
                if f.kind == "timestamp"
            }
        except pa.ArrowInvalid:  # a date that does not exist (Feb 30): the rules say so
            return None
        shown_at = instants[self.window.name]
        in_window = pc.and_(
            pc.greater_equal(shown_at, pa.scalar(start, INSTANT)),
            pc.less(shown_at, pa.scalar(end, INSTANT)),
        )
        ok = self._cleared(pc.and_(ok, in_window), columns, raws)
        left = pc.indices_nonzero(pc.invert(ok)).to_pylist()
        columns.update(instants)
        ordinals = pa.array(range(first_ordinal, first_ordinal + count), pa.int64())
        kept = [column.filter(ok) for column in (ordinals, *map(columns.get, self.names))]
        kept[1] = _ids(kept[1])
        return Batch(pa.RecordBatch.from_arrays(kept, schema=self.stage_schema), left, count, raws)

    def _checked(self, records: list[Any]) -> tuple[dict[str, pa.Array], pa.Array]:
        """Each field's column as the API sent it, and where every check holds (false where
        any fails or a required field is missing)."""
        columns, ok = {}, None
        for field, value_of, field_checks in self.fields:
            values = list(map(value_of, records))
            if field.kind == "integer":
                column = _integers(values)
            else:
                column = pa.array(values, pa.bool_() if field.kind == "boolean" else pa.string())
            columns[field.name] = column
            # a nullable field left out or null passes; a value sent is checked as any other
            absent = pa.array([v is None for v in values]) if field.nullable else None
            for check in field_checks:
                passed = check(column) if absent is None else pc.or_kleene(absent, check(column))
                ok = passed if ok is None else pc.and_kleene(ok, passed)
        return columns, pc.fill_null(ok, False)

    def _record(self, raw: Any) -> Any:
        """One record through the typed decoder, or ``unread``, for the rules."""
        try:
            data = bytes(raw)
            if not data.isascii():
                data.decode()
            return self.record.decode(data)
        except UNREADABLE:
            return self.unread

    def _cleared(self, ok: pa.Array, columns: dict[str, pa.Array], raws: list) -> pa.Array:
        """``ok`` without the records whose bytes may hold what the typed decoder does not
        see.

        A record's bytes are never shorter than the compact JSON of the values decoded from
        them (an escape is longer than what it stands for; a JSON integer has no shorter
        form), and a second member, whitespace or an escape makes them longer. So a record
        exactly that long gives each field once and nests one level; only the others (longer,
        or leaving a nullable field out) are looked at."""
        lengths = np.fromiter(map(len, raws), np.int64, len(raws))
        accepted = ok.to_numpy(zero_copy_only=False, writable=True)
        suspects = np.flatnonzero(accepted & (lengths != self._compact_lengths(columns))).tolist()
        doubtful = self._ambiguous([bytes(raws[position]) for position in suspects])
        if not doubtful:
            return ok
        accepted[[suspects[index] for index in doubtful]] = False
        return pa.array(accepted, pa.bool_())

    def _compact_lengths(self, columns: dict[str, pa.Array]) -> np.ndarray:
        """Each record's length as compact JSON of its values: braces, commas and keys,
        texts in quotes (their UTF-8 bytes, from Arrow's offsets), integers in digits, true or
        false, null. Exact for the records the checks accept; anything for the others."""
        total = np.full(len(columns[self.names[0]]), self.frame, np.int64)
        for field in self.contract:
            values = columns[field.name]
            nulls = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
            if nulls is not None and field.arrow in ("bool", "int64"):  # numpy reads no nulls
                values = values.fill_null(0 if field.arrow == "int64" else False)
            if field.arrow == "bool":
                length = 5 - values.to_numpy(zero_copy_only=False)
            elif field.arrow == "int64":
                length = 1 + np.searchsorted(TENS, values.to_numpy(), side="right")
            else:
                offsets = np.frombuffer(
                    values.buffers()[1], np.int32, len(values) + 1, 4 * values.offset
                )
                length = np.diff(offsets) + 2
            total += np.where(nulls, NULL, length) if nulls is not None else length
        return total

    def _ambiguous(self, records: list[bytes]) -> list[int]:
        """Which of these records may give a contract field twice (a key written twice, or
        spelled with \\u escapes: no other escape stands for a letter or '_') or nest deeper
        than the rules allow. Each is one the typed decoder read every required field of, so
        each holds those keys once at least, and an opening brace: counted over all of them at
        once first (in C), and one by one only when the counts do not add up."""
        joined = b"\0".join(records)  # JSON never holds a raw NUL, so no key spans two records
        if (
            b"\\u" not in joined
            and all(joined.count(key) == len(records) for key in self.required)
            and not any(key in joined for key in self.optional)
            and joined.count(b"[") + joined.count(b"{") - len(records) < MAX_NESTING
        ):
            return []
        return [
            index
            for index, record in enumerate(records)
            if b"\\u" in record
            or any(record.count(key) > 1 for key in self.keys)
            or record.count(b"[") + record.count(b"{") > MAX_NESTING
        ]

    def rules_rows(self, rows: list[tuple[Any, ...]], ordinals: list[int]) -> pa.RecordBatch:
        """The rows `impression_rules.normalise` accepted, each after its ordinal, in the fast
        path's shape: one way into PostgreSQL for every row."""
        if not rows:
            return self.empty
        arrays = [pa.array(ordinals, pa.int64())]
        for field, values in zip(self.contract, zip(*rows, strict=True), strict=True):
            if field.kind == "uuid":
                arrays.append(_ids(pa.array(values, pa.string())))
                continue
            if field.kind == "timestamp":
                values = tuple(None if v is None else datetime.fromisoformat(v) for v in values)
            arrays.append(pa.array(values, self.stage_schema.field(field.name).type))
        return pa.RecordBatch.from_arrays(arrays, schema=self.stage_schema)


FAST_PATH = FastPath(CONTRACT)
page_batch = FAST_PATH.page_batch
rules_rows = FAST_PATH.rules_rows
STAGE_SCHEMA = FAST_PATH.stage_schema
Impression = FAST_PATH.struct
EMPTY = FAST_PATH.empty


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
