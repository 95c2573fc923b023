"""How the load works, where a row is stored (what its user reads is RUN_DOC, its --help).

Reads the window's current backup version (its latest manifest, and the pages it lists) from
s3://ad-data/backup/ (never the API), refusing to run when there is none or a page's
sha256 differs; load_runs records the version loaded. Validates and
normalises every record (impression_rules), writes the rejected ones with their reason to
s3://ad-data/quarantine/, and fails, loading nothing, when their share exceeds
LOAD_MAX_REJECTED_SHARE.

One transaction per window: holding the window's days' locks (shared with other loads,
exclusive of the archive), check the days are not archived and delete the window's rows;
COPY the valid records whose impression_id certainly comes first in the window
(first_seen.py) straight into ad_impressions, streamed, one page in memory at a time, and
the few that may repeat one into a temporary table, from which the first of each id not
already written is added; then write the load_runs row. Running it again for the same window leaves
the table as one run did; a failure leaves the previous state. A reload that would leave
fewer than 1 - LOAD_MAX_SHRINK_SHARE of the window's committed rows (an empty source after a
non-empty load always) loads nothing and exits 3, unless run with --allow-shrink. New days'
partitions are made beforehand in a short transaction of their own.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import logging
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from adpipe import backups, table
from adpipe.errors import ConfigError, DataError, PartitionDropped, backfill
from adpipe.grid import refuse_overlaps
from adpipe.job import Command, Phases, check_window, window_arguments
from adpipe.locks import lock_days, lock_window
from adpipe.partitions import ensure_partitions, missing_partitions
from adpipe.pg_copy import LineStream, binary_rows, copy_in
from adpipe.settings import Settings
from adpipe.storage import Bucket
from adpipe.warehouse import session
from adpipe.windows import backup_prefix, quarantine_key, rfc3339, window_days
from psycopg2 import sql

from adpipe_load import fast_path
from adpipe_load.first_seen import SeenIds
from adpipe_load.impression_rules import Rejected, normalise, parse_page, parse_record

log = logging.getLogger("adpipe.load")

RUN_DOC = """load: Load a window from its backup in S3 into ad_impressions in PostgreSQL.

Reads the window's current backup, as the extract wrote it (never the ad API), checks each
page against the sha256 its manifest records, checks every record against the contract and
replaces the window's rows in ad_impressions with the valid ones: each impression_id once,
as its first record in the window. Rejected records go, each with its reason, to the
bucket's quarantine/ area; load_runs records the run, the backup version it read and its
counts (the SUMMARY line has them too). The window (--start inclusive, --end exclusive)
starts and ends on the WINDOW_MINUTES grid and lies inside one UTC day.

A window loads in one transaction: a failure at any point leaves its rows as they were, and
running it again leaves the table as one run does. A load and an archive of the same day
never interleave: one waits for the other, at most WAREHOUSE_LOCK_TIMEOUT, then exits 4.
Refused, loading nothing:
- no backup of the window, or a page missing, damaged or unlike its manifest (exit 3): rerun
  the window's extract, which writes a good copy, then the load;
- more than LOAD_MAX_REJECTED_SHARE of the records rejected (exit 3; the quarantine holds
  the reasons);
- a reload that would leave fewer than 1 - LOAD_MAX_SHRINK_SHARE of the window's rows, and an
  empty reload of a loaded window always (exit 3), unless --allow-shrink says the smaller
  window is right (an operator's decision: the DAG never passes it);
- a window loaded before whose day has since been archived (exit 3): restore the day first;
- a window off the grid, across two days, not ended yet, overlapping another loaded window,
  or retired (exit 2).

    docker run --rm --network host --env-file .env.load adpipe/load:dev run \\
        --start 2026-11-20T10:00:00Z --end 2026-11-20T11:00:00Z
"""

# the rows that may repeat an earlier id: the API's columns after each record's ordinal
STAGE = sql.SQL("CREATE TEMPORARY TABLE stage_impressions ({}) ON COMMIT DROP").format(
    sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.postgres), sql.SQL("" if c.nullable else " NOT NULL")
        )
        for c in (table.Column("ordinal", "bigint", "int64"), *table.COLUMNS)
        if c.from_api
    )
)
STAGE_MEMORY = "256MB"
PREFETCH = 2  # pages fetched ahead of the one being loaded
COPY_STAGE = "COPY stage_impressions FROM STDIN WITH (FORMAT binary)"
# the rows first of their id, as ad_impressions stores them
ROW_SCHEMA = pa.schema([*list(fast_path.STAGE_SCHEMA)[1:], ("load_run_id", pa.int64())])
COPY_ROWS = sql.SQL("COPY ad_impressions ({}) FROM STDIN WITH (FORMAT binary)").format(
    sql.SQL(", ").join(map(sql.Identifier, ROW_SCHEMA.names))
)
DELETE_WINDOW = "DELETE FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s"
# of the rows that may repeat, the first of each id the window does not hold yet: a row
# written straight was the first of its id, so it wins over every staged one. The window is
# probed by the primary key once a staged row (a subquery with LIMIT is never made a join):
# as NOT EXISTS the planner, without statistics for rows just written, hashed the whole
# partition's index instead (4 to 6 s for a 10M-row day)
FIRST_OF_REPEATS = """
INSERT INTO ad_impressions ({columns}, load_run_id)
SELECT DISTINCT ON (impression_id) {columns}, %(run_id)s
FROM stage_impressions s
WHERE (SELECT true FROM ad_impressions t WHERE t.impression_id = s.impression_id
       AND t.shown_at >= %(start)s AND t.shown_at < %(end)s LIMIT 1) IS NULL
ORDER BY impression_id, ordinal
"""
ARCHIVED_RELOAD = """
SELECT m.object_key FROM archive_manifest m
WHERE m.restored_at IS NULL AND m.min_shown_at < %(end)s AND m.max_shown_at >= %(start)s
  AND EXISTS (SELECT 1 FROM load_runs r WHERE r.window_start < %(end)s
                                         AND r.window_end > %(start)s)
LIMIT 1
"""
RETIRED_WINDOW = """
SELECT 1 FROM retired_windows WHERE window_start = %(start)s AND window_end = %(end)s
"""
# loaded windows that share a moment with this one, retired ones aside
OTHER_WINDOWS = """
SELECT DISTINCT window_start, window_end FROM load_runs r
WHERE window_start < %(end)s AND window_end > %(start)s
  AND NOT EXISTS (SELECT FROM retired_windows w
                  WHERE w.window_start = r.window_start AND w.window_end = r.window_end)
"""
# what the window's latest load read: a lookback's reload (--if-changed) skips a window whose
# current backup version it already loaded
LAST_LOADED = """
SELECT manifest_key, manifest_sha256 FROM load_runs
WHERE window_start = %s AND window_end = %s
ORDER BY load_run_id DESC LIMIT 1
"""
NEXT_RUN_ID = "SELECT nextval(pg_get_serial_sequence('load_runs', 'load_run_id'))"
# the run's audit row, written once and complete: the loader may not update it (migration 0004)
INSERT_RUN = """
INSERT INTO load_runs (load_run_id, window_start, window_end, manifest_key, manifest_sha256,
    pages, received, valid, rejected, duplicates, rows_written, rows_replaced, quarantine_key,
    started_at)
VALUES (%(run_id)s, %(start)s, %(end)s, %(manifest_key)s, %(manifest_sha256)s, %(pages)s,
    %(received)s, %(valid)s, %(rejected)s, %(duplicates)s, %(rows_written)s,
    %(rows_replaced)s, %(quarantine_key)s, %(started_at)s)
"""


def repair_hint(manifest: dict) -> str:
    """What resolves a damaged or missing backup page: the window's extract checks the pages
    it finds and writes a repaired copy as a new backup version, which the load then reads."""
    window = manifest.get("window") or {}
    start, end = window.get("start", "<start>"), window.get("end", "<end>")
    return (
        f"rerun the window through Airflow: {backfill(start[:16], start[:16])} (or by hand: "
        f"extract_backup run --start {start} --end {end}, then load run with the same window)"
    )


class Counts:
    def __init__(self) -> None:
        self.received = self.valid = self.rejected = 0


class Quarantine:
    """A run's rejected records, one JSON object a line, spooled gzip-compressed to a
    temporary file and put under the run's own key (`adpipe.windows.quarantine_key`) by
    `publish`: a run that never commits cannot replace a committed run's rejects.

    A line holds the record's ``page`` (from 1), its ``position`` in the page (from 0), the
    ``reason`` it was rejected and its bytes exactly as the API sent them: ``record``, their
    text, when they are UTF-8, else ``record_base64``."""

    def __init__(self, bucket: Bucket, key: str) -> None:
        self.bucket, self.key = bucket, key
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__
        self._packed = gzip.GzipFile(fileobj=self._spool, mode="wb", mtime=0)
        self._lines = io.TextIOWrapper(self._packed, encoding="utf-8")

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, *exc: object) -> None:
        self._lines.close()
        self._spool.close()

    def add(self, page: int, position: int, reason: str, raw: Any) -> None:
        """One rejected record, ``raw`` its bytes (anything ``bytes()`` takes). Kept as text,
        never parsed and written again: a record's bytes are what the quarantine is for."""
        entry: dict[str, Any] = {"page": page, "position": position, "reason": reason}
        data = bytes(raw)
        try:
            entry["record"] = data.decode()
        except UnicodeDecodeError:
            entry["record_base64"] = base64.b64encode(data).decode()
        self._lines.write(json.dumps(entry) + "\n")

    def publish(self) -> str:
        """Put the records to S3; returns their address."""
        self._lines.close()  # closing the wrapper closes the gzip stream and writes its trailer
        self._spool.seek(0)
        self.bucket.put(self.key, self._spool, "application/x-ndjson", ContentEncoding="gzip")
        return f"s3://{self.bucket.name}/{self.key}"


def read_manifest(bucket: Bucket, start: datetime, end: datetime) -> tuple[str, str, dict]:
    """The key, sha256 and content of the window's current backup version."""
    prefix = backup_prefix(start, end)
    version = backups.latest(bucket, prefix)
    if version is None:
        raise DataError(
            f"no backup manifest under s3://{bucket.name}/{prefix}",
            "run extract_backup for this window first",
        )
    key, body = version.key, version.body
    try:
        manifest = json.loads(body)
        pages = manifest["pages"]
        for page in pages:
            page["key"], page["sha256"]
    except (ValueError, KeyError, TypeError):
        raise DataError(
            f"backup manifest s3://{bucket.name}/{key} is unreadable",
            "rerun extract_backup for this window",
        ) from None
    return key, hashlib.sha256(body).hexdigest(), manifest


def page_bodies(bucket: Bucket, manifest: dict) -> Iterator[tuple[int, bytes]]:
    """Each page's bytes as the API sent them, after checking the manifest's sha256. The next
    PREFETCH pages are fetched, unpacked and checked in threads while one is loaded (S3,
    zlib and sha256 release the GIL), so at most PREFETCH + 1 pages are in memory."""
    pages = list(enumerate(manifest["pages"], start=1))
    hint = repair_hint(manifest)
    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="prefetch") as pool:
        ahead: deque[tuple[int, Future[bytes]]] = deque()
        for number, page in pages:
            ahead.append((number, pool.submit(_page_body, bucket, page, hint)))
            if len(ahead) > PREFETCH:
                done, body = ahead.popleft()
                yield done, body.result()
        while ahead:
            done, body = ahead.popleft()
            yield done, body.result()


def _page_body(bucket: Bucket, page: dict, hint: str) -> bytes:
    packed = bucket.get(page["key"])
    if packed is None:
        raise DataError(f"backup page s3://{bucket.name}/{page['key']} is missing", hint)
    body = backups.unpack(packed)
    if body is None or hashlib.sha256(body).hexdigest() != page["sha256"]:
        raise DataError(
            f"backup page s3://{bucket.name}/{page['key']} is damaged: it "
            + ("does not decompress" if body is None else "does not match the manifest's sha256"),
            hint,
        )
    return body


class LoadRun:
    """One load of a window, as its steps (`run`), over the run's context: its window,
    settings, clients, counts and phases, and what each step found (the backup version, the
    run's id, the rows replaced and written)."""

    def __init__(
        self, start: datetime, end: datetime, settings: Settings, bucket: Bucket, conn: Any
    ) -> None:
        self.start, self.end = start, end
        self.settings, self.bucket, self.conn = settings, bucket, conn
        self.started_at = datetime.now(UTC)
        self.counts, self.phases = Counts(), Phases()
        self.manifest_key, self.manifest_sha = "", ""
        self.manifest: dict[str, Any] = {}
        self.run_id = self.replaced = self.written = 0

    def run(self, allow_shrink: bool = False, if_changed: bool = False) -> dict[str, Any]:
        """Load the window in one transaction: `guard` what must hold before its rows change,
        delete them, `write` the backup's rows in their place and record the run; see the
        module's description. ``if_changed``: nothing, when the window's latest load read
        its current backup version."""
        ensure_partitions(self.conn, *window_days(self.start, self.end))
        with self.conn, self.conn.cursor() as cur:
            self.read_backup(cur)
            if if_changed and self.loaded_already(cur):
                return self.unchanged()
            with Quarantine(self.bucket, quarantine_key(self.start, self.end, self.run_id)) as q:
                guard(cur, self.bucket, self.start, self.end)
                refuse_other_windows(cur, self.start, self.end)
                self.replace_rows(cur, q)
                self.refuse_a_shrink(allow_shrink)
                self.record(cur, q)
                # the quarantine lands before the commit, under this run's key: a committed
                # load always has its rejects, and its run row names them
                rejects = q.publish() if self.counts.rejected else None
            self.phases.start()
        self.phases.lap("commit")
        return self.summary(rejects)

    def loaded_already(self, cur: Any) -> bool:
        """Whether the window's latest load read the backup version it has now (under the
        window's lock, which `read_backup` took)."""
        cur.execute(LAST_LOADED, (self.start, self.end))
        return cur.fetchone() == (self.manifest_key, self.manifest_sha)

    def unchanged(self) -> dict[str, Any]:
        return {
            "window": [rfc3339(self.start), rfc3339(self.end)],
            "unchanged": True,
            "manifest": f"s3://{self.bucket.name}/{self.manifest_key}",
            "rows_written": 0,
        }

    def read_backup(self, cur: Any) -> None:
        """Take the window's lock, then read its current backup version and a run id: of two
        loads of the window the later one always loads the later backup version."""
        lock_window(cur, self.start, self.end)
        self.manifest_key, self.manifest_sha, self.manifest = read_manifest(
            self.bucket, self.start, self.end
        )
        cur.execute(NEXT_RUN_ID)
        self.run_id = cur.fetchone()[0]

    def replace_rows(self, cur: Any, quarantine: Quarantine) -> None:
        """Delete the window's rows, then write the backup's (the first of each id), unless
        too many records were rejected."""
        phases = self.phases
        phases.start()
        cur.execute(DELETE_WINDOW, (self.start, self.end))
        self.replaced = cur.rowcount
        phases.lap("delete_window")
        seen = SeenIds(int(self.manifest.get("records") or 0))
        self.written = write(cur, self.rows(quarantine), seen, self.run_id)
        phases.lap("copy_rows")
        self.refuse_too_many_rejects(quarantine)
        self.written += first_of_repeats(cur, self.start, self.end, self.run_id)
        phases.lap("first_of_repeats")

    def rows(self, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        """The window's valid records as rows (`fast_path.STAGE_SCHEMA`), one batch a page in
        the window's order, each with its ordinal (its place in the window: the first of an
        id wins)."""
        pages = page_bodies(self.bucket, self.manifest)
        while True:
            with self.phases.timed("read_pages"):
                number, body = next(pages, (0, b""))
            if not number:
                return
            with self.phases.timed("check_records"):
                rows = self.page_rows(number, body, quarantine)
            yield rows  # outside the timer: what the COPY does with it is copy_rows' time

    def page_rows(self, number: int, body: bytes, quarantine: Quarantine) -> pa.RecordBatch:
        """A page's valid records as rows: the fast path takes the records it can accept
        column-wise; the rules decide the rest, and rejected records go to the quarantine."""
        counts, first = self.counts, self.counts.received + 1
        batch = fast_path.page_batch(body, self.start, self.end, first)
        if batch is None:
            try:
                raws = parse_page(body)
            except Rejected as exc:
                raise DataError(
                    f"backup page {number} breaks the contract: {exc}",
                    "rerun extract_backup for this window",
                ) from None
            left: Iterable[tuple[int, Any]] = enumerate(raws)
            counts.received += len(raws)
        else:
            counts.received += batch.records
            counts.valid += batch.accepted
            left = ((position, batch.raws[position]) for position in batch.left)
        rows, ordinals = [], []
        for position, raw in left:  # each record on its own: a row or a reason
            try:
                rows.append(normalise(parse_record(raw), self.start, self.end))
            except Rejected as exc:
                counts.rejected += 1
                quarantine.add(number, position, str(exc), raw)
                continue
            ordinals.append(first + position)
        counts.valid += len(rows)
        if batch is None:
            return fast_path.rules_rows(rows, ordinals)
        if not rows:
            return batch.rows
        # the rules' rows sit between the fast path's: one batch, in order
        ruled = fast_path.rules_rows(rows, ordinals)
        return pa.concat_batches([batch.rows, ruled]).sort_by("ordinal")

    def refuse_too_many_rejects(self, quarantine: Quarantine) -> None:
        counts, limit = self.counts, self.settings.max_rejected_share
        if counts.received and counts.rejected > limit * counts.received:
            self.conn.rollback()
            # this run's own key: the committed run's quarantine stays as it was
            raise DataError(
                f"{counts.rejected} of {counts.received} records rejected "
                f"({counts.rejected / counts.received:.2%}, above {limit:.2%}); nothing "
                f"loaded; reasons in {quarantine.publish()}",
                "inspect the quarantine, fix the source or raise LOAD_MAX_REJECTED_SHARE",
            )

    def refuse_a_shrink(self, allowed: bool) -> None:
        """Refuse to replace a window's committed rows with far fewer: a source that answered
        empty or short must not erase what was loaded. An empty reload of a non-empty window
        always counts, whatever the share."""
        replaced, written, share = self.replaced, self.written, self.settings.max_shrink_share
        if allowed or replaced == 0:
            return
        if written == 0 or written < (1 - share) * replaced:
            raise DataError(
                f"the window holds {replaced} committed rows and its current backup "
                f"({self.manifest_key}) would leave {written}, fewer than "
                f"LOAD_MAX_SHRINK_SHARE ({share:.0%}) allows; nothing loaded",
                "check the source and the window's backup versions; if the smaller window is "
                "right, rerun this load with --allow-shrink",
            )

    def tally(self) -> dict[str, int]:
        """The run's counts, as load_runs records them and the SUMMARY reports them."""
        counts = self.counts
        return {
            "pages": len(self.manifest["pages"]),
            "received": counts.received,
            "valid": counts.valid,
            "rejected": counts.rejected,
            "duplicates": counts.valid - self.written,
            "rows_written": self.written,
            "rows_replaced": self.replaced,
        }

    def record(self, cur: Any, quarantine: Quarantine) -> None:
        """The run's audit row, in the transaction that replaced the rows."""
        cur.execute(
            INSERT_RUN,
            {
                **self.tally(),
                "run_id": self.run_id,
                "start": self.start,
                "end": self.end,
                "manifest_key": self.manifest_key,
                "manifest_sha256": self.manifest_sha,
                "quarantine_key": quarantine.key if self.counts.rejected else None,
                "started_at": self.started_at,
            },
        )

    def summary(self, rejects: str | None) -> dict[str, Any]:
        return {
            "window": [rfc3339(self.start), rfc3339(self.end)],
            "load_run_id": self.run_id,
            **self.tally(),
            "manifest": f"s3://{self.bucket.name}/{self.manifest_key}",
            "quarantine": rejects,
            # where the time went: deleting the window's rows, the COPY of its rows (of it,
            # reading pages from S3 and checking records in this process), adding the first
            # of the rows that may repeat, the commit
            "phase_seconds": self.phases.summary(),
        }


def write(cur: Any, rows: Iterator[pa.RecordBatch], seen: SeenIds, run_id: int) -> int:
    """COPY the rows (from `LoadRun.rows`) that certainly come first of their id straight into
    ad_impressions, as binary COPY, and then the rest, spooled to a temporary file meanwhile,
    into the temporary stage table; returns how many went straight in."""
    written = 0
    run = pa.scalar(run_id, pa.int64())

    def firsts(repeats: pa.ipc.RecordBatchStreamWriter) -> Iterator[pa.RecordBatch]:
        nonlocal written
        for batch in rows:
            first = seen.first(batch.column("impression_id"))
            kept = batch.filter(first)
            if kept.num_rows < batch.num_rows:
                repeats.write_batch(batch.filter(pc.invert(first)))
            written += kept.num_rows
            # in id order PostgreSQL inserts a page's rows into the primary key's B-tree
            # along its leaves: 15% less of its CPU than in the API's order
            kept = kept.sort_by("impression_id")
            columns = [*kept.columns[1:], pa.repeat(run, kept.num_rows)]
            yield pa.RecordBatch.from_arrays(columns, schema=ROW_SCHEMA)

    with tempfile.TemporaryFile() as spool:
        with pa.ipc.new_stream(spool, fast_path.STAGE_SCHEMA) as repeats:
            statement = COPY_ROWS.as_string(cur)
            copy_in(cur, statement, LineStream(binary_rows(ROW_SCHEMA, firsts(repeats))))
        spool.seek(0)
        cur.execute("SET LOCAL temp_buffers = %s", (STAGE_MEMORY,))
        cur.execute("SET LOCAL work_mem = %s", (STAGE_MEMORY,))
        cur.execute(STAGE)
        with pa.ipc.open_stream(spool) as staged:
            copy_in(cur, COPY_STAGE, LineStream(binary_rows(fast_path.STAGE_SCHEMA, staged)))
    return written


def guard(cur: Any, bucket: Bucket, start: datetime, end: datetime) -> None:
    """Hold the window's days (shared with other loads, exclusive of the archive) until the
    commit, so what is checked here still holds when the rows are replaced: the window was
    never loaded into a day now archived, and its partitions are all there."""
    first_day, last_day = window_days(start, end)
    lock_days(cur, first_day, last_day, shared=True)
    cur.execute(ARCHIVED_RELOAD, {"start": start, "end": end})
    archived = cur.fetchone()
    if archived:
        raise DataError(
            f"this window was loaded before and its day is archived "
            f"(s3://{bucket.name}/{archived[0]}); loading it again would hold its rows twice",
            "restore the day first (make restore FROM=... TO=...), then rerun the load",
        )
    missing = missing_partitions(cur, first_day, last_day)
    if missing:
        raise PartitionDropped(
            f"partition {missing[0]} was dropped while the load ran (an archive emptied it)",
            "nothing was committed; rerun the load",
        )


def refuse_other_windows(cur: Any, start: datetime, end: datetime) -> None:
    """Refuse a retired window, and one that overlaps another loaded window: reconcile would
    count the records of both (`adpipe.grid`). Read under the day's lock, as `guard` is."""
    cur.execute(RETIRED_WINDOW, {"start": start, "end": end})
    if cur.fetchone():
        raise ConfigError(
            f"the window {rfc3339(start)} to {rfc3339(end)} was retired (retired_windows): "
            "reconcile no longer counts it",
            "load the grid's windows of its hours instead",
        )
    cur.execute(OTHER_WINDOWS, {"start": start, "end": end})
    refuse_overlaps(cur.fetchall(), start, end, "loaded")


def first_of_repeats(cur: Any, start: datetime, end: datetime, run_id: int) -> int:
    """Add the first staged record of each impression_id the window does not hold yet;
    returns how many."""
    columns = sql.SQL(", ").join(map(sql.Identifier, table.IMPRESSION_COLUMNS))
    cur.execute(
        sql.SQL(FIRST_OF_REPEATS).format(columns=columns),
        {"run_id": run_id, "start": start, "end": end},
    )
    return cur.rowcount


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = args.settings
    check_window(args.start, args.end, settings.window_minutes)
    bucket = Bucket(settings)
    with session(
        settings.warehouse_dsn,
        "adpipe-load",
        "nothing was committed; rerun when PostgreSQL is back",
        settings,
    ) as conn:
        try:
            return LoadRun(args.start, args.end, settings, bucket, conn).run(
                args.allow_shrink, args.if_changed
            )
        except PartitionDropped as exc:  # nothing was committed: once more, partition first
            log.warning("%s; loading again", exc)
            return LoadRun(args.start, args.end, settings, bucket, conn).run(
                args.allow_shrink, args.if_changed
            )


def arguments(parser: argparse.ArgumentParser) -> None:
    window = window_arguments(parser)
    window.add_argument(
        "--allow-shrink",
        action="store_true",
        help="replace the window's rows even when far fewer remain (LOAD_MAX_SHRINK_SHARE); "
        "an operator's decision, never the DAG's",
    )
    window.add_argument(
        "--if-changed",
        action="store_true",
        help="load only when the window's backup has a version its latest load did not read "
        "(api-load's lookback: a window re-extracted, late records and all)",
    )


RUN = Command(
    "run",
    "load",
    RUN_DOC,
    main,
    arguments,
    env_file="load",
)
