"""The ad API's page contract, as the extract and the load both hold it: a JSON object whose
``impressions`` is a list of records and whose ``next_cursor`` is a non-empty string, or null
(or absent) on the last page. The extract refuses a page that breaks it (exit 3) before it
backs anything up, so every page in a backup splits into its records in the load.

The contract is the page's structure, not its records' content: a page splits into each
record's bytes as received, and what a record holds (bytes that are not UTF-8, numbers no
column or parser takes, NaN, a key given twice, nesting of any depth, anything that is not
JSON between its commas) is the load's to judge, one record at a time
(jobs/load/impression_rules.py): one odd record never refuses its page. A page is refused
when its structure breaks: not a JSON object, no ``impressions`` list, brackets that do not
pair, a string or the page cut short, an empty place in the list, bytes after the object, a
cursor that is not text.

`split` reads a page with msgspec in C. A page msgspec refuses (for what one record holds,
usually) goes to `scan`, which is the contract's definition: one pass over strings, brackets
and commas, no recursion at any depth. On every page msgspec reads, both give the same
records and cursor.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import cast

import msgspec

RECORDS = "impressions"
CURSOR = "next_cursor"
WHITESPACE = b" \t\n\r"  # JSON's, and only JSON's

# a string, closed, whatever its bytes; possessive, so one left open fails at once instead of
# backtracking over the rest of the page
_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
# the bytes before the next bracket, strings skipped whole: what lies inside a record (each
# pattern unrolled, runs then strings: twice as fast in re as an alternation)
_INSIDE_BYTES = rb'[^"\[\]{}]*+(?:' + _STRING + rb'[^"\[\]{}]*+)*+'
_INSIDE = re.compile(_INSIDE_BYTES, re.S)
# the same, stopping at a comma too: what lies between a list's or an object's members
_BETWEEN_BYTES = rb'[^"\[\]{},]*+(?:' + _STRING + rb'[^"\[\]{},]*+)*+'
_BETWEEN = re.compile(_BETWEEN_BYTES, re.S)
# an element that is one object of scalars (most records), read in one match
_FLAT = re.compile(
    _BETWEEN_BYTES + rb"(?:\{" + _INSIDE_BYTES + rb"\}" + _BETWEEN_BYTES + rb")?", re.S
)
# one token of the page object itself: a string, a structural byte, a run of anything else,
# a string left open (a lone quote), or the end (an empty token)
_TOKEN = re.compile(rb"[ \t\n\r]*+(" + _STRING + rb'|[\[\]{},:]|[^\[\]{},:" \t\n\r]++|"|\Z)', re.S)
_CLOSER = {ord("["): ord("]"), ord("{"): ord("}")}


class PageError(ValueError):
    """A page body that breaks the contract; the message says how."""


@dataclass(frozen=True)
class Page:
    records: list  # each record's bytes as received (bytes, or msgspec.Raw: `bytes(record)`)
    cursor: str | None  # the next page's cursor; None on the last page


class _RawPage(msgspec.Struct):
    """A page with each record's bytes unread (the fields are RECORDS and CURSOR)."""

    impressions: list[msgspec.Raw]
    next_cursor: str | None = None


_RAW = msgspec.json.Decoder(_RawPage)


def split(body: bytes) -> Page:
    """The page's records, each its bytes as received, and its cursor; `PageError` when the
    page's structure breaks the contract. msgspec reads it in C; a page msgspec refuses is
    read by `scan`."""
    try:
        page = _RAW.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError):
        return scan(body)
    if page.next_cursor == "":
        raise PageError(f"has a {CURSOR} that is not a string or null")
    return Page(page.impressions, page.next_cursor)


def count(body: bytes) -> tuple[int, str | None]:
    """(records, next cursor) of a page body, or `PageError` (`split`)."""
    page = split(body)
    return len(page.records), page.cursor


def scan(body: bytes) -> Page:
    """`split` without msgspec, and its definition: the page object's members are read token
    by token; the records are the bytes between the commas of its ``impressions`` list (JSON
    whitespace around them aside), found by one pass over strings and brackets; every other
    member's value is passed over unread. Of repeated members the last stands (as msgspec
    and Python's json have it); a leading byte order mark is ignored (RFC 8259 allows it)."""
    pos = len(codecs.BOM_UTF8) if body.startswith(codecs.BOM_UTF8) else 0
    token, pos = _token(body, pos)
    if token != b"{":
        raise PageError(f"is not a JSON object; it starts {body[:80]!r}")
    records: list[bytes] | None = None
    cursor: str | None = None
    token, pos = _token(body, pos)
    while token != b"}":  # an empty object ends here; a member is followed by ',' or '}'
        name = _name(token, pos)
        token, pos = _token(body, pos)
        if token != b":":
            raise _unexpected(token, "':'", pos)
        if name == RECORDS:
            token, pos = _token(body, pos)
            if token != b"[":
                raise PageError(f"has an '{RECORDS}' that is not a list")
            records, pos = _records(body, pos)
        elif name == CURSOR:
            token, pos = _token(body, pos)
            cursor = _cursor(token)
        else:
            end = _element(body, pos)
            if not body[pos:end].strip(WHITESPACE):
                raise PageError(f"is not JSON: a member without a value at byte {end}")
            pos = end
        token, pos = _token(body, pos)
        if token == b"}":
            break
        if token != b",":
            raise _unexpected(token, "',' or '}'", pos)
        token, pos = _token(body, pos)
        if token == b"}":
            raise PageError(f"is not JSON: a ',' before '}}' (byte {pos})")
    if _token(body, pos)[0]:
        raise PageError(f"has bytes after its end (byte {pos})")
    if records is None:
        raise PageError(f"has no '{RECORDS}' list")
    return Page(records, cursor)


def nesting(record: bytes) -> int:
    """How many levels of arrays and objects a record's bytes open at their deepest, strings
    aside (0 for a scalar); counted without parsing, so at any depth."""
    deepest = depth = pos = 0
    size = len(record)
    while True:
        pos = _matched(_INSIDE, record, pos).end()
        if pos >= size or record[pos] == ord('"'):  # the end, or a string left open
            return deepest
        depth += 1 if record[pos] in _CLOSER else -1
        deepest = max(deepest, depth)
        pos += 1


def _token(body: bytes, pos: int) -> tuple[bytes, int]:
    found = _matched(_TOKEN, body, pos)
    return found.group(1), found.end()


def _matched(pattern: re.Pattern[bytes], body: bytes, pos: int) -> re.Match[bytes]:
    # each of the patterns matches anywhere (the empty string, or the end, at the least)
    return cast("re.Match[bytes]", pattern.match(body, pos))


def _name(token: bytes, pos: int) -> str | None:
    """A member name of the page object (None for one that is not text: a member nobody
    reads, as for msgspec)."""
    if not token.startswith(b'"') or token == b'"':
        raise _unexpected(token, "a member's name", pos)
    if b"\\" not in token:
        return token[1:-1].decode(errors="replace")
    try:
        name = json.loads(token)
    except ValueError:  # an escape JSON has not, or bytes that are not UTF-8
        return None
    return name if isinstance(name, str) else None


def _unexpected(token: bytes, wanted: str, pos: int) -> PageError:
    if not token or token == b'"':
        return PageError("is cut short")
    return PageError(f"is not JSON: {token[:20]!r} where {wanted} belongs (byte {pos})")


def _cursor(token: bytes) -> str | None:
    if token == b"null":
        return None
    if not token.startswith(b'"') or token == b'"':
        raise PageError(f"has a {CURSOR} that is not a string or null")
    try:
        cursor = json.loads(token)
        cursor.encode()  # a lone surrogate cannot go back to the API in a query
    except (ValueError, UnicodeError):
        raise PageError(f"has a {CURSOR} that is not text: {token[:40]!r}") from None
    if not cursor:
        raise PageError(f"has a {CURSOR} that is not a string or null")
    return cursor


def _records(body: bytes, pos: int) -> tuple[list[bytes], int]:
    """The bytes of each record of the list opened just before ``pos``, and where the list
    ends."""
    records: list[bytes] = []
    if _token(body, pos)[0] == b"]":
        return records, _token(body, pos)[1]
    while True:
        end = _element(body, pos)
        record = body[pos:end].strip(WHITESPACE)
        if not record:
            raise PageError(
                f"has an empty place in its '{RECORDS}' list (record {len(records) + 1})"
            )
        records.append(record)
        if body[end] == ord("}"):
            raise PageError(f"closes its '{RECORDS}' list with '}}' (byte {end})")
        pos = end + 1
        if body[end] == ord("]"):
            return records, pos


def _element(body: bytes, pos: int) -> int:
    """Where the element starting at ``pos`` ends: the comma or closing bracket after it, at
    its own level. Brackets are paired on a stack, never by recursion."""
    flat = _matched(_FLAT, body, pos).end()
    if flat < len(body) and body[flat] in b",]}":
        return flat
    closers: list[int] = []
    size = len(body)
    while True:
        pos = _matched(_INSIDE if closers else _BETWEEN, body, pos).end()
        if pos >= size:
            raise PageError("is cut short: a bracket is never closed")
        byte = body[pos]
        if byte == ord('"'):
            raise PageError(f"is cut short: a string opened at byte {pos} is never closed")
        if byte in _CLOSER:
            closers.append(_CLOSER[byte])
        elif byte == ord(","):
            return pos
        elif not closers:
            return pos  # the closing bracket of the list or object the element is in
        elif closers.pop() != byte:
            raise PageError(f"has brackets that do not pair: {chr(byte)!r} at byte {pos}")
        pos += 1
