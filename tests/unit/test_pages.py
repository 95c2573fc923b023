"""The page contract counts a page's records in C (the extract) and reads them in Python
(the load's rules): both agree on every body, in what they pass and what they refuse."""

from __future__ import annotations

import json

import pytest
from adpipe import pages
from hypothesis import given, settings
from hypothesis import strategies as st

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
RECORDS = st.lists(st.dictionaries(st.text(max_size=8), SCALARS, max_size=6), max_size=20)
ODD = [
    b'{"impressions": [{"a": "\\ud800"}], "next_cursor": null}',  # a lone surrogate
    b'{"impressions": [{"a": NaN}]}',
    b'{"impressions": [{"a": 1e400}]}',
    b'\xef\xbb\xbf{"impressions": []}',  # a BOM
    '{"impressions": [{"a": 1}]}'.encode("utf-16"),
    b'{"impressions": [{"a": [1, {"b": 2}]}], "next_cursor": "c"}',  # nested values
    b'{"impressions": [], "next_cursor": ""}',
    b'{"impressions": [], "next_cursor": 7}',
    b'{"impressions": {}, "next_cursor": null}',
    b'{"impressions": [1, "x", null]}',
    b'{"next_cursor": null}',
    b"[]",
    b"not json",
    b'{"impressions": [{"a": 1, "a": 2}], "extra": {"deep": [[[]]]}}',
    b'{"impressions": [' + b"[" * 150 + b"]" * 150 + b"]}",
    b'{"impressions": [{"a": ' + b"[" * 97 + b"]" * 97 + b"}]}",  # 100 levels: passes
    b'{"impressions": [{"a": ' + b"[" * 98 + b"]" * 98 + b"}]}",  # 101: refused
    b'{"impressions": [{"a": "{{[["}, "[x]", 3]}',  # brackets inside strings
    # more openings than a record may nest, all in a string: walked, and passes
    b'{"impressions": [{"a": 1}, {"b": "' + b"{[" * 60 + b'"}, {"c": [[]]}]}',
    # the third of three records nests 101 levels: refused
    b'{"impressions": [{"a": 1}, {"b": "x"}, {"c": ' + b"[" * 98 + b"]" * 98 + b"}]}",
    b'{"impressions": [{"a": 123456789012345678901234567890}]}',
]


def both(body: bytes) -> tuple[object, object]:
    """What each reading makes of ``body``: (records, cursor), or that it refused."""
    try:
        counted: object = pages.count(body)
    except pages.PageError:
        counted = "refused"
    try:
        page = pages.parse(body)
        parsed: object = (len(page.records), page.cursor)
    except pages.PageError:
        parsed = "refused"
    return counted, parsed


@pytest.mark.parametrize("body", ODD, ids=range(len(ODD)))
def test_both_readings_agree_on_odd_pages(body: bytes) -> None:
    fast, walked = both(body)
    assert fast == walked


@settings(max_examples=300, deadline=None)
@given(RECORDS, st.one_of(st.none(), st.text(max_size=10)))
def test_both_readings_agree_on_flat_pages(records: list, cursor: str | None) -> None:
    body = json.dumps({"impressions": records, "next_cursor": cursor}).encode()
    fast, walked = both(body)
    assert fast == walked
