"""health: reconcile's day results and the pipeline's metrics, served over HTTP.

The Data health page (plugins/data_health) asks it for a range of days; Prometheus scrapes its
metrics. Every number of a day is reconcile's own: `/days` runs `Reconciliation`, the class
`reconcile --json` prints, over the days asked for, in one snapshot.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from adpipe.errors import ConfigError, JobError
from adpipe.job import Command, check_day_range, days_or_default
from adpipe.settings import Settings
from adpipe.storage import Bucket
from adpipe.warehouse import session
from adpipe.windows import ARCHIVE_PREFIX, BACKUP_PREFIX, QUARANTINE_PREFIX, SET_ASIDE_PREFIX
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from adpipe_archive.reconcile import SPAN, Reconciliation

log = logging.getLogger("adpipe.health")

HEALTH_DOC = """health: Serve reconcile's day results and the pipeline's metrics over HTTP.

Listens on 127.0.0.1:HEALTH_PORT until stopped, for the Data health page in Airflow's UI and
for Prometheus. Every request but GET /-/healthy must carry the header
"Authorization: Bearer <HEALTH_TOKEN>"; without it the answer is 401. It only reads: the
warehouse as the read-only role (WAREHOUSE_DSN), the bucket as reconcile's identity.

    GET /days?from=YYYY-MM-DD&to=YYYY-MM-DD   reconcile of those days (each day as
        reconcile --json prints it), each hour's mark (loaded, late, missing, accepted),
        the last loaded hour and the storage used; default: the 45 days up to yesterday
    GET /capacity                             the bucket's bytes under each prefix (listed
        now), the bytes a day written over the last 7 days, the disk left where the S3
        data lives and the days left at that rate (make status shows them)
    GET /metrics                              the metrics, in Prometheus's text format
    GET /-/healthy                            "ok": it runs (no data)

The metrics (docs/operations.md lists them) are read at each scrape, but the bucket's bytes
(listed at most every 5 minutes) and the reconcile verdict (reconcile of the 45 days up to
yesterday, as the nightly run checks them, every hour).

    docker run --rm --network host --env-file .env.health adpipe/archive:dev health
"""

RECENT_RUNS = 200  # load runs in /metrics: two days of hourly windows, reloads included
LIST_EVERY = 300  # seconds between listings of the bucket: a listing reads every key's name
RECONCILE_EVERY = 3600  # seconds between reconciles for the verdict metric
# the first one waits this long: a stack that is starting has better uses for its cores
FIRST_RECONCILE_AFTER = 300
PREFIXES = (BACKUP_PREFIX, QUARANTINE_PREFIX, ARCHIVE_PREFIX, SET_ASIDE_PREFIX)
GROWTH_DAYS = 7  # days left are estimated at the rate the bucket grew over the last week
# where compose mounts the S3 server's data volume, read-only: its free space is all that is
# read there (the disk PostgreSQL's volume shares, as Docker keeps both)
S3_DATA = Path("/s3data")

# the latest window loaded, when the latest load committed, and the archive's latest change
# (an object archived or restored): what the bucket's listing is kept for (`stored_bytes`)
LAST_LOAD = """
SELECT max(window_end), max(finished_at),
       (SELECT max(greatest(archived_at, restored_at)) FROM archive_manifest)
FROM load_runs
"""
RECENT_LOADS = """
SELECT load_run_id, window_start, received, rows_written, rejected, duplicates
FROM load_runs ORDER BY load_run_id DESC LIMIT %s
"""
# the table's bytes: every day partition of ad_impressions, indexes and TOAST included
TABLE_BYTES = """
SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
FROM pg_partition_tree('ad_impressions'::regclass)
"""


@dataclass(frozen=True)
class Usage:
    """One listing of the bucket's prefixes.

    Attributes:
        bytes: the bytes under each prefix (its name without the slash).
        objects: the objects under each prefix.
        written_last_week: the bytes of the objects written in the last GROWTH_DAYS days
            that are still there: an object deleted since counts nowhere, so the rate it
            gives is what the disk must hold while nothing is deleted.
        at: when the listing began.
    """

    bytes: dict[str, int]
    objects: dict[str, int]
    written_last_week: int
    at: datetime

    @property
    def bytes_per_day(self) -> float:
        return self.written_last_week / GROWTH_DAYS


def usage(bucket: Bucket, prefixes: Sequence[str], now: datetime) -> Usage:
    """List ``prefixes`` of ``bucket`` once: bytes and objects under each, and what of them
    was written in the GROWTH_DAYS days before ``now`` (S3's LastModified)."""
    since = now - timedelta(days=GROWTH_DAYS)
    found = {prefix.rstrip("/"): 0 for prefix in prefixes}
    objects = dict.fromkeys(found, 0)
    written = 0
    for prefix in prefixes:
        name = prefix.rstrip("/")
        for size, modified in bucket.sizes_and_times(prefix):
            found[name] += size
            objects[name] += 1
            if modified >= since:
                written += size
    return Usage(found, objects, written, now)


def disk_free() -> int | None:
    """Bytes free where the S3 data lives, as a user who is not root may fill them; None
    when the volume is not mounted at S3_DATA (the container's own disk would be a guess)."""
    if not S3_DATA.is_mount():
        return None
    stat = os.statvfs(S3_DATA)
    return stat.f_bavail * stat.f_frsize


def days_left(free: int | None, bytes_per_day: float) -> float | None:
    """Days until ``free`` bytes are written at ``bytes_per_day``; None when either is unknown
    or nothing was written (no growth: no end in sight)."""
    if free is None or bytes_per_day <= 0:
        return None
    return free / bytes_per_day


class Health:
    """What the server reads, for one request at a time: a warehouse session each (closed
    after it, so the reader role's connection limit is not held), the bucket, and the last
    listing and verdict it keeps."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = Bucket(settings)
        self.deadline = timedelta(minutes=settings.load_deadline_minutes)
        self.lock = threading.Lock()
        # the last listing: when (monotonic), the latest load it saw committed, its usage
        self.listed: tuple[float, Any, Usage | None] = (0.0, None, None)
        self.verdict: dict[str, Any] = {}

    def reconcile(self, first: date, last: date) -> dict[str, Any]:
        """Reconcile's days, each hour's mark, from one snapshot; and what else the page shows."""
        check_day_range(first, last)
        with self._session() as conn:
            reconciliation = Reconciliation(
                conn, self.bucket, first, last, self.settings.expect_from
            )
            reconciliation.minutes = self.settings.window_minutes
            reconciliation.settle = self.settings.settle
            days = reconciliation.run()
            with conn, conn.cursor() as cur:
                cur.execute(LAST_LOAD)
                last_end, last_finished, archive_changed = cur.fetchone()
                cur.execute(TABLE_BYTES)
                (table_bytes,) = cur.fetchone()
        return {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "now": reconciliation.now.isoformat(),
            "days": days,
            "hours": reconciliation.hour_marks(self.deadline),
            "last_loaded_hour_end": last_end.isoformat() if last_end else None,
            "storage_bytes": {
                "table": table_bytes,
                **self.stored_bytes((last_finished, archive_changed)),
            },
            "verdict": self.verdict,
        }

    def stored_bytes(self, last_load: Any) -> dict[str, int]:
        """Bytes under each prefix of the bucket (`listing`)."""
        return self.listing(last_load).bytes

    def listing(self, last_load: Any, fresh: bool = False) -> Usage:
        """The bucket's usage, listed at most every LIST_EVERY seconds, and again once a load
        or an archive committed after the last listing (``last_load``: when the latest of
        each did), so what they stored is counted at the next scrape; ``fresh``: now."""
        with self.lock:
            when, seen, found = self.listed
            if found and not fresh and seen == last_load and time.monotonic() - when < LIST_EVERY:
                return found
        found = usage(self.bucket, PREFIXES, datetime.now(UTC))
        with self.lock:
            self.listed = (time.monotonic(), last_load, found)
        return found

    def capacity(self) -> dict[str, Any]:
        """How full the S3 store is and how long its disk lasts, from a listing made now."""
        with self._session() as conn, conn, conn.cursor() as cur:
            cur.execute(LAST_LOAD)
            _, last_finished, archive_changed = cur.fetchone()
        found = self.listing((last_finished, archive_changed), fresh=True)
        free = disk_free()
        return {
            "bucket": self.bucket.name,
            "listed_at": found.at.isoformat(),
            "prefixes": {
                name: {"bytes": size, "objects": found.objects[name]}
                for name, size in found.bytes.items()
            },
            "growth_days": GROWTH_DAYS,
            "written_last_week_bytes": found.written_last_week,
            "bytes_per_day": found.bytes_per_day,
            "disk_free_bytes": free,
            "days_left": days_left(free, found.bytes_per_day),
        }

    def check_nightly_span(self) -> None:
        """Reconcile the span the nightly run checks; keep its verdict for /metrics."""
        span = days_or_default(argparse.Namespace(first=None, last=None), SPAN)
        result = self.reconcile(*span)
        off = [d["day"] for d in result["days"] if not d["balanced"]]
        self.verdict = {
            "balanced": not off,
            "days": len(result["days"]),
            "days_off": off,
            "from": result["from"],
            "to": result["to"],
            "at": time.time(),
        }

    def metrics(self) -> Iterator[GaugeMetricFamily]:
        """The metrics, as prometheus_client's collector interface asks for them."""
        with self._session() as conn, conn, conn.cursor() as cur:
            cur.execute(LAST_LOAD)
            last_end, last_finished, archive_changed = cur.fetchone()
            cur.execute(RECENT_LOADS, (RECENT_RUNS,))
            runs = cur.fetchall()
            cur.execute(TABLE_BYTES)
            (table_bytes,) = cur.fetchone()
        rows = GaugeMetricFamily(
            "adpipe_load_run_rows",
            "Records of one load run, by what became of them (the run's SUMMARY counts)",
            labels=["load_run_id", "window_start", "outcome"],
        )
        for run_id, start, received, written, rejected, duplicates in runs:
            window = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for outcome, count in (
                ("received", received),
                ("written", written),
                ("rejected", rejected),
                ("duplicates", duplicates),
            ):
                rows.add_metric([str(run_id), window, outcome], count)
        yield rows
        if last_end is not None:
            yield _gauge(
                "adpipe_last_loaded_hour_end_timestamp_seconds",
                "End of the latest window any load has committed (Unix time)",
                last_end.timestamp(),
            )
            yield _gauge(
                "adpipe_last_loaded_hour_lag_seconds",
                "Seconds from the end of the latest loaded window to now",
                time.time() - last_end.timestamp(),
            )
            yield _gauge(
                "adpipe_last_load_finished_timestamp_seconds",
                "When the latest load committed (Unix time): the alarm's input",
                last_finished.timestamp(),
            )
        stored = GaugeMetricFamily(
            "adpipe_stored_bytes",
            "Bytes stored: the table in PostgreSQL, each prefix of the bucket",
            labels=["store"],
        )
        stored.add_metric(["table"], table_bytes)
        found = self.listing((last_finished, archive_changed))
        for prefix, size in found.bytes.items():
            stored.add_metric([prefix], size)
        yield stored
        yield _gauge(
            "adpipe_s3_written_bytes_per_day",
            f"Bytes a day written to the bucket over the last {GROWTH_DAYS} days, still there",
            found.bytes_per_day,
        )
        free = disk_free()
        if free is not None:
            yield _gauge(
                "adpipe_s3_disk_free_bytes", "Bytes free on the disk the S3 data lives on", free
            )
        left = days_left(free, found.bytes_per_day)
        if left is not None:
            yield _gauge(
                "adpipe_s3_days_left",
                "Days until the S3 data's disk is full at the last week's rate: the alarm's input",
                left,
            )
        if self.verdict:
            yield _gauge(
                "adpipe_reconcile_balanced",
                "1 when every day of the latest reconcile balanced, else 0",
                1 if self.verdict["balanced"] else 0,
            )
            yield _gauge(
                "adpipe_reconcile_days_off",
                "Days the latest reconcile found out of balance",
                len(self.verdict["days_off"]),
            )
            yield _gauge(
                "adpipe_reconcile_timestamp_seconds",
                "When the latest reconcile ended (Unix time)",
                self.verdict["at"],
            )

    def collect(self) -> Iterator[GaugeMetricFamily]:  # prometheus_client's collector hook
        yield from self.metrics()

    def _session(self) -> Any:
        conn_ctx = session(
            self.settings.warehouse_dsn, "adpipe-health", "health only reads; retry", self.settings
        )
        return _Snapshot(conn_ctx)


class _Snapshot:
    """A warehouse session set to one read-only snapshot (REPEATABLE READ), as reconcile's."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def __enter__(self) -> Any:
        conn = self.ctx.__enter__()
        conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        return conn

    def __exit__(self, *exc: Any) -> Any:
        return self.ctx.__exit__(*exc)


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_, value=value)


def day_range(query: dict[str, list[str]]) -> tuple[date, date]:
    """``from`` and ``to`` of a query string, defaulted as reconcile's are."""
    try:
        last = date.fromisoformat(query["to"][0]) if "to" in query else None
        first = date.fromisoformat(query["from"][0]) if "from" in query else None
    except ValueError as exc:
        raise ConfigError(f"from and to are days, YYYY-MM-DD: {exc}") from None
    return days_or_default(argparse.Namespace(first=first, last=last), SPAN)


def handler(health: Health, registry: CollectorRegistry, token: str) -> type:
    """The request handler: the token checked in constant time, then the route."""
    expected = f"Bearer {token}".encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "adpipe-health"
        timeout = 30  # a client that sends nothing for this long is dropped

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/-/healthy":
                return self.answer(HTTPStatus.OK, b"ok\n", "text/plain")
            given = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return self.answer(
                    HTTPStatus.UNAUTHORIZED,
                    b"a bearer token is required: HEALTH_TOKEN in .env\n",
                    "text/plain",
                )
            try:
                if url.path == "/metrics":
                    body = generate_latest(registry)
                    return self.answer(HTTPStatus.OK, body, "text/plain; version=0.0.4")
                if url.path == "/capacity":
                    found = health.capacity()
                    return self.answer(
                        HTTPStatus.OK, json.dumps(found).encode(), "application/json"
                    )
                if url.path == "/days":
                    found = health.reconcile(*day_range(parse_qs(url.query)))
                    return self.answer(
                        HTTPStatus.OK, json.dumps(found).encode(), "application/json"
                    )
            except ConfigError as exc:
                return self.answer(HTTPStatus.BAD_REQUEST, f"{exc}\n".encode(), "text/plain")
            except JobError as exc:
                text = f"{exc}" + (f" -- {exc.hint}" if exc.hint else "")
                return self.answer(HTTPStatus.BAD_GATEWAY, f"{text}\n".encode(), "text/plain")
            return self.answer(
                HTTPStatus.NOT_FOUND, b"GET /days, /capacity or /metrics\n", "text/plain"
            )

        def answer(self, status: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return Handler


def keep_verdict(health: Health, stop: threading.Event) -> None:
    """Reconcile the nightly span every RECONCILE_EVERY seconds, for the verdict metric."""
    stop.wait(FIRST_RECONCILE_AFTER)
    while not stop.is_set():
        try:
            health.check_nightly_span()
        except JobError as exc:
            log.warning("reconcile for the verdict metric failed: %s", exc)
        stop.wait(RECONCILE_EVERY)


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = args.settings
    health = Health(settings)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(health)  # type: ignore[arg-type]
    server = ThreadingHTTPServer(
        ("127.0.0.1", settings.health_port), handler(health, registry, settings.health_token)
    )
    stop = threading.Event()
    threading.Thread(target=keep_verdict, args=(health, stop), daemon=True).start()
    log.info("health: serving on 127.0.0.1:%s", settings.health_port)
    try:
        server.serve_forever()
    finally:
        stop.set()
        server.server_close()
    return {}


HEALTH = Command("health", "health", HEALTH_DOC, main, env_file="health")
