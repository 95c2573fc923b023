"""How reconcile counts (what its user reads is RECONCILE_DOC, its --help).

For each day of a range, from what is really stored:

    backup      records in the day's backups (s3://ad-data/backup/): for each window, the
                version its latest load recorded in load_runs, else its latest version; a
                window whose latest version is newer than the one loaded is a problem (what
                the API sent later, late records, is not loaded)
    postgres    rows of ad_impressions shown that day
    archive     rows of the day's live archive objects (each object is downloaded: its
                SHA-256 must be the one archive_manifest records, and its Parquet footer
                gives the rows)
    rejected    lines of the quarantine object the latest load of each window recorded
                (s3://ad-data/quarantine/; a load that never committed is not counted)
    duplicates  repeats dropped by the latest load of each window (load_runs)

A day balances when backup = postgres + archive + rejected + duplicates and nothing is
wrong with it. Every hour of the range is expected loaded from RECONCILE_EXPECT_FROM (make
env sets it to the hour .env was made, so a new environment is not flagged for the days
before it existed; unset: the first hour ever loaded) up to the last hour that ended an hour
ago; a day also fails on each such hour no load covered (a missed window would otherwise
balance as 0 = 0), and a day that holds any load is expected whole, whenever it was,
unless the hour was accepted as lost (make accept-gap); a day with none names the whole day.
It also fails on a window off the grid or overlapping another (retire names it), on a
backup manifest whose bytes no longer match the sha256 its load recorded, on a page its
manifest lists that is gone, and on an archive object that is missing or holds other rows
than its manifest row says, or other bytes than were archived. Exits non-zero (3) on any of
these, naming the day and what is wrong. Every count comes from one snapshot of the
warehouse (REPEATABLE READ). Days are those of the windows' starts (api-load's windows are
hours, so a window never spans two days).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import tempfile
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from adpipe import grid
from adpipe.backups import version_keys
from adpipe.errors import DataError, backfill
from adpipe.job import Command, check_day_range, day_range_arguments, days_or_default
from adpipe.storage import Bucket
from adpipe.warehouse import session
from adpipe.windows import backup_day_prefix, days_between, rfc3339, window_of
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from adpipe_archive import verify

SPAN = 45  # days reconcile checks when not told (--from, --to): the nightly run's too

RECONCILE_DOC = f"""reconcile: Check day by day that each record the API sent has exactly one place.

For each day from --from to --to (both included; without them, the {SPAN} days up to
yesterday, UTC), counts from what is really stored:

    backup      records in the day's backups: for each window, the backup version its
                latest load read, else its latest version
    postgres    rows of ad_impressions shown that day
    archive     rows of the day's archive objects (each one is downloaded and must hold
                the bytes archive_manifest records)
    rejected    records the latest load of each window quarantined
    duplicates  repeats the latest load of each window dropped

A day balances when backup = postgres + archive + rejected + duplicates and nothing is
wrong with it. Every hour from RECONCILE_EXPECT_FROM (unset: the first hour ever loaded) to
the last hour that ended an hour ago is expected loaded, and a day that holds any load is
expected whole; an hour accepted as lost (make accept-gap) is not. A day also fails on an
hour no load covered (a missed window would otherwise balance as 0 = 0), a window off the
grid or overlapping another (retire resolves it), a backup whose bytes no longer match what
its load recorded, a backup page that is gone, and an archive object that is missing or
holds other rows or bytes than were archived. A window's records count on its start's day.

Prints a table of the days (--json: the days as JSON), then its SUMMARY line. It only reads,
every count from one snapshot of the warehouse, so it changes nothing and may run at any
time. A day that does not balance is exit 3, naming the day and what is wrong (a missed hour
with the make backfill line that loads it).

    docker run --rm --network host --env-file .env.reconcile adpipe/archive:dev reconcile \\
        [--from 2026-11-01] [--to 2026-11-27] [--json]
"""

FIELDS = ("backup", "postgres", "archive", "rejected", "duplicates")
PG_ROWS = """
SELECT (shown_at AT TIME ZONE 'UTC')::date AS day, count(*) FROM ad_impressions
WHERE shown_at >= %s AND shown_at < %s GROUP BY 1
"""
ARCHIVED = """
SELECT shown_date, object_key, rows, sha256 FROM archive_manifest
WHERE shown_date BETWEEN %s AND %s AND restored_at IS NULL
"""
LATEST_LOADS = """
SELECT DISTINCT ON (window_start, window_end) window_start, window_end, duplicates,
    manifest_key, manifest_sha256, quarantine_key, finished_at
FROM load_runs r
WHERE window_start >= %s AND window_start < %s
  AND NOT EXISTS (SELECT FROM retired_windows w
                  WHERE w.window_start = r.window_start AND w.window_end = r.window_end)
ORDER BY window_start, window_end, load_run_id DESC
"""
RETIRED = "SELECT window_start, window_end FROM retired_windows WHERE window_start < %s"
FIRST_LOAD = "SELECT min(window_start) FROM load_runs"
ACCEPTED = "SELECT gap_start, gap_end FROM accepted_gaps WHERE gap_end > %s AND gap_start < %s"
HOUR = timedelta(hours=1)
GRACE = timedelta(hours=1)  # an hour is expected loaded once it ended this long ago


class Progress:
    """A bar on a terminal, plain lines elsewhere (Airflow's task log)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if self.tty:
            filled = int(30 * self.done / max(self.total, 1))
            sys.stderr.write(
                f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {label}"
            )
            if self.done == self.total:
                sys.stderr.write("\n")
        elif self.done == self.total or self.done % 10 == 0:
            sys.stderr.write(f"reconcile: {self.done}/{self.total} days ({label})\n")
        sys.stderr.flush()


def _count_lines(bucket: Bucket, key: str, workdir: Path) -> int | None:
    """Lines of a quarantine object (gzip JSON lines), or None when it is gone."""
    path = workdir / "quarantine.gz"
    with path.open("wb") as handle:
        if not bucket.download(key, handle):
            return None
    try:
        with gzip.open(path, "rb") as lines:
            return sum(1 for _ in lines)
    except (OSError, EOFError, zlib.error):
        raise DataError(
            f"quarantine object s3://{bucket.name}/{key} is not gzip",
            "put the load's original back from a copy of the bucket, or rerun the window's "
            "load (make backfill DAG=api-load ... REPROCESS=completed) to write it anew",
        ) from None


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _covered(hour: datetime, spans: list[tuple[datetime, datetime]]) -> bool:
    return any(low <= hour and hour + HOUR <= high for low, high in spans)


def missing_hours(
    span: tuple[datetime, datetime],
    loaded: list[tuple[datetime, datetime]],
    accepted: list[tuple[datetime, datetime]],
    expect_from: datetime | None,
    now: datetime,
) -> list[datetime]:
    """The hours of ``span`` (``[start, end)``) that ended at least GRACE before ``now`` and
    that no load covered and no accepted gap excuses, of two kinds: every hour from
    ``expect_from`` on, and every hour of a day that holds any load, whenever that day was (a
    day loaded from 03:00 to 06:00 misses the other 21, before ``expect_from`` too)."""
    (start, end), loads, excused = span, _merged(loaded), _merged(accepted)
    expected: set[datetime] = set()
    if expect_from is not None:
        hour = max(start, expect_from.replace(minute=0, second=0, microsecond=0))
        while hour < end and hour + HOUR <= now - GRACE:
            expected.add(hour)
            hour += HOUR
    for day in {low.astimezone(UTC).date() for low, _ in loaded}:
        hour = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for _ in range(24):
            if start <= hour < end and hour + HOUR <= now - GRACE:
                expected.add(hour)
            hour += HOUR
    return sorted(h for h in expected if not _covered(h, loads) and not _covered(h, excused))


def window_problems(windows: set[tuple[datetime, datetime]], minutes: int) -> dict[date, list[str]]:
    """Per day, each window off the grid and each pair of overlapping windows: records
    reconcile would count twice, with the command that retires the one that should not
    count."""
    found: dict[date, list[str]] = {}
    ordered = sorted(windows)
    for i, (low, high) in enumerate(ordered):
        day = low.astimezone(UTC).date()
        retire = (
            f"archive retire --start {low:%Y-%m-%dT%H:%M:%SZ} --end {high:%Y-%m-%dT%H:%M:%SZ} "
            "--reason ..."
        )
        if not (grid.on_grid(low, minutes) and grid.on_grid(high, minutes)):
            found.setdefault(day, []).append(
                f"window {low:%H:%M}-{high:%H:%M} UTC is off the grid of WINDOW_MINUTES="
                f"{minutes} (load the grid's windows of its hours, then: {retire})"
            )
        for other_low, other_high in ordered[i + 1 :]:
            if other_low >= high:
                break
            found.setdefault(day, []).append(
                f"windows {low:%H:%M}-{high:%H:%M} and {other_low:%H:%M}-{other_high:%H:%M} UTC "
                f"overlap: their records count twice (retire the one that should not count: "
                f"archive retire --start {other_low:%Y-%m-%dT%H:%M:%SZ} --end "
                f"{other_high:%Y-%m-%dT%H:%M:%SZ} --reason ..., or {retire})"
            )
    return found


def describe_gaps(day: date, hours: list[datetime]) -> list[str]:
    """One problem line per run of missing hours of ``day``, with the commands that resolve
    it; the whole day as one."""
    if len(hours) == 24:
        spans = [(hours[0], hours[-1])]
        what = [f"no load at all on {day} (24 hours)"]
    else:
        spans = []
        for hour in hours:
            if spans and hour == spans[-1][1] + HOUR:
                spans[-1] = (spans[-1][0], hour)
            else:
                spans.append((hour, hour))
        what = [
            f"no load for {low:%H:%M}-{(high + HOUR):%H:%M} UTC".replace("-00:00", "-24:00")
            for low, high in spans
        ]
    return [
        f"{text} (a missed window: "
        f"{backfill(f'{low:%Y-%m-%dT%H:%M}', f'{high:%Y-%m-%dT%H:%M}', reprocess=False)}; "
        "an outage with no data to fetch: make accept-gap "
        f"FROM={low:%Y-%m-%dT%H:%M} TO={high:%Y-%m-%dT%H:%M} REASON=...)"
        for text, (low, high) in zip(what, spans, strict=True)
    ]


class Reconciliation:
    """Reconcile's count of each day from ``first`` to ``last``, as its steps (`run`): what
    the warehouse says (rows, loads, accepted gaps, archive objects: one snapshot), then
    what is stored (each window's backup, each quarantine and archive object, read back),
    then each day's verdict. Its context: the sessions, the days' rows, what the loads
    recorded, and the clock (``now``) and grid (``minutes``) it judges by."""

    def __init__(
        self,
        conn: Any,
        bucket: Bucket,
        first: date,
        last: date,
        expect_from: datetime | None = None,
    ) -> None:
        self.conn, self.bucket, self.first, self.last = conn, bucket, first, last
        self.settle = timedelta(minutes=30)  # RECONCILE_SETTLE_MINUTES: `in_flight`
        self.written: dict[str, datetime] = {}  # each backup key's LastModified, as listed
        self.expect_from = expect_from
        self.now = datetime.now(UTC)
        self.minutes = 60
        self.start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        self.end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        self.days: dict[date, dict[str, Any]] = {}
        # window prefix -> the manifest its latest load read, and that manifest's sha256
        self.loaded: dict[str, tuple[str, str]] = {}
        self.spans: list[tuple[datetime, datetime]] = []  # the windows loads covered
        self.finished: dict[
            tuple[datetime, datetime], datetime
        ] = {}  # when each window's load ended
        self.accepted: list[tuple[datetime, datetime]] = []
        self.missing: list[datetime] = []  # the hours `missing_hours` names
        self.quarantined: dict[date, list[str]] = {}
        self.retired: set[tuple[datetime, datetime]] = set()
        self.archived: dict[date, list[tuple[str, int, str]]] = {}
        self.workdir = Path()

    def run(self) -> list[dict[str, Any]]:
        with self.conn, self.conn.cursor() as cur:
            self.read_rows_and_loads(cur)
            self.find_gaps(cur)
            cur.execute(ARCHIVED, (self.first, self.last))
            for day, key, rows, sha256 in cur.fetchall():
                self.archived.setdefault(day, []).append((key, rows, sha256.strip()))
        counted = {w for w in self.spans if w not in self.retired}
        span = days_between(self.first, self.last)
        progress = Progress(len(span))
        with tempfile.TemporaryDirectory(prefix="adpipe-reconcile-") as tmp:
            self.workdir = Path(tmp)
            for day in span:
                counted |= self.count_backups(day)
                self.count_quarantine(day)
                self.count_archive(day)
                progress.step(day.isoformat())
        for day, problems in window_problems(counted, self.minutes).items():
            if self.first <= day <= self.last:
                self.row(day)["problems"] += problems
        return [self.verdict(self.days[day]) for day in sorted(self.days)]

    def row(self, day: date) -> dict[str, Any]:
        return self.days.setdefault(
            day, {"day": day.isoformat(), **dict.fromkeys(FIELDS, 0), "problems": []}
        )

    def read_rows_and_loads(self, cur: Any) -> None:
        """The table's rows per day, and what the latest load of each window recorded."""
        cur.execute(PG_ROWS, (self.start, self.end))
        for day, count in cur.fetchall():
            self.row(day)["postgres"] = count
        cur.execute(LATEST_LOADS, (self.start, self.end))
        for (
            low,
            high,
            duplicates,
            manifest_key,
            manifest_sha,
            quarantine_key,
            finished,
        ) in cur.fetchall():
            day = low.astimezone(UTC).date()
            self.finished[(low, high)] = finished
            self.row(day)["duplicates"] += duplicates
            if quarantine_key:
                self.quarantined.setdefault(day, []).append(quarantine_key)
            self.loaded[manifest_key.rsplit("/", 1)[0] + "/"] = (manifest_key, manifest_sha)
            self.spans.append((low, high))

    def find_gaps(self, cur: Any) -> None:
        """Each day's hours no load covered (`missing_hours`), as problems."""
        if self.expect_from is None:
            cur.execute(FIRST_LOAD)
            self.expect_from = cur.fetchone()[0]
        cur.execute(ACCEPTED, (self.start, self.end))
        accepted = self.accepted = cur.fetchall()
        cur.execute(RETIRED, (self.end,))
        self.retired = set(cur.fetchall())
        gaps: dict[date, list[datetime]] = {}
        span = (self.start, self.end)
        self.missing = missing_hours(span, self.spans, accepted, self.expect_from, self.now)
        for hour in self.missing:
            gaps.setdefault(hour.astimezone(UTC).date(), []).append(hour)
        for day, hours in gaps.items():
            self.row(day)["problems"] += describe_gaps(day, hours)

    def count_backups(self, day: date) -> set[tuple[datetime, datetime]]:
        """The records of the day's backups; the windows they hold (retired ones aside)."""
        windows: dict[str, list[str]] = {}
        written = self.bucket.written_at(backup_day_prefix(day))
        self.written.update(written)
        for key in written:
            windows.setdefault(key.rsplit("/", 1)[0] + "/", []).append(key)
        found = set()
        for prefix, keys in windows.items():
            window = window_of(prefix)
            if not version_keys(keys) or window in self.retired:
                continue  # an extract that never finished, or a window retired
            if window:
                found.add(window)
            self.count_backup(day, prefix, keys)
        return found

    def count_backup(self, day: date, prefix: str, keys: list[str]) -> None:
        """One window's records: the version its latest load read, else its latest one;
        checked against the sha256 the load recorded and for pages that are gone."""
        problems = self.row(day)["problems"]
        latest = version_keys(keys)[-1][1]
        key, recorded_sha = self.loaded.get(prefix) or (latest, None)
        if key != latest and not self.in_flight(latest):
            # the API sent the window again with other records (late ones): not loaded yet
            window = window_of(prefix)
            span = f"--start {rfc3339(window[0])} --end {rfc3339(window[1])}" if window else ""
            problems.append(
                f"backup {latest} is newer than the version its latest load read ({key}): "
                "what the API sent later is not loaded (load it: docker run --rm --network "
                f"host --env-file .env.load adpipe/load:dev {span})"
            )
        body = self.bucket.get(key)
        if body is None:
            problems.append(f"backup manifest {key} is missing")
            return
        if recorded_sha and hashlib.sha256(body).hexdigest() != recorded_sha:
            problems.append(f"backup manifest {key} no longer matches the sha256 its load recorded")
        manifest = json.loads(body)
        present = set(keys)
        lost = [p["key"] for p in manifest.get("pages", []) if p["key"] not in present]
        if lost:
            problems.append(
                f"backup {key} lists {len(lost)} pages that are gone (first: {lost[0]})"
            )
        self.row(day)["backup"] += int(manifest.get("records", 0))

    def in_flight(self, key: str) -> bool:
        """Whether the backup version ``key`` was written so lately (`settle`, the setting
        RECONCILE_SETTLE_MINUTES, before this reconciliation) that its load may be running:
        a lookback's re-extract the moment reconcile reads, not a version left unloaded."""
        return self.written[key] > self.now - self.settle

    def count_quarantine(self, day: date) -> None:
        for key in self.quarantined.get(day, []):
            lines = _count_lines(self.bucket, key, self.workdir)
            if lines is None:
                self.row(day)["problems"].append(f"quarantine object {key} is missing")
            self.row(day)["rejected"] += lines or 0

    def count_archive(self, day: date) -> None:
        """The rows of the day's archive objects, each read back whole."""
        for key, rows, sha256 in self.archived.get(day, []):
            problems = self.row(day)["problems"]  # a day with no object has no row
            found = verify.rows_and_sha256(self.bucket, key, self.workdir)
            if found is None:
                problems.append(f"archive object {key} is missing")
            elif found[1] != sha256:
                problems.append(
                    f"archive object {key} holds other bytes than were archived (SHA-256 "
                    f"{found[1][:16]}..., archive_manifest records {sha256[:16]}...)"
                )
            elif found[0] != rows:
                problems.append(
                    f"archive object {key} holds {found[0]} rows, the manifest says {rows}"
                )
            self.row(day)["archive"] += found[0] if found else 0

    def hour_marks(self, deadline: timedelta) -> dict[str, list[str]]:
        """Per day of the range, each hour's mark as this reconciliation judged it: ``missing``
        (an hour it names), ``accepted`` (an accepted gap), ``loaded``, ``late`` (its load
        ended more than ``deadline`` after its window did), or ``""`` (not expected yet, or
        before RECONCILE_EXPECT_FROM). Read after `run`, from the same snapshot."""
        missing, excused = set(self.missing), _merged(self.accepted)
        marks: dict[str, list[str]] = {}
        for day in days_between(self.first, self.last):
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            row = marks[day.isoformat()] = []
            for hour in (midnight + n * HOUR for n in range(24)):
                row.append(self._mark(hour, missing, excused, deadline))
        return marks

    def _mark(
        self,
        hour: datetime,
        missing: set[datetime],
        excused: list[tuple[datetime, datetime]],
        deadline: timedelta,
    ) -> str:
        if hour in missing:
            return "missing"
        ends = [
            (high, done)
            for (low, high), done in self.finished.items()
            if low <= hour and hour + HOUR <= high and (low, high) not in self.retired
        ]
        if ends:
            return "late" if any(done > high + deadline for high, done in ends) else "loaded"
        return "accepted" if _covered(hour, excused) else ""

    @staticmethod
    def verdict(item: dict[str, Any]) -> dict[str, Any]:
        placed = item["postgres"] + item["archive"] + item["rejected"] + item["duplicates"]
        item["difference"] = placed - item["backup"]
        item["balanced"] = item["difference"] == 0 and not item["problems"]
        return item


def table(days: list[dict[str, Any]]) -> str:
    head = f"{'day':<12}" + "".join(f"{f:>12}" for f in FIELDS) + "  balance"
    lines = [head, "-" * len(head)]
    for d in days:
        status = "ok" if d["balanced"] else f"OFF by {d['difference']:+d}"
        lines.append(f"{d['day']:<12}" + "".join(f"{d[f]:>12}" for f in FIELDS) + f"  {status}")
        lines += [f"{'':<12}! {p}" for p in d["problems"]]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict[str, Any]:
    args.first, args.last = days_or_default(args, SPAN)
    check_day_range(args.first, args.last)
    settings = args.settings
    bucket = Bucket(settings)
    with session(
        settings.warehouse_dsn, "adpipe-reconcile", "reconcile only reads; rerun it", settings
    ) as conn:
        # one snapshot for every query: a load committing meanwhile is counted whole or not
        conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        reconciliation = Reconciliation(conn, bucket, args.first, args.last, settings.expect_from)
        reconciliation.minutes = settings.window_minutes
        reconciliation.settle = settings.settle
        days = reconciliation.run()
    print(json.dumps(days, indent=1) if args.json else table(days), flush=True)
    off = [d for d in days if not d["balanced"]]
    if off:
        named = "; ".join(
            f"{d['day']} off by {d['difference']:+d}"
            + (f" ({', '.join(d['problems'])})" if d["problems"] else "")
            for d in off
        )
        raise DataError(
            f"{len(off)} of {len(days)} days do not balance: {named}",
            "compare the day's backup, table, archive and quarantine",
        )
    return {
        "from": args.first.isoformat(),
        "to": args.last.isoformat(),
        "days": len(days),
        "balanced": len(days),
        # each day's counts (the asset event of the nightly run carries them)
        "day_results": [{"day": d["day"], **{f: d[f] for f in FIELDS}} for d in days],
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    day_range_arguments(parser, SPAN)
    parser.add_argument("--json", action="store_true", help="print the days as JSON")


RECONCILE = Command(
    "reconcile",
    "reconcile",
    RECONCILE_DOC,
    main,
    _arguments,
    env_file="reconcile",
)
