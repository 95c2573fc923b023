"""The load job's rules, on records the API sends and on anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from impression_rules import Rejected, normalise, parse_page

START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)
GOOD = {
    "impression_id": "4C862CCC-208B-43D7-B9E2-5CF7617ADB87",
    "ad_id": "4639",
    "campaign_id": 464,
    "advertiser_id": 93,
    "placement": "feed",
    "device": "ctv",
    "country": "BR",
    "shown_at": "2026-11-20T15:30:01.5+05:30",
    "cost_micros": 49526,
    "currency": "EUR",
    "clicked": False,
    "debug": {"x": 1},
}


def test_a_good_record_is_normalised() -> None:
    row = normalise(GOOD, START, END)
    assert row == (
        "4c862ccc-208b-43d7-b9e2-5cf7617adb87",
        4639,
        464,
        93,
        "feed",
        "ctv",
        "BR",
        "2026-11-20T10:00:01.500000+00:00",
        49526,
        "EUR",
        False,
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"impression_id": None}, "impression_id is missing"),
        ({"impression_id": "4c862ccc-208b-43d7-b9e2-5cf7617adzzz"}, "not a UUID"),
        ({"shown_at": "yesterday-ish"}, "not an RFC 3339"),
        ({"shown_at": "2016-11-20T10:00:00Z"}, "outside the window"),
        ({"shown_at": "2026-11-20T10:00:00"}, "no UTC offset"),
        ({"cost_micros": -5}, "out of range"),
        ({"cost_micros": "-5"}, "not an integer"),
        ({"currency": "XXQ"}, "ISO 4217"),
        ({"clicked": "yes"}, "boolean"),
        ({"ad_id": True}, "not an integer"),
        ({"country": "bra"}, "ISO 3166"),
    ],
)
def test_each_contract_breach_is_rejected_with_its_reason(change: dict, reason: str) -> None:
    record = {**GOOD, **change}
    if change.get("impression_id", "") is None:
        del record["impression_id"]
    with pytest.raises(Rejected, match=reason):
        normalise(record, START, END)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_reject(body: bytes) -> None:
    try:
        for record in parse_page(body):
            try:
                normalise(record, START, END)
            except Rejected:
                pass
    except Rejected:
        pass


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(GOOD)), json_values, max_size=12) | json_values)
def test_arbitrary_json_records_only_ever_reject(record: object) -> None:
    for candidate in (record, {**GOOD, **record} if isinstance(record, dict) else record):
        try:
            row = normalise(candidate, START, END)
        except Rejected:
            continue
        assert len(row) == 11
        assert START.isoformat() <= row[7] < END.isoformat()


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_pages_only_ever_reject(value: object) -> None:
    body = json.dumps({"impressions": value, "next_cursor": None}).encode()
    try:
        records = parse_page(body)
    except Rejected:
        return
    for record in records:
        try:
            normalise(record, START, END)
        except Rejected:
            pass
