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


# Poison: what a real feed sends now and then, in every text field.
POISON_TEXT = st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "\x07", "line\nbreak", "cr\rlf", 'quo"te', "com,ma", "\\", ""]
)
texts = (
    st.text(min_size=0, max_size=70)
    | POISON_TEXT
    | st.builds(lambda a, b: a + b, st.text(max_size=10), POISON_TEXT)
)
extreme_times = st.builds(
    lambda year, rest, offset: f"{year:04d}-{rest}{offset}",
    st.sampled_from([1, 2, 1969, 2026, 9998, 9999]),
    st.sampled_from(["01-01T00:00:00", "12-31T23:59:59.999999", "11-20T10:30:00"]),
    st.sampled_from(["Z", "+00:00", "+05:30", "-05:00", "+23:59", "-23:59"]),
)
numbers = (
    st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.just(float("nan"))
    | st.sampled_from(["9" * 30, "-1", "1e3", "NaN"])
)
poison_records = st.fixed_dictionaries(
    {
        "impression_id": st.uuids().map(str) | texts,
        "ad_id": numbers,
        "campaign_id": numbers,
        "advertiser_id": numbers,
        "placement": texts,
        "device": texts,
        "country": texts | st.just("DE"),
        "shown_at": extreme_times | texts,
        "cost_micros": numbers,
        "currency": texts | st.just("EUR"),
        "clicked": st.booleans() | texts,
    }
)


@settings(max_examples=1500, deadline=None)
@given(poison_records, st.sampled_from(["placement", "device", "shown_at", "ad_id", None]))
def test_poison_records_only_ever_give_reasons_and_accepted_rows_are_writable(
    record: dict, keep_good: str | None
) -> None:
    for candidate in (record, {**GOOD, **{k: v for k, v in record.items() if k != keep_good}}):
        try:
            row = normalise(candidate, START, END)
        except Rejected as exc:
            assert str(exc)  # a reason, never an empty one
            continue
        for value in row:
            if isinstance(value, str):
                value.encode("utf-8")  # never a lone surrogate: COPY takes every row
                assert value.isprintable()
            elif isinstance(value, int) and not isinstance(value, bool):
                assert 0 <= value < 2**63
        assert START.isoformat() <= row[7] < END.isoformat()


@pytest.mark.parametrize(
    "shown_at",
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00.5+23:59"],
)
def test_years_at_the_edge_of_the_calendar_are_rejected_with_a_reason(shown_at: str) -> None:
    with pytest.raises(Rejected, match="years 1 to 9999"):
        normalise({**GOOD, "shown_at": shown_at}, START, END)


@pytest.mark.parametrize("field", ["placement", "device"])
@pytest.mark.parametrize("value", ["\ud800", "new\nline", "tab\there", "nul\x00"])
def test_unprintable_text_is_rejected_with_a_reason(field: str, value: str) -> None:
    with pytest.raises(Rejected, match=f"{field} holds characters that are not printable"):
        normalise({**GOOD, field: value}, START, END)


def test_a_page_nested_too_deep_is_refused_by_rule() -> None:
    body = b'{"impressions": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    with pytest.raises(Rejected, match="nests deeper"):
        parse_page(body)
