"""The load's fast path and its rules agree on every record as PostgreSQL stores it: records
through the load are COPYed into PostgreSQL the way it stages them (binary, from Arrow), the
rules' rows as CSV text, and the stored rows are compared. Offsets up to +/-23:59
(PostgreSQL's own input takes only 15:59), years at both ends, nesting at the record limit,
ids in non-canonical forms, texts of every class of character, and pages built byte by byte
as a hostile source sends them (tests/hostile.py): the same stored rows, a reason for every
other record, never an error of another kind."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import helpers
import hostile
import pyarrow as pa
import pytest
from adpipe.pg_copy import binary_rows
from adpipe.table import COLUMNS
from adpipe_load import fast_path
from adpipe_load.impression_rules import MAX_NESTING, Rejected, normalise, parse_page, parse_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("stack")

# the load's stage table (its STAGE) under a name of the test's own
STAGE = (
    "CREATE TEMPORARY TABLE {name} (ordinal bigint NOT NULL, "
    + ", ".join(f"{c.name} {c.postgres} NOT NULL" for c in COLUMNS if c.from_api)
    + ") ON COMMIT DROP"
)


def rendered(instant: datetime, offset_minutes: int, digits: int) -> str | None:
    """``instant`` as RFC 3339 text in a local time ``offset_minutes`` from UTC, or None when
    that local time is outside the years 1 to 9999."""
    try:
        local = (instant + timedelta(minutes=offset_minutes)).replace(tzinfo=None)
    except OverflowError:
        return None
    text = local.isoformat(timespec="microseconds")
    text = text[: len(text) - 6 + digits].rstrip(".") if digits < 6 else text
    if offset_minutes == 0 and digits % 2:
        return text + "Z"
    sign = "+" if offset_minutes >= 0 else "-"
    return f"{text}{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"


def odd_id(canonical: str, form: int) -> str:
    return [
        canonical,
        canonical.upper(),
        "{" + canonical[:-2] + "}",
        "+" + canonical.replace("-", "", 1),
        " " + canonical[:-1],
        canonical.replace("-", "")[:8] + "-" + canonical.replace("-", "")[8:35],
        "urn:uuid:" + canonical,
        canonical[:35] + "\u0660",  # an Arabic-Indic digit
    ][form]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def pages(draw: Any) -> tuple[datetime, list[Any]]:
    hour = draw(
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
    ).replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
    records = []
    for _ in range(draw(st.integers(1, 6))):
        inside = draw(st.integers(-10, 3600 * 10**6 + 10))
        instant = hour + timedelta(microseconds=inside)
        shown = rendered(instant, draw(st.integers(-1439, 1439)), draw(st.integers(0, 6)))
        record: dict[str, Any] = {
            "impression_id": odd_id(
                str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
                draw(st.sampled_from([0] * 8 + list(range(1, 8)))),
            ),
            "ad_id": draw(
                st.one_of(
                    st.integers(0, 2**63 - 1),
                    st.integers(-1, 2**64).map(str),  # as text: 18 digits fast, more the rules'
                    st.from_regex(r"0[0-9]{0,19}", fullmatch=True),
                )
            ),
            "campaign_id": draw(st.integers(0, 10**6)),
            "advertiser_id": draw(st.integers(0, 10**6)),
            "placement": draw(
                st.one_of(st.sampled_from(["feed", "story"]), st.text(min_size=1, max_size=66))
            ),
            "device": draw(st.sampled_from(["mobile", "desktop", "ctv", 'a"b', "a,b", "é"])),
            "country": draw(st.sampled_from(["DE", "US", "FR", "de", "D1"])),
            "shown_at": shown,
            "cost_micros": draw(st.integers(0, 10**9)),
            "currency": draw(st.sampled_from(["EUR", "USD", "JPY", "XXQ"])),
            "clicked": draw(st.booleans()),
        }
        if draw(st.integers(0, 9)) == 0:  # a field nesting to just under or over the limit
            record[draw(st.sampled_from(["ad_id", "placement", "debug"]))] = nested(
                MAX_NESTING - 1 + draw(st.integers(-2, 1))
            )
        records.append(record)
    return hour, records


def copy_rows(cur: Any, table: str, lines: bytes) -> None:
    cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)", io.BytesIO(lines))


def copy_binary(cur: Any, table: str, batches: list[pa.RecordBatch]) -> None:
    stream = b"".join(binary_rows(fast_path.STAGE_SCHEMA, batches))
    cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT binary)", io.BytesIO(stream))


def stored(cur: Any, table: str) -> list[tuple]:
    cur.execute(f"SELECT * FROM {table} ORDER BY ordinal")  # noqa: S608 - the test's own
    return cur.fetchall()


def stored_alike(body: bytes, start: datetime, end: datetime) -> None:
    """The rows the rules make of every record of the page, and the rows the load makes of it
    (the fast path, the rules for what it leaves), stored by PostgreSQL, are the same."""
    raws = parse_page(body)
    rules_lines = io.StringIO()
    rules = csv.writer(rules_lines, lineterminator="\n")
    for position, raw in enumerate(raws):
        try:
            rules.writerow((1 + position, *normalise(parse_record(raw), start, end)))
        except Rejected as exc:
            assert str(exc)  # a reason, never another error

    batch = fast_path.page_batch(body, start, end, 1)
    rows, ordinals = [], []
    left = range(len(raws)) if batch is None else batch.left
    for position in left:
        try:
            rows.append(normalise(parse_record(raws[position]), start, end))
        except Rejected:
            continue
        ordinals.append(1 + position)
    loaded = [batch.rows] if batch else []

    conn = helpers.warehouse()
    try:
        with conn, conn.cursor() as cur:
            for table in ("by_rules", "by_load"):
                cur.execute(STAGE.format(name=table))
            copy_rows(cur, "by_rules", rules_lines.getvalue().encode())
            copy_binary(cur, "by_load", [*loaded, fast_path.rules_rows(rows, ordinals)])
            assert stored(cur, "by_load") == stored(cur, "by_rules")
    finally:
        conn.close()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(pages())
def test_the_fast_path_and_the_rules_store_the_same_rows(page: tuple[datetime, list]) -> None:
    hour, records = page
    stored_alike(json.dumps({"impressions": records}).encode(), hour, hour + timedelta(hours=1))


HOSTILE_HOUR = datetime(2026, 11, 20, 10, tzinfo=UTC)


@st.composite
def hostile_pages(draw: Any) -> bytes:
    damage = draw(st.sampled_from([0.05, 0.3, 0.8]))
    records = draw(st.lists(hostile.records(HOSTILE_HOUR, damage), min_size=1, max_size=12))
    return draw(hostile.page(records, draw(st.none() | st.just("p2"))))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(hostile_pages())
def test_the_fast_path_and_the_rules_store_the_same_rows_of_hostile_bytes(body: bytes) -> None:
    stored_alike(body, HOSTILE_HOUR, HOSTILE_HOUR + timedelta(hours=1))


ONE = helpers.impression(
    datetime(2026, 11, 20, 10, 30, tzinfo=UTC),
    impression_id="4c862ccc-208b-43d7-b9e2-5cf7617adb87",
    shown_at="2026-11-21T04:30:00+18:00",  # 10:30 UTC, in an offset PostgreSQL cannot read
)


def test_an_offset_postgresql_cannot_read_is_stored_as_the_same_instant() -> None:
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    record = ONE
    batch = fast_path.page_batch(
        json.dumps({"impressions": [record]}).encode(), start, start + timedelta(hours=1), 1
    )
    assert batch is not None and batch.accepted == 1
    conn = helpers.warehouse()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(STAGE.format(name="one"))
            copy_binary(cur, "one", [batch.rows])
            cur.execute("SELECT shown_at FROM one")
            assert cur.fetchone()[0] == datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    finally:
        conn.close()


@pytest.mark.parametrize("form", range(2, 8))
def test_an_id_in_another_form_than_the_canonical_is_rejected_with_its_reason(form: int) -> None:
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    record = {**ONE, "impression_id": odd_id(str(uuid.uuid4()), form)}
    with pytest.raises(Rejected, match="canonical form"):
        normalise(record, start, start + timedelta(hours=1))
