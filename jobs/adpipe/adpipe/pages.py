"""The ad API's page contract, as the extract and the load both hold it: a JSON object whose
``impressions`` is a list of records and whose ``next_cursor`` is a non-empty string, or null
on the last page, nesting at most MAX_NESTING levels deep. The extract refuses a page that
breaks it (exit 3) before it backs anything up, so every page in a backup parses in the load,
whatever its stack depth, without RecursionError. (The records' own rules are the load's:
jobs/load/impression_rules.py.)

The extract only counts a page's records (`count`): msgspec reads the page in C and only the
records that may nest too deep (chosen in C too) are walked. The load's rules read records
(`parse`): Python's parser, and a walk of every level. Both pass and refuse the same pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress
from typing import Any

import msgspec

RECORDS = "impressions"
CURSOR = "next_cursor"
# Levels of arrays and objects a page may hold, the page itself included. A record is two
# levels down (page, impressions list); anything near this deep is broken data, and parsing
# it stays far inside Python's recursion limit (1,000) from any caller's stack.
MAX_NESTING = 100


class PageError(ValueError):
    """A page body that breaks the contract; the message says how."""


@dataclass(frozen=True)
class Page:
    records: list[Any]
    cursor: str | None  # the next page's cursor; None on the last page


class _RawPage(msgspec.Struct):
    """A page with each record's bytes unread (the fields are RECORDS and CURSOR)."""

    impressions: list[msgspec.Raw]
    next_cursor: str | None = None


_RAW = msgspec.json.Decoder(_RawPage)
_NOT_OPENING = bytes(c for c in range(256) if c not in b"{[\0")


def count(body: bytes) -> tuple[int, str | None]:
    """(records, next cursor) of a page body, or `PageError`: what `parse` would say of it,
    without building the records. msgspec reads the page in C; a record whose bytes hold
    too few braces and brackets to nest too deep is not walked (`_may_nest`); any other is
    read and walked alone."""
    try:
        page = _RAW.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        page = None  # Python's parser says why, or takes what msgspec would not
    if page is None or page.next_cursor == "":
        found = parse(body)
        return len(found.records), found.cursor
    for raw in _may_nest(page.impressions):
        try:
            depth = 2 + nesting(json.loads(bytes(raw)))
        except RecursionError:
            depth = MAX_NESTING + 1
        if depth > MAX_NESTING:
            raise PageError(f"nests deeper than {MAX_NESTING} levels")
    return len(page.impressions), page.next_cursor


def _may_nest(records: list[msgspec.Raw]) -> Iterator[msgspec.Raw]:
    """The records that could nest deeper than a record may (MAX_NESTING less the page's two
    levels): those holding more opening braces and brackets than that, in strings or not.
    Counted in C: the records joined by NUL (which JSON never holds unescaped), all but the
    openings deleted, split back into one short string a record."""
    openings = b"\0".join(records).translate(None, _NOT_OPENING).split(b"\0")
    if len(openings) != len(records):  # a NUL inside a record after all: walk them all
        return iter(records)
    return compress(records, map((MAX_NESTING - 2).__lt__, map(len, openings)))


def parse(body: bytes) -> Page:
    """The page a body holds, or `PageError`: Python's parser, and a walk of every level."""
    try:
        payload = json.loads(body)
    except RecursionError:
        raise PageError(
            f"nests deeper than {MAX_NESTING} levels (deeper than the JSON parser reaches)"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PageError(f"is not JSON ({exc}); it starts {body[:80]!r}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get(RECORDS), list):
        raise PageError(f"has no '{RECORDS}' list")
    if nesting(payload) > MAX_NESTING:
        raise PageError(f"nests deeper than {MAX_NESTING} levels")
    cursor = payload.get(CURSOR)
    if cursor is not None and not (isinstance(cursor, str) and cursor):
        raise PageError(f"has a {CURSOR} that is not a string or null")
    return Page(payload[RECORDS], cursor)


def nesting(value: Any) -> int:
    """How many levels of lists and dicts ``value`` holds (0 for a scalar), counted without
    recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest
