"""extract_backup: where a row enters. Pages every impression of a window from the ad API and
writes each page, byte for byte as received, gzip-compressed, to
``s3://ad-data/backup/impressions/date=YYYY-MM-DD/window=<start>-<end>/page-NNNNN.json.gz``,
then the window's ``manifest.json`` (pages, records, sha256 of each page's bytes) last.

A re-run writes the same keys, deletes pages a previous run left beyond the new last page,
and removes the old manifest first, so a window is either complete (manifest present) or
visibly not. One page is in memory at a time.

    docker run --rm --network host --env-file .env adpipe/extract_backup:dev \\
        --start 2026-11-20T10:00:00Z --end 2026-11-20T11:00:00Z
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import urllib3
from adpipe.job import DataError, UpstreamError, check_window, run, window_parser
from adpipe.settings import Settings
from adpipe.storage import Bucket
from adpipe.windows import backup_prefix

log = logging.getLogger("adpipe.extract_backup")

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_ATTEMPTS = 8
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0


class ApiClient:
    """A client of ``GET /v1/impressions``: retries with exponential backoff and jitter on
    429, 5xx, connection errors and cut bodies, honouring Retry-After (0 means no hint)."""

    def __init__(self, base_url: str, page_size: int, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self.page_size = page_size
        self.retries = 0
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            retries=False,  # retried below, where cut bodies and Retry-After are seen too
        )

    def page(self, start: datetime, end: datetime, cursor: str | None, number: int) -> bytes:
        """The raw body of one page, as the API sent it (`read_page` checks its shape)."""
        query: dict[str, str | int] = {
            "start": _rfc3339(start),
            "end": _rfc3339(end),
            "limit": self.page_size,
        }
        if cursor:
            query["cursor"] = cursor
        url = f"{self.base_url}/v1/impressions?{urlencode(query)}"
        problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            retry_after = 0.0
            try:
                response = self._http.request("GET", url, preload_content=True)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status == 200:
                    return response.data
                problem = f"HTTP {response.status}: {response.data[:200]!r}"
                if response.status not in RETRY_STATUSES:
                    raise UpstreamError(
                        f"ad API refused page {number} ({problem})",
                        "check the window and AD_API_URL",
                    )
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt == MAX_ATTEMPTS:
                break
            delay = retry_after or min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1))
            delay += random.uniform(0, BACKOFF_BASE)  # noqa: S311 - jitter, not crypto
            self.retries += 1
            log.warning("page %d: %s; retry %d in %.1f s", number, problem, attempt, delay)
            time.sleep(delay)
        raise UpstreamError(
            f"ad API failed page {number} after {MAX_ATTEMPTS} attempts ({problem})",
            "check the ad API (AD_API_URL), then rerun",
        )


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def read_page(body: bytes, number: int) -> tuple[int, str | None]:
    """(record count, next cursor) of a page body; `DataError` naming the page otherwise."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"page {number} is not JSON ({exc}); it starts {body[:80]!r}",
            "the ad API answered outside its contract; rerun, and report it if it persists",
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("impressions"), list):
        raise DataError(
            f"page {number} has no 'impressions' list", "the ad API answered outside its contract"
        )
    cursor = payload.get("next_cursor")
    if cursor is not None and not (isinstance(cursor, str) and cursor):
        raise DataError(f"page {number} has a next_cursor that is not a string or null")
    return len(payload["impressions"]), cursor


def extract(start: datetime, end: datetime, api: ApiClient, bucket: Bucket) -> dict[str, Any]:
    """Back up every page of the window; returns the summary counts."""
    prefix = backup_prefix(start, end)
    manifest_key = prefix + "manifest.json"
    before = set(bucket.keys(prefix))
    if manifest_key in before:
        bucket.delete([manifest_key])  # the window reads as incomplete until the new one lands

    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    records = raw_bytes = stored_bytes = 0
    while True:
        number = len(pages) + 1
        body = api.page(start, end, cursor, number)
        count, cursor = read_page(body, number)
        key = f"{prefix}page-{number:05d}.json.gz"
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        digest = hashlib.sha256(body).hexdigest()
        bucket.put(
            key,
            packed,
            "application/json",
            ContentEncoding="gzip",
            Metadata={"sha256": digest, "records": str(count)},
        )
        pages.append({"key": key, "records": count, "bytes": len(body), "sha256": digest})
        records += count
        raw_bytes += len(body)
        stored_bytes += len(packed)
        if cursor is None:
            break

    stale = sorted(before - {p["key"] for p in pages} - {manifest_key})
    if stale:
        bucket.delete(stale)
    manifest = {
        "window": {"start": _rfc3339(start), "end": _rfc3339(end)},
        "source": api.base_url + "/v1/impressions",
        "page_size": api.page_size,
        "pages": pages,
        "records": records,
        "bytes": raw_bytes,
    }
    bucket.put(manifest_key, json.dumps(manifest, indent=1).encode(), "application/json")
    return {
        "window": [_rfc3339(start), _rfc3339(end)],
        "pages": len(pages),
        "records": records,
        "bytes_received": raw_bytes,
        "bytes_stored": stored_bytes,
        "api_retries": api.retries,
        "stale_pages_deleted": len(stale),
        "manifest": f"s3://{bucket.name}/{manifest_key}",
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    check_window(args.start, args.end)
    settings = Settings()
    api = ApiClient(settings.ad_api_url, settings.page_size)
    bucket = Bucket(settings)
    return extract(args.start, args.end, api, bucket)


if __name__ == "__main__":
    run("extract_backup", window_parser(__doc__.splitlines()[0]), main)
