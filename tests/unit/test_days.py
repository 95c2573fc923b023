"""The registry of test days (tests/days.py) holds for every date the suite may run on: no
two modules share a day, nothing beside the old-days group lies below its archive cutoffs,
every day inside the archive DAG's reconcile window is left balanced, and a draw, whatever
its seed, stays inside its own module's range."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import days
import pytest
from days import Days

# every TODAY from the day the table was laid out to three years on
TODAYS = [days.BASELINE + timedelta(days=n) for n in range(0, 3 * 366, 3)] + [days.TODAY]


@pytest.mark.parametrize(
    "rule", [days.overlaps, days.below_archive_cutoffs, days.unbalanced_in_reconcile_window]
)
def test_the_table_keeps_each_rule_on_every_date_the_suite_may_run(rule) -> None:
    broken = {today: found for today in TODAYS if (found := rule(days.RESERVED, today))}
    assert not broken, next(iter(broken.items()))


def test_two_modules_reserving_the_same_day_are_named() -> None:
    # what the table's check sees when one module takes a day another holds: the doors
    # test moved onto the parity test's day, as on 2026-12-06 before this table
    moved = Days("test_doors", 33, 33, balance=True)
    found = days.overlaps([*days.RESERVED, moved], days.BASELINE)
    assert found and all("test_doors" in f and "test_executor_parity" in f for f in found)
    fixed = Days("test_reconcile_copy", date(2025, 6, 8), date(2025, 6, 10))
    assert "test_archive_job" in " ".join(days.overlaps([*days.RESERVED, fixed], days.TODAY))


def test_a_recent_day_without_balance_or_an_old_day_below_a_cutoff_is_named() -> None:
    assert days.unbalanced_in_reconcile_window([Days("x", 7, 7)], days.BASELINE)
    assert days.below_archive_cutoffs([Days("x", date(2024, 1, 1), date(2024, 1, 1))], days.TODAY)


@pytest.mark.parametrize("seed", [0, 1, 7, 2**31, days.SEED])
def test_a_draw_stays_in_its_modules_range_whatever_the_seed(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(days, "SEED", seed)
    first, last = days.of("test_reconcile")[0]
    others = [d.span() for d in days.RESERVED if d.owner != "test_reconcile"]
    taken: set[date] = set()
    for _ in range(20):
        chosen = days.draw("test_reconcile", 3, taken)
        assert all(first <= d <= last for d in chosen), chosen
        assert not any(lo <= d <= hi for d in chosen for lo, hi in others), chosen
        assert not taken & set(chosen)
        taken |= set(chosen)
    assert days.draw("test_reconcile", 3) == days.draw("test_reconcile", 3)  # the seed decides


def test_a_write_outside_the_running_modules_days_fails_naming_the_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(days, "CURRENT", "test_reconcile")
    parity = days.day("test_executor_parity")
    with pytest.raises(AssertionError, match="gives to test_executor_parity"):
        days.claim(parity, parity, "loads")
    days.claim(*days.of("test_reconcile")[0], "loads")


def test_every_owner_is_a_test_module_or_names_what_else_writes() -> None:
    modules = {p.stem for p in Path(__file__).parents[1].rglob("test_*.py")}
    others = {"scheduler", "demo"}
    assert {d.owner for d in days.RESERVED} - others <= modules | {"test_hostile_source"}
