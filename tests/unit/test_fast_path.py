"""The load's fast path only ever accepts what the rules accept, as the same row, and leaves
every other record to the rules: on the mock API's own pages (every kind of bad record it
sends), on poison records, and on pages built byte by byte as a hostile source sends them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import hostile
import pytest
from adpipe.table import IMPRESSION_COLUMNS
from adpipe_load import fast_path
from adpipe_load.impression_rules import Rejected, normalise, parse_page, parse_record
from api_load.scripts import extract
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_impression_rules import GOOD, poison_records

START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)


def accepted(records: list[Any], start: datetime = START, end: datetime = END) -> dict | None:
    """position -> the row the fast path wrote, after checking every position is either
    accepted or left to the rules, never both."""
    body = json.dumps({"impressions": records}).encode()
    batch = fast_path.page_batch(body, start, end, 1)
    if batch is None:
        return None
    rows = {row.pop("ordinal") - 1: row for row in batch.rows.to_pylist()}
    assert batch.records == len(records)
    assert batch.accepted == len(rows)
    assert not set(rows) & set(batch.left)
    assert set(rows) | set(batch.left) == set(range(len(records)))
    return rows


def same_row(written: dict[str, Any], rule: tuple) -> None:
    """The fast path's Arrow row holds the rules' row: the id's 16 bytes, the same integers,
    texts, instant and boolean."""
    assert list(written) == list(IMPRESSION_COLUMNS)
    assert str(uuid.UUID(bytes=written["impression_id"])) == rule[0]
    values = list(written.values())
    assert values[1:7] == list(rule[1:7])
    assert values[7] == datetime.fromisoformat(rule[7])
    assert values[8:] == list(rule[8:])


def check_page(records: list[Any], start: datetime = START, end: datetime = END) -> int:
    rows = accepted(records, start, end)
    if rows is None:
        return 0
    for position, written in rows.items():
        same_row(written, normalise(records[position], start, end))
    return len(rows)


def test_the_mock_apis_pages_take_the_fast_path_and_its_bad_records_go_to_the_rules() -> None:
    traffic = extract.Traffic(20_000, "fast-path")
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    end = datetime(2026, 11, 20, 11, tzinfo=UTC)
    query = {"start": [start.isoformat()], "end": [end.isoformat()], "limit": ["10000"]}
    records = json.loads(extract.page(traffic, query))["impressions"]
    taken = check_page(records, start, end)
    left = len(records) - taken
    rejected = 0
    for record in records:
        try:
            normalise(record, start, end)
        except Rejected:
            rejected += 1
    # everything the rules accept is fast, integers sent as text too; the bad records (about
    # 0.3% of the mock's) are the rules'
    assert rejected <= left < 0.01 * len(records)


@pytest.mark.parametrize(
    "change",
    [
        {"impression_id": "4C862CCC-208B-43D7-B9E2-5CF7617ADB87"},  # capitals: the rules'
        {"ad_id": "1234567890123456789"},  # 19 digits: the rules decide whether it fits
        {"ad_id": "\u0664\u0666"},  # digits, but not ASCII ones
        {"ad_id": "-5"},
        {"ad_id": 2**63},
        {"cost_micros": -1},
        {"shown_at": "2026-11-20T10:00:00"},
        {"shown_at": "2026-11-20T10:00:00+24:00"},
        {"shown_at": "2026-11-20T10:00:60Z"},
        {"shown_at": "2026-11-20 10:00:00Z"},
        {"shown_at": "2026-11-20T09:59:59.999999Z"},
        {"shown_at": "2026-11-20T11:00:00Z"},
        {"placement": "caf\u00e9"},
        {"placement": "x" * 65},
        {"device": ""},
        {"country": "de"},
        {"currency": "XXQ"},
        {"clicked": None},
    ],
)
def test_what_the_fast_path_cannot_prove_it_leaves_to_the_rules(change: dict) -> None:
    good = {**GOOD, "impression_id": GOOD["impression_id"].lower(), "ad_id": 4639}
    rows = accepted([good, {**good, **change}, good])
    assert rows is not None
    assert set(rows) == {0, 2}
    same_row(rows[0], normalise(good, START, END))


@pytest.mark.parametrize(
    "change",
    [
        {"placement": "feed,top"},  # texts CSV would have quoted
        {"device": 'say "hi"'},
        {"ad_id": "4639"},  # integers sent as text: the same integer
        {"cost_micros": "000123456789012345"},
    ],
)
def test_what_the_rules_take_as_given_or_read_plainly_takes_the_fast_path(change: dict) -> None:
    good = {**GOOD, "impression_id": GOOD["impression_id"].lower(), "ad_id": 4639}
    assert check_page([good, {**good, **change}]) == 2


def test_a_record_the_typed_decoder_cannot_read_is_the_rules_and_its_page_stays_fast() -> None:
    good = {**GOOD, "impression_id": GOOD["impression_id"].lower(), "ad_id": 4639}
    assert set(accepted([good]) or {}) == {0}
    assert set(accepted([good, "not an object", good]) or {}) == {0, 2}
    assert set(accepted([good, {**good, "ad_id": 1.5}, good]) or {}) == {0, 2}
    assert set(accepted([good, {**good, "ad_id": True}, good]) or {}) == {0, 2}
    # a date Arrow cannot read fails the page's column: the page is the rules'
    assert accepted([good, {**good, "shown_at": "2026-02-30T10:00:00Z"}]) is None


@settings(max_examples=600, deadline=None)
@given(st.lists(poison_records, min_size=1, max_size=8), st.booleans())
def test_poison_pages_are_only_ever_accepted_as_the_rules_would(
    records: list[dict], with_good: bool
) -> None:
    good = {**GOOD, "impression_id": GOOD["impression_id"].lower(), "ad_id": 4639}
    page = [*records, good] if with_good else records
    try:
        json.dumps(page, allow_nan=False)
    except ValueError:
        return  # not JSON: no API can send it
    check_page(page)


def test_the_typed_record_holds_every_column_the_api_sends() -> None:
    assert fast_path.Impression.__struct_fields__ == IMPRESSION_COLUMNS


# --- bytes: what the typed decoder cannot see is the rules' ---------------------------------

GOOD_LOWER = {**GOOD, "impression_id": GOOD["impression_id"].lower(), "ad_id": 4639}
ONE = json.dumps(GOOD_LOWER, separators=(",", ":")).encode()


def judged(body: bytes, start: datetime = START, end: datetime = END) -> dict | None:
    """position -> the fast path's row of a page body, after checking that the rows are the
    rules' rows of the same records' bytes and that every record is accepted or left."""
    batch = fast_path.page_batch(body, start, end, 1)
    if batch is None:
        return None
    raws = parse_page(body)
    assert [bytes(r) for r in batch.raws] == [bytes(r) for r in raws]
    rows = {row.pop("ordinal") - 1: row for row in batch.rows.to_pylist()}
    assert batch.records == len(raws) and batch.accepted == len(rows)
    assert not set(rows) & set(batch.left)
    assert set(rows) | set(batch.left) == set(range(len(raws)))
    for position, written in rows.items():
        same_row(written, normalise(parse_record(raws[position]), start, end))
    return rows


def page_of(*records: bytes) -> bytes:
    return b'{"impressions":[' + b",".join(records) + b'],"next_cursor":null}'


@pytest.mark.parametrize(
    "record",
    [
        ONE[:-1] + b',"ad_id":4639}',  # a field twice, the same value
        b'{"ad_id":1,' + ONE[1:],  # twice, the typed decoder keeps the last (good) one
        b'{"ad_id":null,' + ONE[1:],
        ONE[:-1] + b',"\\u0061d_id":4639}',  # twice, once spelled with an escape
        ONE[:-1] + b',"more":' + b"[" * 100 + b"]" * 100 + b"}",  # 101 levels
        ONE.replace(b"4639", b"9" * 40),  # beyond a bigint, read by the typed decoder
    ],
)
def test_a_record_that_hides_what_the_rules_refuse_is_left_to_them(record: bytes) -> None:
    rows = judged(page_of(ONE, record, ONE))
    assert rows is not None and set(rows) == {0, 2}
    with pytest.raises(Rejected):
        normalise(parse_record(record), START, END)


@pytest.mark.parametrize(
    "record",
    [
        ONE[:-1] + b',"debug":{"x":[1,{"y":2}]},"note":1,"note":2}',  # fields nobody reads
        ONE[:-1] + b',"trace":' + b"9" * 5000 + b"}",
        ONE[:-1] + b',"more":' + b"[" * 97 + b"]" * 97 + b"}",
        b"{ " + ONE[1:-1].replace(b',"', b',\n "') + b" }",  # whitespace
        ONE.replace(b'"feed"', b'"fe\\"ed"'),  # an escape no key is spelled with
    ],
)
def test_a_record_longer_than_its_values_for_harmless_reasons_takes_the_fast_path(
    record: bytes,
) -> None:
    rows = judged(page_of(ONE, record))
    assert rows is not None and set(rows) == {0, 1}


def test_a_record_with_unicode_escapes_is_left_to_the_rules_which_may_take_it() -> None:
    spelled = ONE.replace(b'"feed"', b'"fe\\u0065d"')  # "feed": it may spell a key too
    rows = judged(page_of(ONE, spelled))
    assert rows is not None and set(rows) == {0}
    assert normalise(parse_record(spelled), START, END) == normalise(GOOD_LOWER, START, END)


@pytest.mark.parametrize(
    "body",
    [
        page_of(ONE, ONE.replace(b'"ctv"', b'"c\xfftv"')),  # not UTF-8 in a field the rules read
        page_of(ONE, ONE[:-1] + b',"debug":"\xff"}'),  # or in one the typed decoder skips
        page_of(ONE, ONE[:-1] + b',"debug":NaN}'),
        page_of(ONE, ONE[:-1] + b',"debug":"\\ud800"}'),
        page_of(ONE, ONE[:-1] + b',"debug":"\x00"}'),
        page_of(ONE, ONE[:-1] + b',"debug":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        page_of(ONE, b"\xef\xbb\xbf" + ONE),
        page_of(ONE, ONE.replace(b"4639", b"1.0")),
    ],
)
def test_a_record_the_typed_decoder_cannot_read_is_the_rules_and_the_rest_stays_fast(
    body: bytes,
) -> None:
    rows = judged(body)
    assert rows is not None and set(rows) == {0}


def test_only_a_page_that_breaks_the_page_contract_goes_to_the_rules_whole() -> None:
    body = b'{"impressions":[' + ONE + b'],"next_cursor":7}'
    assert fast_path.page_batch(body, START, END, 1) is None
    with pytest.raises(Rejected, match="next_cursor that is not a string or null"):
        parse_page(body)


@st.composite
def byte_pages(draw: st.DrawFn) -> bytes:
    damage = draw(st.sampled_from([0.05, 0.3]))
    records = draw(st.lists(hostile.records(START, damage), min_size=1, max_size=12))
    return draw(hostile.page(records, draw(st.none() | st.just("p2"))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(byte_pages())
def test_pages_of_hostile_bytes_are_only_ever_accepted_as_the_rules_would(body: bytes) -> None:
    judged(body)


EVERY_DAMAGE = hostile.every_damage(START)[::2]


@pytest.mark.parametrize("record", EVERY_DAMAGE, ids=range(len(EVERY_DAMAGE)))
def test_each_damage_between_good_records_is_accepted_only_as_the_rules_would(
    record: bytes,
) -> None:
    rows = judged(page_of(ONE, record, ONE))
    assert rows is None or {0, 2} <= set(rows)
