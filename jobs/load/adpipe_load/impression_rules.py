"""The rules a record from the ad API must pass to become a row of ``ad_impressions``.

`parse_page` splits a page body into its records' bytes (`adpipe.pages`: the contract the
extract checked); `parse_record` reads one record's bytes; `normalise` turns the record into
a row tuple (`IMPRESSION_COLUMNS` order: timestamps in UTC, integers as int, canonical UUIDs).
Each raises `Rejected` with the reason, and nothing else escapes them, whatever the bytes.

A record is judged alone, so one record never stops its page: it must be UTF-8 throughout,
JSON (RFC 8259: no NaN or Infinity, no control character inside a string), nest at most
MAX_NESTING levels, and give each contract field once (two values for one field is a
record that means two things; the last would win silently in Python's json and in msgspec).
Every row `normalise` returns can be written to PostgreSQL: text fields are short and
printable (no control characters, no lone surrogates), timestamps lie in years 1 to 9999 in
UTC, integers fit a bigint.
"""

from __future__ import annotations

import json
import re
import reprlib
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from adpipe import pages
from adpipe.table import IMPRESSION_COLUMNS

BIGINT_MAX = 2**63 - 1
MAX_TEXT = 64
# Levels of arrays and objects a record may hold, itself included. A record is an object of
# scalars; anything near this deep is broken data, and Python's parser reads it far inside
# its recursion limit (1,000) from any caller's stack.
MAX_NESTING = 100
# an integer literal longer than this ("-9223372036854775808") is beyond every column: in a
# record holding one past the 4,300 digits Python's int() reads, each stays unread (`TooLong`)
LONGEST_INTEGER = 20
FIELDS = frozenset(IMPRESSION_COLUMNS)
COUNTRY = re.compile(r"[A-Z]{2}")
DIGITS = re.compile(r"[0-9]{1,19}")
# a UUID in its canonical 8-4-4-4-12 hex form (either case); uuid.UUID alone also takes
# braces, "urn:uuid:", signs, spaces and hyphens anywhere, and folds them onto other ids
CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# ISO 4217 active codes
CURRENCIES = frozenset(
    """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
""".split()
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


def _integer(record: dict[str, Any], name: str) -> int:
    value = record.get(name)
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
    if not 0 <= value <= BIGINT_MAX:
        raise Rejected(f"{name} is out of range: {reprlib.repr(value)}")
    return value


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise Rejected(f"{name} is missing or not a short text")
    if not value.isprintable():  # control characters, lone surrogates, unassigned code points
        raise Rejected(f"{name} holds characters that are not printable text: {value!r:.60}")
    return value


def normalise(record: Any, start: datetime, end: datetime) -> tuple[Any, ...]:
    """One valid row for the window ``[start, end)``, or `Rejected` with the reason."""
    if not isinstance(record, dict):
        raise Rejected("record is not a JSON object")
    raw_id = record.get("impression_id")
    if raw_id is None:
        raise Rejected("impression_id is missing")
    if not isinstance(raw_id, str) or not CANONICAL_UUID.fullmatch(raw_id):
        raise Rejected(
            f"impression_id is not a UUID in canonical form: {reprlib.repr(raw_id)[:40]}"
        )
    impression_id = uuid.UUID(raw_id)

    raw_shown = record.get("shown_at")
    if not isinstance(raw_shown, str):
        raise Rejected("shown_at is missing or not a string")
    try:
        shown_at = datetime.fromisoformat(raw_shown)
    except ValueError:
        raise Rejected(f"shown_at is not an RFC 3339 timestamp: {raw_shown[:40]!r}") from None
    if shown_at.tzinfo is None:
        raise Rejected(f"shown_at has no UTC offset: {raw_shown[:40]!r}")
    try:
        shown_at = shown_at.astimezone(UTC)
    except OverflowError:
        raise Rejected(f"shown_at is outside the years 1 to 9999 UTC: {raw_shown[:40]!r}") from None
    if not start <= shown_at < end:
        raise Rejected(f"shown_at {shown_at.isoformat()} is outside the window")

    country = _text(record, "country")
    if not COUNTRY.fullmatch(country):
        raise Rejected(f"country is not ISO 3166-1 alpha-2: {country!r}")
    currency = _text(record, "currency")
    if currency not in CURRENCIES:
        raise Rejected(f"currency is not an ISO 4217 code: {currency!r}")
    clicked = record.get("clicked")
    if not isinstance(clicked, bool):
        raise Rejected("clicked is missing or not a boolean")
    return (
        str(impression_id),
        _integer(record, "ad_id"),
        _integer(record, "campaign_id"),
        _integer(record, "advertiser_id"),
        _text(record, "placement"),
        _text(record, "device"),
        country,
        shown_at.isoformat(),
        _integer(record, "cost_micros"),
        currency,
        clicked,
    )
