"""The page contract splits every page that is JSON in its structure into its records' bytes,
exactly as received, whatever each record holds, and refuses, naming how, a page that is not;
msgspec's reading (the extract's and the load's) and the scanner's agree on every body."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime

import hostile
import pytest
from adpipe import pages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

START = datetime(2026, 7, 1, 10, tzinfo=UTC)


def outcome(read: object, body: bytes) -> object:
    """What a reading makes of ``body``: (records' bytes, cursor), or that it refused."""
    try:
        page = read(body)  # type: ignore[operator]
    except pages.PageError:
        return "refused"
    return [bytes(record) for record in page.records], page.cursor


@st.composite
def hostile_pages(draw: st.DrawFn, damage: float = 0.5) -> tuple[list[bytes], str | None, bytes]:
    records = draw(st.lists(hostile.records(START, damage), max_size=8))
    cursor = draw(st.none() | st.sampled_from(["p2", "c\u00e9", "a b", "\\"]))
    return records, cursor, draw(hostile.page(records, cursor))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_pages())
def test_a_page_splits_into_each_records_bytes_exactly_as_sent(
    built: tuple[list[bytes], str | None, bytes],
) -> None:
    records, cursor, body = built
    assert outcome(pages.split, body) == (records, cursor)
    assert outcome(pages.scan, body) == (records, cursor)
    assert pages.count(body) == (len(records), cursor)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A page, then cut, or a byte put in, taken out or changed anywhere."""
    # undamaged records too: pages msgspec reads, for the scanner to agree with
    _, _, body = draw(hostile_pages(draw(st.sampled_from([0.0, 0.5]))))
    at = draw(st.integers(0, len(body)))
    byte = bytes([draw(st.sampled_from(b'"[]{},:\\ \x00\xff') | st.integers(0, 255))])
    return draw(
        st.sampled_from(
            [
                body[:at],
                body[:at] + byte + body[at:],
                body[:at] + body[at + 1 :],
                body[:at] + byte + body[at + 1 :],
            ]
        )
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated() | st.binary(max_size=200))
def test_msgspec_and_the_scanner_agree_on_every_body_and_refuse_only_by_rule(body: bytes) -> None:
    assert outcome(pages.split, body) == outcome(pages.scan, body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "is not a JSON object"),
        (b"not json", "is not a JSON object"),
        (b"[]", "is not a JSON object"),
        (b"<html>upstream proxy error</html>", "is not a JSON object"),
        ('{"impressions": [{"a": 1}]}'.encode("utf-16"), "is not a JSON object"),
        (b'{"next_cursor": null}', "has no 'impressions' list"),
        (b'{"impressions": {}, "next_cursor": null}', "'impressions' that is not a list"),
        (b'{"impressions": [{"a": 1}, {"b": 2}', "is cut short"),
        (b'{"impressions": [{"a": "cut', "is cut short"),
        (b'{"impressions": [{"a": 1}]', "is cut short"),
        (b'{"impressions": [{"a": [1}]]}', "brackets that do not pair"),
        (b'{"impressions": [{"a": 1}}', "closes its 'impressions' list with '}'"),
        (b'{"impressions": [{"a": 1},, {"b": 2}]}', "empty place in its 'impressions' list"),
        (b'{"impressions": [{"a": 1},]}', "empty place in its 'impressions' list (record 2)"),
        (b'{"impressions": []} {"impressions": []}', "has bytes after its end"),
        (b'{"impressions": [], }', "a ',' before '}'"),
        (b'{"impressions" []}', "where ':' belongs"),
        (b'{"impressions": [], "next_cursor": ""}', "next_cursor that is not a string"),
        (b'{"impressions": [], "next_cursor": 7}', "next_cursor that is not a string"),
        (b'{"impressions": [], "next_cursor": "\\ud800"}', "next_cursor that is not text"),
        (b'{"impressions": [], "next_cursor": "\xff"}', "next_cursor that is not text"),
        (b'{"impressions": [], "next_cursor": "a\x00b"}', "next_cursor that is not text"),
    ],
)
def test_a_page_that_is_not_json_in_its_structure_is_refused_naming_how(
    body: bytes, reason: str
) -> None:
    for read in (pages.split, pages.scan):
        with pytest.raises(pages.PageError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            read(body)


@pytest.mark.parametrize(
    ("body", "records", "cursor"),
    [
        (b'\xef\xbb\xbf{"impressions": []}', [], None),  # a BOM before the page: ignored
        (b' \r\n{"impressions":[ ] }\t', [], None),
        (b'{"impressions": [{"a": NaN}, {"b": 1e400}], "next_cursor": "c"}', ..., "c"),
        (b'{"impressions": [{"a": "\\ud800"}, {"a": "\xff"}, {"a": "\x00"}]}', ..., None),
        (b'{"impressions": [' + codecs.BOM_UTF8 + b"{}, nul, 01, {} {}]}", ..., None),
        (b'{"impressions": [{"a": 1, "a": 2}], "extra": {"deep": [[[]]]}}', ..., None),
        (b'{"impressions": [1], "impressions": [2, 3]}', [b"2", b"3"], None),
        (b'{"impre\\u0073sions": [1], "next_cursor": "c\\u00e9"}', [b"1"], "c\u00e9"),
        (b'{"\xff": 1, "meta": NaN, "impressions": [1]}', [b"1"], None),
        (b'{"impressions": [{"a": "{{[[", "b": "]]}"}, "[x]", 3]}', ..., None),
    ],
)
def test_what_a_record_holds_never_refuses_its_page(
    body: bytes, records: object, cursor: object
) -> None:
    split = outcome(pages.split, body)
    assert split == outcome(pages.scan, body) != "refused"
    assert split[1] == cursor  # type: ignore[index]
    if records is not ...:
        assert split == (records, cursor)


def test_nesting_of_any_depth_splits_without_recursion() -> None:
    deep = hostile.nested(1_000_000)
    body = b'{"meta": ' + deep + b', "impressions": [' + deep + b", {}]}"
    assert outcome(pages.split, body) == ([deep, b"{}"], None)
    assert pages.nesting(deep) == 1_000_000
    assert pages.nesting(b'{"a": "[[[[{{", "b": [[{}]]}') == 4  # brackets in strings are text
    assert pages.nesting(b"12") == 0
