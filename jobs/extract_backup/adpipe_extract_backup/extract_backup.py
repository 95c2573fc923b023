"""How the extract works, where a row enters (what its user reads is RUN_DOC, its --help).

Pages the window from the ad API and backs each page up, byte for byte
as received, gzip-compressed, under
s3://ad-data/backup/impressions/date=YYYY-MM-DD/window=<start>-<end>/, then writes the
window's manifest (pages in order, records, sha256 of each page's bytes) last.

Backups are immutable (layout in adpipe.windows): pages are named by their sha256 and
written only when new; the manifest is a new numbered version only when it differs from the
window's latest one. So a re-run that receives the same bytes writes nothing, one that
receives other bytes (an empty answer, another source) adds a version beside the old one,
and one that fails midway leaves the old version current. Nothing is overwritten or deleted.

Every wait is bounded: urllib3's Retry retries 429, 5xx, lost connections and cut bodies
with backoff and jitter, obeying Retry-After up to EXTRACT_RETRY_AFTER_MAX_SECONDS; a window
may have at most EXTRACT_MAX_PAGES pages of at most EXTRACT_MAX_PAGE_BYTES each, and a cursor
the API already sent fails the window. A page is compressed and put in a thread while the
next is fetched: at most IN_FLIGHT + 1 pages are in memory.

A response whose headers do not match its body is the transport's fault, not the data's, and
a later try may get it right: a body that does not decode as its Content-Encoding says (or
in a coding urllib3 does not decode), one shorter than its Content-Length, one whose
Content-Type is not JSON is retried like a cut body and, when the tries run out, fails with
exit 4. A body longer than its Content-Length is read as far as the header says (HTTP's
rule): what that holds is judged as a page, and a page that is not JSON in its structure
(adpipe.pages) fails with exit 3 before anything is backed up: the API's data breaks the
contract, and a re-extract replaces it. Every such failure names the API and the window.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import urllib3
from adpipe import backups, pages
from adpipe.errors import DataError, UpstreamError
from adpipe.job import Command, check_window, window_arguments
from adpipe.settings import Settings, shown_url
from adpipe.storage import Bucket
from adpipe.windows import backup_prefix, manifest_key, page_key, rfc3339
from urllib3.exceptions import DecodeError, InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

log = logging.getLogger("adpipe.extract_backup")

RUN_DOC = """extract_backup: Back up every page of a window's impressions from the ad API to S3.

Asks the ad API (AD_API_URL) for the window's impressions, page by page, and keeps each page
in the bucket exactly as the API sent it (gzip-compressed), under
backup/impressions/date=YYYY-MM-DD/window=<start>-<end>/. The window's manifest (its pages in
order, their records and each page's sha256) is written last: a backup is complete once its
manifest is there, and the load reads nothing else. The window (--start inclusive, --end
exclusive) starts and ends on the WINDOW_MINUTES grid, lies inside one UTC day and has
ended; any other is refused (exit 2) before the API is asked.

Safe to run again: a backup is never overwritten or deleted. A rerun that receives the same
bytes writes nothing; one that receives other bytes writes a new backup version beside the
old one, and the load then reads the new one. A stored page that no longer holds the bytes
its sha256 names is left as it is, and a good copy is written beside it. A run that fails
writes no manifest, so the window's previous backup, if any, stays current.

Every wait has a bound. A request answered with 429 or a 5xx, a lost connection, or a body
that is cut short or does not match its headers is tried again, with backoff, up to
EXTRACT_MAX_ATTEMPTS times a page, obeying Retry-After up to EXTRACT_RETRY_AFTER_MAX_SECONDS;
then, or when a page takes longer than EXTRACT_PAGE_DEADLINE_SECONDS, the run fails with
exit 4. A page that is not the API's JSON (an object with its impressions list and
next_cursor), one larger than EXTRACT_MAX_PAGE_BYTES, more than EXTRACT_MAX_PAGES pages, or
a cursor the API sent before fails it with exit 3: the API broke its contract. Each failure
names the API and the window.

    docker run --rm --network host --env-file .env.extract_backup adpipe/extract_backup:dev run \\
        --start 2026-11-20T10:00:00Z --end 2026-11-20T11:00:00Z
"""

RETRY_STATUSES = (429, 500, 502, 503, 504)
BACKOFF_FACTOR = 0.5
BACKOFF_MAX = 30.0
IN_FLIGHT = 2  # pages being compressed and put while the next is fetched
MANIFEST_RACE_TRIES = 5  # versions another extract of the window may take before we give up
# application/json, or a JSON-based type (application/<something>+json)
JSON_TYPE = re.compile(r"application/(?:[!#$&^_.+\w-]+\+)?json", re.ASCII | re.IGNORECASE)


class Mislabelled(urllib3.exceptions.HTTPError):
    """A response whose headers say something its body is not (type or encoding)."""


class ApiRetry(Retry):
    """urllib3's retry policy, reading a Retry-After it cannot parse (``inf``, a typo) as no
    hint at all, so the backoff applies instead of a crash."""

    def parse_retry_after(self, retry_after: str) -> float:
        # a number of seconds too long to parse (Python refuses integers of 4,300+ digits)
        # asks for the longest wait there is: the cap
        if re.fullmatch(r"\s*[0-9]{10,}\s*", retry_after):
            return float(self.retry_after_max)
        try:
            return super().parse_retry_after(retry_after)
        except (InvalidHeader, ValueError, OverflowError):
            return 0.0


@dataclass(frozen=True)
class ApiLimits:
    """What bounds the client's waits and reads (the EXTRACT_* settings: `of`)."""

    max_attempts: int = 8
    retry_after_max: int = 60
    max_page_bytes: int = 64 << 20
    timeout: float = 30.0
    page_deadline: float = 120.0

    @classmethod
    def of(cls, settings: Settings) -> ApiLimits:
        return cls(
            max_attempts=settings.max_attempts,
            retry_after_max=settings.retry_after_max,
            max_page_bytes=settings.max_page_bytes,
            page_deadline=settings.page_deadline,
        )


class ApiClient:
    """A client of ``GET /v1/impressions`` whose every wait has a bound, sending the API's
    credential as ``auth`` says (AD_API_AUTH: none, bearer, header:<Name>). Whatever it
    records or reports names the API by `shown`: no userinfo, no credential in a query."""

    def __init__(
        self,
        base_url: str,
        page_size: int,
        limits: ApiLimits = ApiLimits(),
        credential: tuple[str, str] = ("none", ""),
    ) -> None:
        self.base_url = base_url
        self.shown = shown_url(base_url)
        self.page_deadline = limits.page_deadline
        self.page_size = page_size
        self.max_page_bytes = limits.max_page_bytes
        self.retries = 0
        self._retry = ApiRetry(
            total=limits.max_attempts - 1,
            status_forcelist=RETRY_STATUSES,
            allowed_methods={"GET"},
            backoff_factor=BACKOFF_FACTOR,
            backoff_max=BACKOFF_MAX,
            backoff_jitter=BACKOFF_FACTOR,
            retry_after_max=limits.retry_after_max,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        timeout = urllib3.Timeout(connect=5.0, read=limits.timeout)
        self._http = urllib3.PoolManager(timeout=timeout, headers=auth_headers(*credential))
        self._token = credential[1]

    def where(self, start: datetime, end: datetime) -> str:
        """The API and the window, as a failure names them."""
        return f"ad API {self.shown}, window [{rfc3339(start)}, {rfc3339(end)})"

    def page(self, start: datetime, end: datetime, cursor: str | None, number: int) -> bytes:
        """The raw body of one page, as the API sent it (`read_page` checks its shape)."""
        query: dict[str, str | int] = {
            "start": rfc3339(start),
            "end": rfc3339(end),
            "limit": self.page_size,
        }
        if cursor:
            query["cursor"] = cursor
        url = f"{self.base_url}/v1/impressions?{urlencode(query)}"
        deadline = time.monotonic() + self.page_deadline
        call = _Call(url, number, self.where(start, end), deadline, self._retry)
        try:
            while True:
                body = self._attempt(call)
                if body is not None:
                    return body
        except MaxRetryError as exc:
            raise UpstreamError(
                f"ad API failed page {number} after {len(call.retry.history) + 1} attempts "
                f"({exc.reason}); {call.where}",
                "check the ad API (AD_API_URL) and what stands between it and this job, then rerun",
            ) from None
        finally:
            self.retries += len(call.retry.history)

    def _attempt(self, call: _Call) -> bytes | None:
        """One request of the page (urllib3 retries the statuses and errors it knows): its
        body, or None for one more attempt (``call.retry`` keeps the policy's state).
        urllib3's read timeout bounds each read, not a body sent a byte at a time: a timer
        shuts the response down at the page's deadline, whatever it is waiting for."""
        # no redirect is followed: urllib3 would carry a header credential (X-Api-Key) to
        # whatever host a redirect names, and log the URL it goes to
        response = self._http.request(
            "GET", call.url, retries=call.retry, preload_content=False, redirect=False
        )
        call.retry = response.retries or call.retry
        cut = threading.Timer(max(0.0, call.deadline - time.monotonic()), response.shutdown)
        cut.daemon = True
        cut.start()
        try:
            if response.status in (401, 403):
                # no retry changes a refused credential; what the API said is not repeated
                # (an API may echo what it was sent)
                raise UpstreamError(
                    f"ad API {self.shown} refused the credential (HTTP {response.status}) "
                    f"for page {call.number}; {call.where}",
                    "check the token (through Airflow: the ad_api connection's password and "
                    "its extra's auth; by hand: EXTRACT_AD_API_TOKEN and AD_API_AUTH), then rerun",
                )
            if 300 <= response.status < 400:
                raise UpstreamError(
                    f"ad API {self.shown} answered page {call.number} with a redirect (HTTP "
                    f"{response.status}), which the extract does not follow; {call.where}",
                    "set AD_API_URL (the ad_api connection) to the address the API serves "
                    "from, then rerun",
                )
            if response.status != 200:
                said = response.read(200)
                if self._token:  # an API may echo what it was sent
                    said = said.replace(self._token.encode(), b"***")
                problem = f"HTTP {response.status}: {said!r}"
                raise UpstreamError(
                    f"ad API failed page {call.number} after {len(call.retry.history) + 1} "
                    f"attempts ({problem}); {call.where}",
                    "check the window, the ad API (AD_API_URL), then rerun",
                )
            _check_labels(response)
            body = self._body(response, call.number, call.where)
            self._check_deadline(call.deadline, call.number, call.where)
            return body
        except (
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.TimeoutError,
            DecodeError,
            Mislabelled,
            OSError,
        ) as exc:
            self._check_deadline(call.deadline, call.number, call.where)
            # a body cut short, or not what its headers say: one more attempt under the same
            # policy and budget
            call.retry = call.retry.increment("GET", call.url, error=exc)
            log.warning("page %d: %s; retrying", call.number, exc)
            call.retry.sleep()
            self._check_deadline(call.deadline, call.number, call.where)
            return None
        finally:
            cut.cancel()
            response.release_conn()

    def _check_deadline(self, deadline: float, number: int, where: str) -> None:
        if time.monotonic() >= deadline:
            raise UpstreamError(
                f"ad API did not deliver page {number} within EXTRACT_PAGE_DEADLINE_SECONDS "
                f"({self.page_deadline:.0f} s); nothing of the window was recorded; {where}",
                "check the ad API (AD_API_URL), then rerun; raise the deadline for a slow API",
            )

    def _body(self, response: Any, number: int, where: str) -> bytes:
        chunks, size = [], 0
        for chunk in response.stream(1 << 16):
            size += len(chunk)
            if size > self.max_page_bytes:
                raise DataError(
                    f"page {number} is larger than EXTRACT_MAX_PAGE_BYTES "
                    f"({self.max_page_bytes} bytes); nothing of the window was recorded; "
                    f"{where}",
                    "ask for smaller pages (EXTRACT_PAGE_SIZE) or raise the limit",
                )
            chunks.append(chunk)
        return b"".join(chunks)


def auth_headers(auth: str, token: str) -> dict[str, str]:
    """The headers that carry the API's credential: AD_API_AUTH ``bearer``, ``header:<Name>``
    or ``none``."""
    if auth == "bearer":
        return {"Authorization": f"Bearer {token}"}
    if auth.startswith("header:"):
        return {auth.partition(":")[2]: token}
    return {}


@dataclass
class _Call:
    """One page's request: its URL, its number, the API and window as a failure names them,
    the monotonic time it must be done by, and its retries so far (urllib3's Retry)."""

    url: str
    number: int
    where: str
    deadline: float
    retry: Retry


def _check_labels(response: Any) -> None:
    """`Mislabelled` unless the response says its body is JSON, in no coding or in ones
    urllib3 decodes (it would pass any other through undecoded, for the page check to
    misname)."""
    media = response.headers.get("Content-Type", "").partition(";")[0].strip()
    if not JSON_TYPE.fullmatch(media):
        said = f"as {media!r}" if media else "without a Content-Type"
        raise Mislabelled(f"the body is sent {said}, not JSON")
    codings = response.headers.get("Content-Encoding", "").lower().split(",")
    unknown = [
        c for c in map(str.strip, codings) if c not in ("", "identity", *response.CONTENT_DECODERS)
    ]
    if unknown:
        raise Mislabelled(
            f"the body is sent in a Content-Encoding not decoded here: {unknown[0]!r}"
        )


def read_page(body: bytes, number: int, where: str = "") -> tuple[int, str | None]:
    """(record count, next cursor) of a page body; `DataError` naming the page (and
    ``where``: `ApiClient.where`) otherwise."""
    try:
        return pages.count(body)
    except pages.PageError as exc:
        raise DataError(
            f"page {number} {exc}; nothing of the window was recorded"
            + (f"; {where}" if where else ""),
            "the ad API answered outside its contract; rerun, and report it if it persists",
        ) from None


def _back_up(bucket: Bucket, key: str, body: bytes, digest: str, count: int) -> int:
    """Put one page, gzip-compressed, unless an object has its name (the same bytes: a page
    another run wrote already is kept as it is); the bytes stored, or 0."""
    packed = backups.pack(body)
    new = bucket.put_new(
        key,
        packed,
        "application/json",
        ContentEncoding="gzip",
        Metadata={"sha256": digest, "records": str(count)},
    )
    return len(packed) if new else 0


def _intact(bucket: Bucket, key: str, digest: str) -> bool:
    """Whether the stored page still holds the bytes its name promises."""
    packed = bucket.get(key)
    if packed is None:
        return False
    body = backups.unpack(packed)
    return body is not None and hashlib.sha256(body).hexdigest() == digest


class BackupRun:
    """One backup of a window, as its steps (`run`): fetch each page, put it (in threads,
    while the next one is fetched: zlib and the PUT release the GIL; at most IN_FLIGHT
    wait), then the manifest as a new version unless the latest one says the same. The
    run's context: the window, the API, the bucket, what is stored already, and its counts."""

    def __init__(self, start: datetime, end: datetime, api: ApiClient, bucket: Bucket) -> None:
        self.start, self.end, self.api, self.bucket = start, end, api, bucket
        self.prefix = backup_prefix(start, end)
        self.existing = set(bucket.keys(self.prefix))
        self.pages: list[dict[str, Any]] = []
        self.cursors: set[str] = set()
        self.records = self.raw_bytes = 0
        self.fetching = self.waiting = 0.0
        self.in_flight: list[Future[int]] = []
        self.sizes: list[int] = []  # bytes each new page took in S3; 0 when one was there
        self.ours: set[str] = set()  # pages this run put (not yet readable while in flight)
        self.repaired = 0  # pages whose stored copy was damaged: an intact copy stands in

    def run(self, max_pages: int = 10_000) -> dict[str, Any]:
        """Back up every page of the window, then its manifest; returns the summary."""
        cursor: str | None = None
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="backup") as pool:
            while True:
                number = len(self.pages) + 1
                if number > max_pages:
                    raise DataError(
                        f"the window has more than EXTRACT_MAX_PAGES ({max_pages}) pages; the "
                        "latest complete backup stays current",
                        "ask for larger pages (EXTRACT_PAGE_SIZE) or raise EXTRACT_MAX_PAGES",
                    )
                body, count, cursor = self.fetch(cursor, number)
                self.back_up(pool, body, count)
                if cursor is None:
                    break
            self.settle(0)
        version, new = _record_version(self.bucket, self.prefix, self.existing, self.manifest())
        return self.summary(version, new)

    def fetch(self, cursor: str | None, number: int) -> tuple[bytes, int, str | None]:
        """A page's body, its record count and the next cursor, which must be new."""
        began = time.monotonic()
        where = self.api.where(self.start, self.end)
        body = self.api.page(self.start, self.end, cursor, number)
        count, cursor = read_page(body, number, where)
        self.fetching += time.monotonic() - began
        if cursor is not None:
            if cursor in self.cursors:
                raise DataError(
                    f"page {number} sends a next_cursor the API sent before: it would page "
                    f"forever; the latest complete backup stays current; {where}",
                    "the ad API answered outside its contract; report it",
                )
            self.cursors.add(cursor)
        return body, count, cursor

    def back_up(self, pool: ThreadPoolExecutor, body: bytes, count: int) -> None:
        """Put the page under its content's name unless it is stored already. A page stored
        by an earlier run is checked before it is trusted: a damaged one stays (backups are
        never overwritten) and a repaired copy goes beside it."""
        digest = hashlib.sha256(body).hexdigest()
        key, copy = page_key(self.prefix, digest), 0
        while (
            key in self.existing and key not in self.ours and not _intact(self.bucket, key, digest)
        ):
            log.warning("stored page %s is damaged; the next copy stands for it", key)
            copy += 1
            key = page_key(self.prefix, digest, copy)
        self.repaired += copy > 0
        if key not in self.existing:
            self.settle(IN_FLIGHT - 1)
            self.in_flight.append(pool.submit(_back_up, self.bucket, key, body, digest, count))
            self.existing.add(key)
            self.ours.add(key)
        self.pages.append({"key": key, "records": count, "bytes": len(body), "sha256": digest})
        self.records += count
        self.raw_bytes += len(body)

    def settle(self, room: int) -> None:
        """Wait until at most ``room`` puts are in flight; the first failed one fails the
        window at once."""
        began = time.monotonic()
        while len(self.in_flight) > room:
            wait(self.in_flight, return_when=FIRST_COMPLETED)
            self.sizes.extend(f.result() for f in self.in_flight if f.done())
            self.in_flight = [f for f in self.in_flight if not f.done()]
        self.waiting += time.monotonic() - began

    @property
    def source(self) -> str:
        return self.api.shown + "/v1/impressions"

    def manifest(self) -> bytes:
        return json.dumps(
            {
                "window": {"start": rfc3339(self.start), "end": rfc3339(self.end)},
                "source": self.source,
                "page_size": self.api.page_size,
                "pages": self.pages,
                "records": self.records,
                "bytes": self.raw_bytes,
            },
            indent=1,
        ).encode()

    def summary(self, version: backups.Version, new: bool) -> dict[str, Any]:
        return {
            "window": [rfc3339(self.start), rfc3339(self.end)],
            "pages": len(self.pages),
            "records": self.records,
            "bytes_received": self.raw_bytes,
            "pages_written": sum(1 for n in self.sizes if n),
            "pages_repaired": self.repaired,
            "bytes_stored": sum(self.sizes),
            "api_retries": self.api.retries,
            "source": self.source,
            "backup_version": version.number,
            "backup_version_written": new,
            "manifest": f"s3://{self.bucket.name}/{version.key}",
            # where the time went: fetching and reading pages, waiting for their puts
            "phase_seconds": {
                "fetch_pages": round(self.fetching, 3),
                "wait_for_puts": round(self.waiting, 3),
            },
        }


def _record_version(
    bucket: Bucket, prefix: str, keys: set[str], manifest: bytes
) -> tuple[backups.Version, bool]:
    """The window's version holding ``manifest``: the latest one when it says the same,
    else a new one written after it (If-None-Match, so a concurrent extract of the window
    never overwrites a version: the loser re-reads and tries the next number)."""
    for _ in range(MANIFEST_RACE_TRIES):
        current = backups.latest(bucket, prefix, keys)
        if current is not None and current.body == manifest:
            return current, False
        number = current.number + 1 if current else 1
        key = manifest_key(prefix, number)
        if bucket.put_new(key, manifest, "application/json"):
            return backups.Version(key, number, manifest), True
        keys = set(bucket.keys(prefix))
    raise UpstreamError(
        f"other extracts of the window kept writing versions under s3://{bucket.name}/{prefix}",
        "run one extract of a window at a time, then rerun",
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = args.settings
    check_window(args.start, args.end, settings.window_minutes)
    api = ApiClient(
        settings.ad_api_url,
        settings.page_size,
        ApiLimits.of(settings),
        settings.ad_api_credential,
    )
    run = BackupRun(args.start, args.end, api, Bucket(settings))
    return run.run(settings.max_pages)


RUN = Command(
    "run",
    "extract_backup",
    RUN_DOC,
    main,
    window_arguments,
    env_file="extract_backup",
)
