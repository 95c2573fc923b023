"""The day partitions of ad_impressions: a day's partition name and back, and making the
partitions a window needs. Migration 0003's partition functions spell the same name in SQL.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from adpipe.table import TABLE
from adpipe.windows import days_between

PREFIX = f"{TABLE}_"


def partition_name(day: date) -> str:
    """The partition of ``ad_impressions`` that holds the rows shown on ``day`` (UTC)."""
    return f"{PREFIX}{day:%Y%m%d}"


def partition_day(name: str) -> date:
    """The day a partition's name stands for (the inverse of `partition_name`)."""
    return datetime.strptime(name.removeprefix(PREFIX), "%Y%m%d").date()


def ensure_partitions(conn: Any, first: date, last: date) -> list[str]:
    """One partition for each UTC day from ``first`` to ``last`` (inclusive), created when
    missing, in a short transaction of its own; returns the ones created.

    Jobs do not own the table: ``adpipe_ensure_partition`` (migration 0003) runs as the
    owner. It creates a new day's table on its own and then attaches it: ATTACH PARTITION
    takes SHARE UPDATE EXCLUSIVE on ``ad_impressions``, which readers do not conflict with,
    where CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE and queue every reader."""
    created = []
    with conn, conn.cursor() as cur:
        for day in days_between(first, last):
            cur.execute("SELECT adpipe_ensure_partition(%s)", (day,))
            if cur.fetchone()[0]:
                created.append(partition_name(day))
    return created


def missing_partitions(cur: Any, first: date, last: date) -> list[str]:
    """The days' partitions that are missing (an archive may drop an emptied one)."""
    missing = []
    for day in days_between(first, last):
        cur.execute("SELECT to_regclass(%s) IS NULL", (partition_name(day),))
        if cur.fetchone()[0]:
            missing.append(partition_name(day))
    return missing
