"""The mocked ad API keeps its contract: deterministic pages, cursors, documented dirt."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from api_load.scripts import extract

Q = {"start": ["2026-11-20T10:00:00Z"], "end": ["2026-11-20T12:00:00Z"], "limit": ["700"]}


def all_pages(traffic: extract.Traffic, query: dict) -> list[bytes]:
    bodies, cursor = [], None
    while True:
        body = extract.page(traffic, {**query, **({"cursor": [cursor]} if cursor else {})})
        bodies.append(body)
        cursor = json.loads(body)["next_cursor"]
        if cursor is None:
            return bodies


def test_pages_are_byte_identical_across_instances() -> None:
    assert all_pages(extract.Traffic(3000, "s"), Q) == all_pages(extract.Traffic(3000, "s"), Q)


def test_a_window_serves_its_volume_once_in_pages() -> None:
    records = [
        r for b in all_pages(extract.Traffic(3000, "s"), Q) for r in json.loads(b)["impressions"]
    ]
    assert len(records) == 6000
    ids = Counter(r.get("impression_id") for r in records)
    repeats = sum(n - 1 for n in ids.values() if n > 1)
    assert 0 < repeats < 0.01 * len(records)
    assert any(isinstance(r.get("ad_id"), str) for r in records)


def test_adjacent_windows_split_the_stream_without_overlap() -> None:
    t = extract.Traffic(3000, "s")
    whole = [json.loads(b)["impressions"] for b in all_pages(t, Q)]
    halves = [
        json.loads(b)["impressions"]
        for half in (
            {**Q, "end": ["2026-11-20T11:00:00Z"]},
            {**Q, "start": ["2026-11-20T11:00:00Z"]},
        )
        for b in all_pages(t, half)
    ]
    assert sum(map(len, whole)) == sum(map(len, halves))


@pytest.mark.parametrize(
    "query",
    [
        {"start": ["2026-11-20T10:00:00"], "end": ["2026-11-20T11:00:00Z"]},
        {"start": ["2026-11-20T11:00:00Z"], "end": ["2026-11-20T10:00:00Z"]},
        {**Q, "limit": ["0"]},
        {**Q, "cursor": ["bm9wZQ"]},
    ],
)
def test_bad_queries_are_400(query: dict) -> None:
    with pytest.raises(extract.BadRequest):
        extract.page(extract.Traffic(10, "s"), query)


def test_a_cursor_only_works_for_its_window() -> None:
    t = extract.Traffic(3000, "s")
    cursor = json.loads(extract.page(t, Q))["next_cursor"]
    with pytest.raises(extract.BadRequest, match="another window"):
        extract.page(t, {**Q, "end": ["2026-11-20T13:00:00Z"], "cursor": [cursor]})
