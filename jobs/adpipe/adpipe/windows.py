"""Where things are stored in the bucket: every key a job writes or reads is made here, from
a run's window or day and the content, never from the clock.

Backups are immutable. A window's pages are named by the sha256 of their bytes, and each
complete backup of the window is a numbered manifest version listing its pages in order:

    backup/impressions/date=D/window=<start>-<end>/page-<sha256>.json.gz
    backup/impressions/date=D/window=<start>-<end>/manifest-000001.json

An extract that receives the same bytes as the window's latest version writes nothing; one
that receives other bytes writes the new pages beside the old ones and a new version last.
A stored page that no longer holds its bytes (a flipped bit) is left as it is; the extract
writes a repaired copy beside it (``page-<sha256>.copy1.json.gz``) and a new version naming it.
The window's current backup is its highest version.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from adpipe.table import TABLE

# The bucket's areas; every job identity's rights follow them (platform/s3/serve.py)
BACKUP_PREFIX = "backup/"
QUARANTINE_PREFIX = "quarantine/"
ARCHIVE_PREFIX = "archive/"
SET_ASIDE_PREFIX = "set-aside/"  # objects `archive set-aside` moved out of archive/
MANIFEST = re.compile(r"manifest-([0-9]{6})\.json")
WINDOW = re.compile(r"window=([0-9]{8}T[0-9]{6}Z)-([0-9]{8}T[0-9]{6}Z)/")
# each area's folder of the table's data
BACKUP_TABLE_PREFIX = f"{BACKUP_PREFIX}impressions/"
QUARANTINE_TABLE_PREFIX = f"{QUARANTINE_PREFIX}impressions/"
ARCHIVE_TABLE_PREFIX = f"{ARCHIVE_PREFIX}{TABLE}/"


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 in UTC (``2026-11-20T10:00:00Z``): how the API is asked for a
    window, and how manifests and SUMMARY lines write one."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def window_path(start: datetime, end: datetime) -> str:
    """``date=YYYY-MM-DD/window=<start>-<end>/`` (the date is the start's, in UTC)."""
    return f"date={start.astimezone(UTC):%Y-%m-%d}/window={_stamp(start)}-{_stamp(end)}/"


def window_of(key: str) -> tuple[datetime, datetime] | None:
    """The window a backup key or prefix names (`window_path`), or None for another shape."""
    found = WINDOW.search(key)
    if not found:
        return None
    start, end = (
        datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) for stamp in found.groups()
    )
    return start, end


def window_days(start: datetime, end: datetime) -> tuple[date, date]:
    """The first and last UTC day the window ``[start, end)`` touches."""
    return start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def backup_prefix(start: datetime, end: datetime) -> str:
    """Where extract_backup writes a window's pages and manifest versions."""
    return f"{BACKUP_TABLE_PREFIX}{window_path(start, end)}"


def backup_day_prefix(day: date) -> str:
    return f"{BACKUP_TABLE_PREFIX}date={day:%Y-%m-%d}/"


def page_key(prefix: str, sha256: str, copy: int = 0) -> str:
    """A page, named by the sha256 of the bytes the API sent; ``copy`` n > 0 names the n-th
    repaired copy, written when the stored page under the earlier name is damaged (a backup
    is never overwritten)."""
    return f"{prefix}page-{sha256}{f'.copy{copy}' if copy else ''}.json.gz"


def manifest_key(prefix: str, version: int) -> str:
    return f"{prefix}manifest-{version:06d}.json"


def manifest_version(key: str) -> int | None:
    """The version a manifest key names, else None."""
    found = MANIFEST.fullmatch(key.rsplit("/", 1)[-1])
    return int(found.group(1)) if found else None


def quarantine_key(start: datetime, end: datetime, load_run_id: int) -> str:
    """Where one load run writes the window's rejected records, one JSON object a line, gzip.
    Each run has its own: a run that never commits cannot replace a committed run's rejects,
    and ``load_runs.quarantine_key`` names the committed one."""
    return f"{QUARANTINE_TABLE_PREFIX}{window_path(start, end)}run-{load_run_id}.jsonl.gz"


def archive_day_prefix(day: date) -> str:
    """Where a day's archive objects live (Hive-partitioned by ``shown_date``)."""
    return f"{ARCHIVE_TABLE_PREFIX}shown_date={day:%Y-%m-%d}/"


def archive_key(day: date, sha256: str) -> str:
    """An archive object, named by the sha256 of its bytes: same rows, same key."""
    return f"{archive_day_prefix(day)}part-{sha256[:20]}.parquet"


def archive_key_day(key: str) -> date | None:
    """The ``shown_date`` an archive key names, or None for a key of another shape."""
    part = key.removeprefix(ARCHIVE_TABLE_PREFIX).split("/", 1)[0]
    try:
        return date.fromisoformat(part.removeprefix("shown_date="))
    except ValueError:
        return None


def set_aside_key(key: str) -> str:
    """Where `archive set-aside` moves an archive object: the same key under set-aside/."""
    return f"{SET_ASIDE_PREFIX}{key}"
