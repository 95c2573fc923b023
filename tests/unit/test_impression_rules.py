"""The load job's rules, on records the API sends and on anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import hostile
import pytest
from adpipe_load.impression_rules import Rejected, normalise, parse_page, parse_record
from hypothesis import given, settings
from hypothesis import strategies as st

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
        normalise(parse_record(body), START, END)
    except Rejected as exc:
        assert str(exc)
    try:
        for raw in parse_page(body):
            try:
                normalise(parse_record(raw), START, END)
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
        raws = parse_page(body)
    except Rejected:
        return
    for raw in raws:
        try:
            normalise(parse_record(raw), START, END)
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


def test_a_page_nested_deeper_than_any_parser_reaches_splits_and_its_record_is_rejected() -> None:
    body = b'{"impressions": [' + b"[" * 100_000 + b"]" * 100_000 + b', {"a": 1}]}'
    deep, flat = parse_page(body)
    with pytest.raises(Rejected, match="nests deeper than 100 levels"):
        parse_record(deep)
    assert parse_record(flat) == {"a": 1}


GOOD_BYTES = json.dumps(GOOD).encode()


def spliced(field: str, value: bytes) -> bytes:
    """GOOD's bytes with one field's value replaced by ``value``, as sent."""
    head, _, tail = GOOD_BYTES.partition(json.dumps(field).encode() + b": ")
    old = json.dumps(GOOD[field]).encode()
    assert tail.startswith(old)
    return head + json.dumps(field).encode() + b": " + value + tail[len(old) :]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (spliced("placement", b'"fe\xe2\x82"'), "record is not UTF-8: invalid continuation byte"),
        (spliced("debug", b'"\xff"'), "record is not UTF-8: invalid start byte at byte"),
        (spliced("ad_id", b"9" * 5000), "ad_id is out of range: an integer of 5000 digits"),
        (spliced("ad_id", b"-" + b"9" * 25), "ad_id is out of range: -9999999999999999999999999"),
        (spliced("ad_id", b"9" * 20), "ad_id is out of range: 99999999999999999999"),
        (spliced("cost_micros", b"1.0"), "cost_micros is not an integer: 1.0"),
        (spliced("cost_micros", b"1e3"), "cost_micros is not an integer"),
        (spliced("campaign_id", b"NaN"), "record is not JSON: NaN is not a JSON number"),
        (spliced("debug", b"-Infinity"), "record is not JSON: -Infinity is not a JSON number"),
        (spliced("placement", b'"nul\x00"'), "record is not JSON: Invalid control character"),
        (spliced("placement", b'"nul\\u0000"'), "placement holds characters that are not"),
        (spliced("device", b'"\\ud800"'), "device holds characters that are not printable"),
        (b"\xef\xbb\xbf" + GOOD_BYTES, "record is not JSON: it starts with a byte order mark"),
        (spliced("device", b'"\xef\xbb\xbfctv"'), "device holds characters that are not"),
        (GOOD_BYTES[:-1] + b', "ad_id": 7}', "record gives ad_id more than once"),
        (GOOD_BYTES[:-1] + b', "\\u0061d_id": 7}', "record gives ad_id more than once"),
        (spliced("debug", b"[" * 100 + b"]" * 100), "record nests deeper than 100 levels"),
        (spliced("debug", b"[" * 5000 + b"]" * 5000), "record nests deeper than 100 levels"),
        (b'{"a":} ', "record is not JSON: Expecting value"),
        (GOOD_BYTES + b" {}", "record is not JSON: Extra data"),
        (b"[1, 2]", "record is not a JSON object"),
    ],
)
def test_each_kind_of_hostile_record_is_rejected_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected, match=reason.replace("(", r"\(")):
        normalise(parse_record(raw), START, END)


@pytest.mark.parametrize(
    "raw",
    [
        GOOD_BYTES[:-1] + b', "note": 1, "note": 2}',  # a key nobody reads, twice
        spliced("debug", b"9" * 5000),  # a number nobody reads, past any parser's digits
        spliced("debug", b'"\\ud800 \\u0000 \xef\xbb\xbf"'),
        spliced("debug", b"[" * 99 + b"]" * 99),  # 100 levels, the record's own included
        spliced("debug", b'"' + b"[{" * 200 + b'"'),  # brackets in a string are text
        spliced("debug", b"1e999"),
        spliced("placement", b'"fe\\u0065d"'),  # escapes that spell plain text
        GOOD_BYTES.replace(b", ", b",\n\t "),
    ],
)
def test_what_no_field_of_the_contract_holds_leaves_the_record_standing(raw: bytes) -> None:
    assert normalise(parse_record(raw), START, END) == normalise(GOOD, START, END)


def row_or_reason(raw: bytes) -> None:
    """A record's bytes give a writable row, or `Rejected` with a reason; nothing else."""
    try:
        row = normalise(parse_record(raw), START, END)
    except Rejected as exc:
        assert str(exc)
        return
    for value in row:
        if isinstance(value, str):
            value.encode("utf-8")
            assert value.isprintable()


@settings(max_examples=600, deadline=None)
@given(hostile.records(START) | st.binary(max_size=400))
def test_any_records_bytes_give_a_row_or_a_reason(raw: bytes) -> None:
    row_or_reason(raw)


@pytest.mark.parametrize("raw", hostile.every_damage(START), ids=lambda raw: repr(raw[:30]))
def test_every_damage_a_source_does_gives_a_row_or_a_reason(raw: bytes) -> None:
    row_or_reason(raw)
