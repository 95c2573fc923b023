"""The record contract (adpipe/record.py) is the one place a field is described: the rules,
the fast path, the table's columns and checks, the archive's Parquet schema and make query's
view all derive from it. Changing an entry changes every derived form together; a nullable
field added to it is read by the rules and the fast path alike."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import helpers
import pytest
import query
from adpipe import record, table
from adpipe.record import CONTRACT, Field
from adpipe_archive.parquet_files import SCHEMA, schema
from adpipe_load import fast_path, impression_rules
from adpipe_load.impression_rules import Rejected, Rules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

START = datetime(2026, 11, 20, 10, tzinfo=UTC)
END = datetime(2026, 11, 20, 11, tzinfo=UTC)


def good(**fields: Any) -> dict[str, Any]:
    """A record every rule accepts, in the window, ``fields`` on top."""
    return helpers.impression(START + timedelta(minutes=30), **fields)


def changed(name: str, **change: Any) -> tuple[Field, ...]:
    return tuple(dataclasses.replace(f, **change) if f.name == name else f for f in CONTRACT)


def judged(contract: tuple[Field, ...], one: dict[str, Any]) -> tuple[Any, Any]:
    """(the rules' row or reason, the fast path's row or None when it left the record)."""
    try:
        by_rules: Any = Rules(contract).normalise(one, START, END)
    except Rejected as exc:
        by_rules = str(exc)
    body = json.dumps({"impressions": [one]}, separators=(",", ":")).encode()
    batch = fast_path.FastPath(contract).page_batch(body, START, END, 1)
    assert batch is not None
    by_fast_path = batch.rows.to_pylist()[0] if batch.accepted else None
    assert batch.accepted + len(batch.left) == 1
    return by_rules, by_fast_path


def test_every_derived_form_lists_the_contract_s_fields_in_its_order() -> None:
    names = list(record.NAMES)
    assert list(table.IMPRESSION_COLUMNS) == names
    assert list(table.TABLE_COLUMNS) == [*names, "load_run_id", "loaded_at"]
    assert list(fast_path.Impression.__struct_fields__) == names
    assert fast_path.STAGE_SCHEMA.names == ["ordinal", *names]
    assert SCHEMA.names == list(table.TABLE_COLUMNS)
    assert all(f.nullable == c.nullable for f, c in zip(CONTRACT, table.COLUMNS, strict=False))
    assert [f.postgres_type for f in CONTRACT] == [c.postgres for c in table.COLUMNS[:11]]
    assert query.archived(record.VERSION).split(", ")[: len(names)] == names


def test_a_limit_changed_in_one_entry_changes_the_rules_the_fast_path_and_the_table_check() -> None:
    nine = good(placement="x" * 9)
    rows, fast = judged(CONTRACT, nine)
    assert rows[4] == "x" * 9 and fast["placement"] == "x" * 9

    shorter = changed("placement", max_length=8)
    rows, fast = judged(shorter, nine)
    assert rows == "placement is missing or not a short text" and fast is None
    (placement,) = (f for f in shorter if f.name == "placement")
    assert placement.check_sql() == "char_length(placement) BETWEEN 1 AND 8"
    assert placement.column_sql() == (
        "placement text NOT NULL CHECK (char_length(placement) BETWEEN 1 AND 8)"
    )


def test_a_range_or_a_set_changed_in_one_entry_changes_both_checks() -> None:
    cheap = good(cost_micros=99)
    assert judged(changed("cost_micros", minimum=100), cheap) == (
        "cost_micros is out of range: 99",
        None,
    )
    (cost,) = (f for f in changed("cost_micros", minimum=100) if f.name == "cost_micros")
    assert cost.check_sql() == "cost_micros >= 100"
    dollars = good(currency="USD")
    assert judged(changed("currency", allowed=frozenset({"EUR"})), dollars) == (
        "currency is not an ISO 4217 code: 'USD'",
        None,
    )
    assert judged(changed("country", pattern="[A-Z]{3}"), good(country="DE")) == (
        "country is not ISO 3166-1 alpha-2: 'DE'",
        None,
    )


CREATIVE = Field("creative_id", "integer", nullable=True, minimum=0, since=2)
GROWN = (*CONTRACT, CREATIVE)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [({}, None), ({"creative_id": None}, None), ({"creative_id": 7}, 7), ({"creative_id": "8"}, 8)],
)
def test_a_nullable_field_added_is_read_alike_by_the_rules_and_the_fast_path(
    sent: dict[str, Any], stored: int | None
) -> None:
    one = good(**sent)
    rows, fast = judged(GROWN, one)
    assert rows[-1] == stored and fast["creative_id"] == stored  # digits as text: an integer
    assert fast["impression_id"] == uuid.UUID(one["impression_id"]).bytes


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "creative_id is out of range: -1"),
        ("x", "creative_id is not an integer: 'x'"),
        (True, "creative_id is missing or not an integer"),
    ],
)
def test_a_nullable_field_s_bad_value_is_a_reject_not_a_null(value: Any, reason: str) -> None:
    assert judged(GROWN, good(creative_id=value)) == (reason, None)


def test_a_field_sent_twice_is_left_to_the_rules_which_refuse_it() -> None:
    body = json.dumps(good(creative_id=1))[:-1] + ', "creative_id": 2}'
    page = f'{{"impressions": [{body}]}}'.encode()
    batch = fast_path.FastPath(GROWN).page_batch(page, START, END, 1)
    assert batch is not None and batch.accepted == 0
    with pytest.raises(Rejected, match="record gives creative_id more than once"):
        Rules(GROWN).normalise(impression_rules.parse_record(body.encode()), START, END)


def test_versions_name_the_columns_each_archive_object_holds() -> None:
    assert record.version(GROWN) == 2 and record.version(CONTRACT) == record.VERSION
    assert schema(record.VERSION) == SCHEMA
    assert "creative_id" not in query.archived(1)
    with pytest.raises(ValueError, match="a text needs its max_length"):
        Field("note", "text")
    with pytest.raises(ValueError, match="an id is never null"):
        Field("other_id", "uuid", nullable=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=25),
        st.from_regex(r"[0-9]{1,22}", fullmatch=True),
    )
)
def test_the_fast_path_accepts_a_grown_field_only_as_the_rules_read_it(value: Any) -> None:
    by_rules, by_fast_path = judged(GROWN, good(creative_id=value))
    if by_fast_path is not None:
        assert not isinstance(by_rules, str), by_rules
        assert by_fast_path["creative_id"] == by_rules[-1]
