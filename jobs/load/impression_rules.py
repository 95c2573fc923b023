"""The rules a record from the ad API must pass to become a row of ``ad_impressions``.

`parse_page` turns a page body into records; `normalise` turns one record into a row tuple
(`IMPRESSION_COLUMNS` order: timestamps in UTC, integers as int, canonical UUIDs) or
raises `Rejected` with the reason. Nothing else escapes either function, whatever the input,
and every row `normalise` returns can be written to PostgreSQL: text fields are short and
printable (no control characters, no lone surrogates), timestamps lie in years 1 to 9999 in
UTC, integers fit a bigint.
"""

from __future__ import annotations

import re
import reprlib
import uuid
from datetime import UTC, datetime
from typing import Any

from adpipe import pages

BIGINT_MAX = 2**63 - 1
MAX_TEXT = 64
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


def parse_page(body: bytes) -> list[Any]:
    """The records of a page body (`adpipe.pages`: the contract the extract checked)."""
    try:
        return pages.parse(body).records
    except pages.PageError as exc:
        raise Rejected(f"page {exc}") from None


def _integer(record: dict[str, Any], name: str) -> int:
    value = record.get(name)
    if isinstance(value, bool) or value is None:
        raise Rejected(f"{name} is missing or not an integer")
    if isinstance(value, str):
        if not DIGITS.fullmatch(value):
            raise Rejected(f"{name} is not an integer: {value[:40]!r}")
        value = int(value)
    if not isinstance(value, int):
        raise Rejected(f"{name} is not an integer: {reprlib.repr(value)[:40]}")
    if not 0 <= value <= BIGINT_MAX:
        raise Rejected(f"{name} is out of range: {value}")
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
