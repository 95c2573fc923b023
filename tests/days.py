"""Which days each test module may write: one registry, so that no two modules, in one pytest
run or in the three that `make test` runs side by side, ever touch the same day, and no random
draw lands on another module's day.

A module's days are either fixed dates (old days: the archive moves them, restores bring them
back) or days before TODAY (recent days, for what must stay younger than the retention or lie
inside the 45 days the archive DAG reconciles). `tests/unit/test_days.py` checks the table for
every TODAY from BASELINE on: no two reservations meet, no module beside the old-days group
lies below that group's archive cutoffs, and every reservation inside the archive DAG's
reconcile window is one whose module leaves its days balanced (`balance`). At run time,
`claim` (called by the helpers that write: `helpers.docker_run`, `helpers.Airflow.run` and
`trigger`) fails a test that writes a day its module does not own.

TODAY is the UTC date when the session started, or ADPIPE_TEST_TODAY's (a run replayed on
another date; `make test` sets it once for every pytest run it starts, so a run that crosses
midnight keeps its days). SEED seeds every random draw of the suite: ADPIPE_TEST_SEED's, else
a fresh one; conftest prints both in the session's header, and `make test
PYTEST_ARGS=... ADPIPE_TEST_SEED=<seed>` repeats a draw.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

# The earliest TODAY the table is checked for (the day it was laid out): a fixed day lies
# below every recent day of any later TODAY.
BASELINE = date(2026, 12, 6)
RECONCILE_DAYS = 45  # the archive DAG reconciles the 45 days before its run's date


def _today() -> date:
    given = os.environ.get("ADPIPE_TEST_TODAY", "")
    clock = datetime.now(UTC).date()
    if not given:
        return clock
    today = date.fromisoformat(given)
    if today > clock:  # the jobs refuse windows that have not ended
        raise ValueError(f"ADPIPE_TEST_TODAY={given} is after today ({clock})")
    return today


TODAY = _today()
SEED = int(os.environ.get("ADPIPE_TEST_SEED") or secrets.randbelow(2**32))

Day = date | int  # a fixed date, or that many days before TODAY


@dataclass(frozen=True)
class Days:
    """Days one owner writes, first to last inclusive.

    Attributes:
        owner: a test module's name (``test_doors``), or what else writes (``scheduler``).
        first, last: fixed dates, or days before TODAY (``Days("x", 5, 3)``: 5 to 3 days ago).
        balance: the owner leaves each of these days balanced in reconcile (its unloaded
            hours accepted as gaps, `balance`), so the archive DAG's reconcile, which reads
            every day of its window, meets nothing of it; required inside that window.
        draw: the owner draws its days at random from this range (`draw`).
        old: the owner's old_days tests write these, one at a time with the archive runs
            that move every day below their cutoffs (ARCHIVES_BELOW); every other day lies
            above those cutoffs.
    """

    owner: str
    first: Day
    last: Day
    balance: bool = False
    draw: bool = False
    old: bool = False

    def span(self, today: date = TODAY) -> tuple[date, date]:
        return _resolve(self.first, today), _resolve(self.last, today)


def _resolve(day: Day, today: date) -> date:
    return today - timedelta(days=day) if isinstance(day, int) else day


# The old-days group (marker old_days) runs archive jobs whose cutoffs move every day below
# them; its modules run one at a time. Each module's latest cutoff:
ARCHIVES_BELOW = {
    "test_integrity": date(2022, 6, 2),  # archive --date 2022-07-02
    "test_durability": date(2023, 4, 2),  # archive --date 2023-05-02
    "test_archive_job": date(2025, 5, 11),  # archive --date 2025-06-10
}

RESERVED = (
    # old days: the old-days group
    Days("test_integrity", date(1, 1, 1), date(1, 1, 1), old=True),  # the first hour there is
    Days("test_integrity", date(2022, 6, 1), date(2022, 6, 1), old=True),
    Days("test_integrity", date(2999, 12, 30), date(2999, 12, 30)),  # a partition, made in SQL
    Days("test_durability", date(2023, 1, 10), date(2023, 1, 12), old=True),
    Days("test_durability", date(2023, 3, 1), date(2023, 3, 1), old=True),
    Days("test_durability", date(2023, 4, 1), date(2023, 4, 1), old=True),
    Days("test_durability", date(2023, 5, 1), date(2023, 5, 2), old=True),
    Days("test_archive_job", date(2025, 3, 1), date(2025, 3, 5), old=True),
    Days("test_archive_job", date(2025, 5, 1), date(2025, 6, 10), old=True),
    # fixed days above every archive cutoff of the old-days group: the recent-days groups
    Days("test_reconcile", date(2025, 7, 1), date(2026, 5, 31), draw=True),
    Days("test_durability", date(2026, 6, 1), date(2026, 6, 1)),
    Days("test_integrity", date(2026, 6, 5), date(2026, 6, 10)),
    Days("test_hostile_source", date(2026, 7, 1), date(2026, 7, 5)),
    Days("test_reader_holds_nothing", date(2026, 7, 6), date(2026, 7, 8)),
    Days("test_no_secret_in_argv", date(2026, 7, 9), date(2026, 7, 10)),
    Days("test_windows_and_clock", date(2026, 7, 11), date(2026, 7, 20)),
    Days("test_doors", date(2026, 7, 21), date(2026, 7, 22)),
    Days("test_managed_postgres", date(2026, 7, 23), date(2026, 7, 23)),  # into its own server
    Days("test_bench", date(2026, 8, 1), date(2026, 8, 8)),  # and make bench's
    Days("test_health_metrics", date(2026, 9, 1), date(2026, 9, 1)),
    Days("test_data_health", date(2026, 9, 3), date(2026, 9, 4)),
    Days("test_alarm", date(2026, 9, 6), date(2026, 9, 6)),
    Days("test_late_records", date(2026, 9, 10), date(2026, 9, 11)),
    Days("test_capacity", date(2026, 9, 8), date(2026, 9, 8)),
    Days("test_api_load_jobs", date(2026, 10, 1), date(2026, 10, 12)),
    Days("test_api_credential", date(2026, 10, 13), date(2026, 10, 13)),
    Days("test_settings_reach_runs", date(2026, 10, 14), date(2026, 10, 14)),
    # days before TODAY; inside the archive DAG's reconcile window each is left balanced
    Days("scheduler", 1, 0, balance=True),  # the stack's own hourly runs: the latest hour
    Days("test_dag_runs", 3, 3, balance=True),
    Days("test_archive_dag", 5, 5, balance=True),
    Days("test_backfill", 7, 7, balance=True),
    Days("test_worker_killed", 9, 9, balance=True),
    Days("test_deadline", 12, 11, balance=True),
    Days("demo", 16, 15, balance=True),  # platform/demo.py, on a developer's stack
    Days("test_executor_parity", 33, 33, balance=True),
    Days("test_archive_dag", 40, 40, balance=True),
    # below the archive DAG's window, but inside the demo's (its archive runs 14 days ago)
    Days("test_dag_runs", 47, 47, balance=True),
    Days("demo", 50, 50, balance=True),
    Days("test_query", 52, 52, balance=True),
)


def of(owner: str) -> list[tuple[date, date]]:
    """The owner's spans of days, in the table's order (first, last inclusive)."""
    spans = [d.span() for d in RESERVED if d.owner == owner]
    assert spans, f"{owner} holds no days: reserve them in tests/days.py"
    return spans


def day(owner: str, span: int = 0, n: int = 0) -> date:
    """The n-th day of the owner's span-th reservation."""
    first, last = of(owner)[span]
    found = first + timedelta(days=n)
    assert found <= last, f"{owner}'s span {span} ends at {last}, before day {n}"
    return found


def moment(owner: str, span: int = 0, n: int = 0, hour: int = 0) -> datetime:
    """That day's hour ``hour``, in UTC."""
    found = day(owner, span, n)
    return datetime(found.year, found.month, found.day, hour, tzinfo=UTC)


def draw(owner: str, count: int, taken: Iterable[date] = ()) -> list[date]:
    """``count`` consecutive days drawn with SEED from the owner's ``draw`` reservation, none
    of them in ``taken`` (days an earlier session on the same stack used)."""
    (reservation,) = [d for d in RESERVED if d.owner == owner and d.draw]
    first, last = reservation.span()
    used = set(taken)
    generator = random.Random(f"{SEED}:{owner}")
    span = (last - first).days - count + 1
    for _ in range(200):
        start = first + timedelta(days=generator.randrange(span))
        chosen = [start + timedelta(days=i) for i in range(count)]
        if not used & set(chosen):
            return chosen
    raise AssertionError(f"{owner}: no {count} untaken days left in {first}..{last}")


# -- the table's rules, checked by tests/unit/test_days.py --------------------------------


def overlaps(table: Iterable[Days], today: date) -> list[str]:
    """Each pair of reservations of different owners that share a day, for ``today``."""
    spans = sorted((d.span(today), d.owner) for d in table)
    found = []
    for i, ((first, last), owner) in enumerate(spans):
        for (other_first, _), other in spans[i + 1 :]:
            if other_first > last:
                break
            if other != owner:
                found.append(f"{owner} {first}..{last} meets {other} from {other_first}")
    return found


def below_archive_cutoffs(table: Iterable[Days], today: date) -> list[str]:
    """Reservations beside the old-days group that an old-days archive run would move, and
    old-days reservations of modules that run no archive (who would move them?)."""
    cutoff = max(ARCHIVES_BELOW.values())
    return [
        f"{d.owner} {d.span(today)[0]} lies below the old-days group's cutoff {cutoff}"
        for d in table
        if not d.old and d.span(today)[0] < cutoff
    ] + [
        f"{d.owner} holds old days but runs no archive"
        for d in table
        if d.old and d.owner not in ARCHIVES_BELOW
    ]


def unbalanced_in_reconcile_window(table: Iterable[Days], today: date) -> list[str]:
    """Reservations inside the archive DAG's reconcile window whose owner does not promise
    to leave them balanced."""
    low, high = today - timedelta(days=RECONCILE_DAYS), today - timedelta(days=1)
    found = []
    for d in table:
        first, last = d.span(today)
        if first <= high and last >= low and not d.balance:
            found.append(f"{d.owner} {first}..{last} lies in the reconcile window {low}..{high}")
    return found


# -- at run time: the module whose test runs now, and what it writes ----------------------

CURRENT = ""  # set by conftest for each test; "" outside a test


def claim(first: date, last: date, what: str) -> None:
    """Fail the running test when it writes a day its module does not own."""
    if not CURRENT:
        return
    spans = [d.span() for d in RESERVED if d.owner == CURRENT]
    for day_ in (first + timedelta(days=i) for i in range((last - first).days + 1)):
        if not any(low <= day_ <= high for low, high in spans):
            owners = [d.owner for d in RESERVED if d.span()[0] <= day_ <= d.span()[1]]
            raise AssertionError(
                f"{CURRENT} {what} on {day_}, which tests/days.py gives to "
                f"{owners[0] if owners else 'no module'}: reserve the module's days there"
            )
