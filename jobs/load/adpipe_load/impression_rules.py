"""The rules a record from the ad API must pass to become a row of ``ad_impressions``.

`parse_page` splits a page body into its records' bytes (`adpipe.pages`: the contract the
extract checked); `parse_record` reads one record's bytes; `normalise` turns the record into
a row tuple (the contract's field order, `adpipe.record.CONTRACT`: timestamps in UTC, integers
as int, canonical UUIDs). Each raises `Rejected` with the reason, and nothing else escapes
them, whatever the bytes.

A record is judged alone, so one record never stops its page: it must be UTF-8 throughout,
JSON (RFC 8259: no NaN or Infinity, no control character inside a string), nest at most
MAX_NESTING levels, and give each contract field once (two values for one field is a
record that means two things; the last would win silently in Python's json and in msgspec).
Each field is then held to its entry in the record contract (`adpipe.record`): `rule` makes
one check of an entry, `Rules` the row of a whole contract. Every row `normalise` returns
can be written to PostgreSQL: texts are short and printable (no control characters, no lone
surrogates), timestamps lie in years 1 to 9999 in UTC, integers fit a bigint.
"""

from __future__ import annotations

import json
import re
import reprlib
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from adpipe import pages
from adpipe.record import CONTRACT, NAMES, Field, window_field

# Levels of arrays and objects a record may hold, itself included. A record is an object of
# scalars; anything near this deep is broken data, and Python's parser reads it far inside
# its recursion limit (1,000) from any caller's stack.
MAX_NESTING = 100
# an integer literal longer than this ("-9223372036854775808") is beyond every column: in a
# record holding one past the 4,300 digits Python's int() reads, each stays unread (`TooLong`)
LONGEST_INTEGER = 20
FIELDS = frozenset(NAMES)
DIGITS = re.compile(r"[0-9]{1,19}")
# a UUID in its canonical 8-4-4-4-12 hex form (either case); uuid.UUID alone also takes
# braces, "urn:uuid:", signs, spaces and hyphens anywhere, and folds them onto other ids
CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


class Rejected(ValueError):
    """A record or page that breaks the contract; the message is the reason."""


class TooLong:
    """An integer literal too long for any column (`LONGEST_INTEGER`), kept unread."""

    __slots__ = ("digits",)

    def __init__(self, literal: str) -> None:
        self.digits = len(literal.lstrip("-"))

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


class _Repeats(dict):
    """An object that gave some keys more than once (`repeated`); the last value stands."""

    __slots__ = ("repeated",)
    repeated: set[str]


def parse_page(body: bytes) -> list[Any]:
    """Each record's bytes of a page body (`adpipe.pages.split`), or `Rejected` naming how
    the page breaks the contract."""
    try:
        return pages.split(body).records
    except pages.PageError as exc:
        raise Rejected(f"page {exc}") from None


def parse_record(raw: Any) -> Any:
    """The JSON value of one record's bytes (``bytes``, or anything ``bytes()`` takes), or
    `Rejected` saying why it is not one the contract reads."""
    data = bytes(raw)
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise Rejected(
            f"record is not UTF-8: {exc.reason} at byte {exc.start} "
            f"({data[exc.start : exc.start + 4]!r})"
        ) from None
    if text.startswith("\ufeff"):  # what json.loads would say; a decoder's decode does not
        raise Rejected("record is not JSON: it starts with a byte order mark")
    # openings are counted in C; only a record with enough of them is walked
    if data.count(b"[") + data.count(b"{") > MAX_NESTING and pages.nesting(data) > MAX_NESTING:
        raise Rejected(f"record nests deeper than {MAX_NESTING} levels")
    try:
        try:
            record = _DECODER.decode(text)
        except ValueError:  # perhaps an integer past what int() reads: read it unread
            record = _GUARDED.decode(text)
    except ValueError as exc:  # JSONDecodeError, or a constant JSON has not
        raise Rejected(f"record is not JSON: {exc}") from None
    except RecursionError:  # cannot happen below MAX_NESTING; a reason all the same
        raise Rejected(f"record nests deeper than {MAX_NESTING} levels") from None
    if isinstance(record, _Repeats) and (twice := sorted(record.repeated & FIELDS)):
        raise Rejected(f"record gives {', '.join(twice)} more than once")
    return record


def _integer_literal(literal: str) -> int | TooLong:
    return int(literal) if len(literal) <= LONGEST_INTEGER else TooLong(literal)


def _constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) == len(pairs):
        return members
    repeats = _Repeats(members)
    repeats.repeated = {key for key, times in Counter(k for k, _ in pairs).items() if times > 1}
    return repeats


# made once (json.loads with options makes a decoder a call); the second reads an integer
# past the 4,300 digits Python's int() takes as `TooLong`, for the records the first refuses
_DECODER = json.JSONDecoder(parse_constant=_constant, object_pairs_hook=_members)
_GUARDED = json.JSONDecoder(
    parse_int=_integer_literal, parse_constant=_constant, object_pairs_hook=_members
)


# A rule reads one field of a record (a dict) and returns its value for the row, or raises
# `Rejected` with the reason; `rule` makes the one a contract entry says.
Rule = Callable[[dict[str, Any]], Any]


def _uuid(field: Field, value: Any) -> str:
    if value is None:
        raise Rejected(f"{field.name} is missing")
    if not isinstance(value, str) or not CANONICAL_UUID.fullmatch(value):
        raise Rejected(f"{field.name} is not a UUID in canonical form: {reprlib.repr(value)[:40]}")
    return str(uuid.UUID(value))


def _integer(field: Field, value: Any) -> int:
    name = field.name
    if isinstance(value, bool) or value is None:
        raise Rejected(f"{name} is missing or not an integer")
    if isinstance(value, TooLong):
        raise Rejected(f"{name} is out of range: an integer of {value.digits} digits")
    if isinstance(value, str):
        if not DIGITS.fullmatch(value):
            raise Rejected(f"{name} is not an integer: {value[:40]!r}")
        value = int(value)
    if not isinstance(value, int):
        raise Rejected(f"{name} is not an integer: {reprlib.repr(value)[:40]}")
    if not field.low <= value <= field.high:
        raise Rejected(f"{name} is out of range: {reprlib.repr(value)}")
    return value


def _text(field: Field, value: Any) -> str:
    name = field.name
    if not isinstance(value, str) or not value or len(value) > (field.max_length or 0):
        raise Rejected(f"{name} is missing or not a short text")
    if not value.isprintable():  # control characters, lone surrogates, unassigned code points
        raise Rejected(f"{name} holds characters that are not printable text: {value!r:.60}")
    if (field.pattern and not re.fullmatch(field.pattern, value)) or (
        field.allowed is not None and value not in field.allowed
    ):
        raise Rejected(f"{name} is not {field.meaning}: {value!r}")
    return value


def _timestamp(field: Field, value: Any) -> datetime:
    name = field.name
    if not isinstance(value, str):
        raise Rejected(f"{name} is missing or not a string")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise Rejected(f"{name} is not an RFC 3339 timestamp: {value[:40]!r}") from None
    if instant.tzinfo is None:
        raise Rejected(f"{name} has no UTC offset: {value[:40]!r}")
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        raise Rejected(f"{name} is outside the years 1 to 9999 UTC: {value[:40]!r}") from None


def _boolean(field: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Rejected(f"{field.name} is missing or not a boolean")
    return value


_KIND_RULES: dict[str, Callable[[Field, Any], Any]] = {
    "uuid": _uuid,
    "integer": _integer,
    "text": _text,
    "timestamp": _timestamp,
    "boolean": _boolean,
}


def rule(field: Field) -> Rule:
    """The check of one contract entry: its value for the row (None for a nullable field
    left out or null), or `Rejected` with the reason."""
    check, name = _KIND_RULES[field.kind], field.name

    def read(fields: dict[str, Any]) -> Any:
        value = fields.get(name)
        if value is None and field.nullable:
            return None
        return check(field, value)

    return read


class Rules:
    """A contract's rules: `normalise` turns a record into its row, in the contract's field
    order, or raises `Rejected` naming the first field that breaks its entry (the record's
    id first, then its place in the window, then the rest in order)."""

    def __init__(self, fields: tuple[Field, ...]) -> None:
        self.window = window_field(fields)
        first = [f for f in fields if f.kind == "uuid"] + [self.window]
        self.order = first + [f for f in fields if f not in first]
        self.rules = [(fields.index(f), rule(f)) for f in self.order]
        self.width = len(fields)
        self.window_at = fields.index(self.window)
        self.names = frozenset(f.name for f in fields)

    def normalise(self, fields: Any, start: datetime, end: datetime) -> tuple[Any, ...]:
        """One valid row for the window ``[start, end)``, or `Rejected` with the reason."""
        if not isinstance(fields, dict):
            raise Rejected("record is not a JSON object")
        if isinstance(fields, _Repeats) and (twice := sorted(fields.repeated & self.names)):
            raise Rejected(f"record gives {', '.join(twice)} more than once")
        row: list[Any] = [None] * self.width
        for position, read in self.rules:
            row[position] = read(fields)
            if position == self.window_at:
                instant = row[position]
                if not start <= instant < end:
                    raise Rejected(
                        f"{self.window.name} {instant.isoformat()} is outside the window"
                    )
                row[position] = instant.isoformat()
        return tuple(row)


RULES = Rules(CONTRACT)
normalise = RULES.normalise
