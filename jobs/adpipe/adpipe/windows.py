"""Object keys derived from a run's window or day, never from the clock, so a re-run of a
run touches exactly the same keys."""

from __future__ import annotations

from datetime import UTC, date, datetime

from adpipe.storage import BACKUP_PREFIX, QUARANTINE_PREFIX


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def window_path(start: datetime, end: datetime) -> str:
    """``date=YYYY-MM-DD/window=<start>-<end>/`` (the date is the start's, in UTC)."""
    return f"date={start.astimezone(UTC):%Y-%m-%d}/window={_stamp(start)}-{_stamp(end)}/"


def backup_prefix(start: datetime, end: datetime) -> str:
    """Where extract_backup writes a window's pages and manifest."""
    return f"{BACKUP_PREFIX}impressions/{window_path(start, end)}"


def quarantine_key(start: datetime, end: datetime) -> str:
    """Where load writes a window's rejected records, one JSON object a line, gzip."""
    return f"{QUARANTINE_PREFIX}impressions/{window_path(start, end)}rejected.jsonl.gz"


def day_path(day: date) -> str:
    return f"date={day:%Y-%m-%d}/"
