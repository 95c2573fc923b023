"""Records and pages as bytes, the way a broken or hostile ad API sends them: for hypothesis,
shared by the tests of the page contract, the load's rules and fast path, and the jobs run end
to end (tests/integration/test_hostile_source.py).

A record is built member by member as JSON bytes and then damaged at the byte level: bytes
that are not UTF-8, integers longer than any parser reads, floats where integers go, NUL
(escaped, or a raw control byte), a byte order mark, a key given twice (plainly or spelled
with escapes), nesting of any depth, NaN and Infinity, lone surrogates, a record that is not
JSON between its commas, or not an object (`DAMAGES`). Every damage keeps the page's
structure (strings closed, brackets paired), so a page of such records is one the contract
splits into exactly those records.
"""

from __future__ import annotations

import codecs
import functools
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

INTEGER_FIELDS = ("ad_id", "campaign_id", "advertiser_id", "cost_micros")
TEXT_FIELDS = ("impression_id", "placement", "device", "country", "shown_at", "currency")
FIELDS = (*TEXT_FIELDS, *INTEGER_FIELDS, "clicked")
IDS = 40  # ids a window's records share: few, so ids repeat across its records


@functools.cache
def ids(start: datetime) -> list[str]:
    """The window's ids: its own, so no id repeats in another window (whose load would keep
    it a second time, as the contract allows: repeats are dropped within a window)."""
    return [
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"adpipe-test:{start.isoformat()}:{n}"))
        for n in range(IDS)
    ]


OFFSETS = [
    (timedelta(0), "Z"),
    (timedelta(0), "+00:00"),
    (timedelta(hours=2), "+02:00"),
    (timedelta(hours=-5), "-05:00"),
    (timedelta(hours=5, minutes=30), "+05:30"),
]

Members = list[tuple[bytes, bytes]]  # (key, value), each as JSON bytes


@st.composite
def good_members(draw: Any, start: datetime) -> Members:
    """A record the rules accept for the hour from ``start``, as its members."""
    instant = start + timedelta(microseconds=draw(st.integers(0, 3600 * 10**6 - 1)))
    offset, suffix = draw(st.sampled_from(OFFSETS))
    shown = (instant + offset).replace(tzinfo=None).isoformat() + suffix
    values: dict[str, Any] = {
        "impression_id": draw(st.sampled_from(ids(start))),
        "ad_id": draw(st.integers(0, 2**63 - 1) | st.integers(0, 10**6).map(str)),
        "campaign_id": draw(st.integers(0, 10**6)),
        "advertiser_id": draw(st.integers(0, 10**6)),
        "placement": draw(st.sampled_from(["feed", "sidebar", "banner_top", 'say "hi"'])),
        "device": draw(st.sampled_from(["mobile", "desktop", "ctv"])),
        "country": draw(st.sampled_from(["DE", "US", "BR"])),
        "shown_at": shown,
        "cost_micros": draw(st.integers(0, 10**9)),
        "currency": draw(st.sampled_from(["EUR", "USD", "JPY"])),
        "clicked": draw(st.booleans()),
    }
    members = [(json.dumps(k).encode(), json.dumps(v).encode()) for k, v in values.items()]
    if draw(st.integers(0, 4)) == 0:  # a field nobody asked for
        members.append((b'"debug"', json.dumps({"server": "ad-7", "trace": 12}).encode()))
    return draw(st.permutations(members)) if draw(st.booleans()) else members


# the inside of a string (between its quotes), as bytes, that no text field may hold
BAD_TEXT = [
    b"fe\xe2\x82",  # a UTF-8 sequence cut short
    b"\xff\xfe",  # bytes UTF-8 never uses
    b"\xc0\xaf",  # an overlong encoding of '/'
    b"\xed\xa0\x80",  # a surrogate, encoded
    b"nul\x00byte",  # a raw control byte
    b"bell\x07",
    b"nul\\u0000escaped",
    codecs.BOM_UTF8 + b"feed",  # a byte order mark inside a string
    b"\\ufefffeed",
    b"\\ud800",  # lone surrogates
    b"a\\udfffb",
    b"line\\nbreak",
    b"caf\xc3\xa9",  # valid UTF-8, but not what the contract's texts hold
    b"\\ud83d\\ude00",
]
# the inside of a string that spells an ordinary value with escapes: still valid
ESCAPED_TEXT = [b"fe\\u0065d", b"\\u0066eed", b"side\\/bar", b"fee\\u0064"]
BAD_NUMBER = [
    b"9" * 20,
    b"9" * 25,
    b"9" * 400,
    b"9" * 4301,  # past what Python's int() reads
    b"-" + b"9" * 5000,
    b"1.0",
    b"1e3",
    b"4639.5",
    b"-0.0",
    b"1E400",
    b"-0",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"true",
    b"null",
    b"01",
]
NOT_JSON = [
    b'{"a":}',
    b"{,}",
    b"nul",
    b"tru",
    b"'x'",
    b'{"a" 1}',
    b"{} {}",
    b'{"impression_id":"' + str(uuid.UUID(int=1)).encode() + b'"} garbage',
    codecs.BOM_UTF8 + b"{}",
    b"\x00",
    b"NaN",
]
NOT_OBJECT = [b"1", b'"record"', b"null", b"[]", b"[{}]", b"true", b"-5e5"]


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


SAME = b""  # stands for the value the record already holds
# each way of damaging a record, with its variants
DAMAGES: dict[str, list[Any]] = {
    "text": BAD_TEXT,  # in the field drawn
    "escaped": ESCAPED_TEXT,
    "number": BAD_NUMBER,
    "number_elsewhere": BAD_NUMBER,  # in a field nobody reads: the record stands
    "duplicate": [SAME, b'"other"', b"7", b"null"],
    "duplicate_escaped": [SAME],  # the same key again, spelled with an escape
    "duplicate_elsewhere": [SAME],  # a key nobody reads, twice: the record stands
    "deep": [1, 50, 98, 99, 100, 101, 150, 5000],  # levels of a field nobody reads
    "deep_elsewhere": [300],  # brackets inside a string: not nesting at all
    "deep_field": [1, 3, 200],
    "not_json": NOT_JSON,  # the whole record
    "not_object": NOT_OBJECT,
    "whitespace": [SAME],  # what a pretty-printer does: still a valid record
    "key_bytes": [b'"k\xff"', b'"k\x00"', b'"\\u0000"'],  # a key not UTF-8, or with a NUL
}


def damage(members: Members, kind: str, field: str, variant: Any) -> bytes:
    """The record's bytes, damaged in one way (`DAMAGES`), at ``field`` where it has one."""
    members = list(members)
    names = [json.loads(key) for key, _ in members]
    if kind in ("not_json", "not_object"):
        return variant
    if kind == "whitespace":
        return b"{\n  " + b",\n  ".join(k + b" : " + v for k, v in members) + b"\n}"
    at = names.index(field)
    key, value = members[at]
    if kind in ("text", "escaped"):
        members[at] = (key, b'"' + variant + b'"')
    elif kind == "number":
        members[at] = (key, variant)
    elif kind == "number_elsewhere":
        members.append((b'"trace"', variant))
    elif kind == "duplicate":
        members.insert(len(members) // 2, (key, variant or value))
    elif kind == "duplicate_escaped":
        members.append((b'"\\u%04x' % ord(field[0]) + key[2:], value))
    elif kind == "duplicate_elsewhere":
        members += [(b'"note"', b"1"), (b'"note"', b"2")]
    elif kind == "deep":
        members.append((b'"more"', nested(variant)))
    elif kind == "deep_elsewhere":
        members.append((b'"more"', b'"' + b"[{" * variant + b'"'))
    elif kind == "deep_field":
        members[at] = (key, nested(variant))
    elif kind == "key_bytes":
        members.append((variant, b"1"))
    return b"{" + b",".join(k + b":" + v for k, v in members) + b"}"


@st.composite
def damaged(draw: Any, members: Members) -> bytes:
    """One record, its members damaged in one of the ways a hostile source has."""
    kind = draw(st.sampled_from(sorted(DAMAGES)))
    return damage(
        members, kind, draw(st.sampled_from(FIELDS)), draw(st.sampled_from(DAMAGES[kind]))
    )


def every_damage(start: datetime) -> list[bytes]:
    """Every variant of every damage, each to a good record of the hour from ``start`` (the
    fields taken in turn), with a good record after each: what an example always covers."""
    found = []
    for kind, variants in sorted(DAMAGES.items()):
        for variant in variants:
            n = len(found)
            members = plain_members(start, n)
            found.append(damage(members, kind, FIELDS[n % len(FIELDS)], variant))
            found.append(
                b"{" + b",".join(k + b":" + v for k, v in plain_members(start, n + 1)) + b"}"
            )
    return found


def plain_members(start: datetime, n: int) -> Members:
    """A good record of the hour from ``start``, the ``n``-th of a plain series."""
    values = {
        "impression_id": ids(start)[n % IDS],
        "ad_id": n,
        "campaign_id": n // 10,
        "advertiser_id": n // 50,
        "placement": "feed",
        "device": "ctv",
        "country": "DE",
        "shown_at": (start + timedelta(seconds=n)).isoformat(),
        "cost_micros": 1000 + n,
        "currency": "EUR",
        "clicked": n % 7 == 0,
    }
    return [(json.dumps(k).encode(), json.dumps(v).encode()) for k, v in values.items()]


@st.composite
def records(draw: Any, start: datetime, damage: float = 0.5) -> bytes:
    """One record's bytes: a good one, or (with chance ``damage``) a damaged one."""
    members = draw(good_members(start))
    if draw(st.floats(0, 1)) < damage:
        return draw(damaged(members))
    return b"{" + b",".join(k + b":" + v for k, v in members) + b"}"


SEPARATORS = [b",", b", ", b"\n,\n", b" ,\t", b",\r\n"]


@st.composite
def page(draw: Any, records: list[bytes], cursor: str | None) -> bytes:
    """A page holding ``records`` exactly, laid out as a server might: whitespace, members in
    any order, members nobody reads, a byte order mark."""
    separator = draw(st.sampled_from(SEPARATORS))
    listed = b"[" + separator.join(records) + b"]"
    members = [(b'"impressions"', listed), (b'"next_cursor"', json.dumps(cursor).encode())]
    if cursor is None and draw(st.booleans()):
        members.pop()  # the last page may leave its cursor out
    if draw(st.integers(0, 3)) == 0:
        members.append((b'"meta"', draw(st.sampled_from([b"{}", b'"x"', nested(3000), b"NaN"]))))
    members = draw(st.permutations(members))
    body = b"{" + b",".join(k + b":" + v for k, v in members) + b"}"
    return (codecs.BOM_UTF8 if draw(st.integers(0, 9)) == 0 else b"") + body
