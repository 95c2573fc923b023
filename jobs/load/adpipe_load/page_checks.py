"""Where a window's records are checked: each backup page in a process of its own, while the
load's own process streams the pages already checked into PostgreSQL.

A page is fetched from S3 in a thread of the load (the GET releases the GIL), then
unpacked, held to its manifest's sha256 and checked record by record (the fast path, then
the rules for what it leaves) in one of `WORKERS` processes, which also sorts its rows by
impression_id and encodes them as binary COPY tuples. So the checks of the next pages run on
other cores while PostgreSQL takes this one's rows, and the load's process only decides,
page by page in the window's order, which rows go straight in (`first_seen`).

At most `IN_FLIGHT` pages are fetched or checked ahead of the one being written: memory
stays a few pages whatever the window.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple

import pyarrow as pa
from adpipe import backups
from adpipe.errors import DataError
from adpipe.pg_copy import binary_tuples
from adpipe.storage import Bucket

from adpipe_load import fast_path
from adpipe_load.impression_rules import Rejected, normalise, parse_page, parse_record

# a process per core the job may use, up to 4: PostgreSQL needs a core for the rows they make
WORKERS = max(1, min(len(os.sched_getaffinity(0)), 4))
IN_FLIGHT = 2 * WORKERS  # pages fetched or checked ahead of the one being written
# the rows first of their id, as ad_impressions stores them
ROW_SCHEMA = pa.schema([*list(fast_path.STAGE_SCHEMA)[1:], ("load_run_id", pa.int64())])


class CheckedPage(NamedTuple):
    """One page, checked. ``rows``: its valid records (`fast_path.STAGE_SCHEMA`, ordinals
    counted from 0 in the page), sorted by impression_id, the earlier of a repeated id first;
    ``tuples``: those rows, in that order, as binary COPY tuples of `ROW_SCHEMA`;
    ``rejects``: (position, reason, bytes as sent) of each record rejected."""

    number: int
    received: int
    rows: pa.RecordBatch
    tuples: bytes
    rejects: list[tuple[int, str, bytes]]
    seconds: float


class Window(NamedTuple):
    """What a worker needs to know of the run: its window and id, what repairs a page."""

    start: datetime
    end: datetime
    run_id: int
    hint: str


def check_page(number: int, key: str, sha256: str, packed: bytes, run: Window) -> CheckedPage:
    """A page's bytes as stored, checked (in a worker process)."""
    began = time.monotonic()
    body = backups.unpack(packed)
    if body is None or hashlib.sha256(body).hexdigest() != sha256:
        raise DataError(
            f"backup page {key} is damaged: it "
            + ("does not decompress" if body is None else "does not match the manifest's sha256"),
            run.hint,
        )
    rows, received, rejects = page_rows(number, body, run)
    # in id order PostgreSQL inserts a page's rows into the primary key's B-tree along its
    # leaves: 15% less of its CPU than in the API's order
    rows = rows.sort_by([("impression_id", "ascending"), ("ordinal", "ascending")])
    tuples = row_tuples(rows, run.run_id)
    return CheckedPage(number, received, rows, tuples, rejects, time.monotonic() - began)


def row_tuples(rows: pa.RecordBatch, run_id: int) -> bytes:
    """Checked rows (`fast_path.STAGE_SCHEMA`) as ad_impressions stores them, the run's id
    added and the ordinal left out, as binary COPY tuples."""
    run = pa.repeat(pa.scalar(run_id, pa.int64()), rows.num_rows)
    columns = [*rows.columns[1:], run]
    return binary_tuples(ROW_SCHEMA, pa.RecordBatch.from_arrays(columns, schema=ROW_SCHEMA))


def page_rows(
    number: int, body: bytes, run: Window
) -> tuple[pa.RecordBatch, int, list[tuple[int, str, bytes]]]:
    """A page's valid records as rows, how many it holds, and the rejected ones: the fast
    path takes the records it can accept column-wise; the rules decide the rest."""
    batch = fast_path.page_batch(body, run.start, run.end, 0)
    if batch is None:
        try:
            raws = parse_page(body)
        except Rejected as exc:
            raise DataError(
                f"backup page {number} breaks the contract: {exc}",
                "rerun extract_backup for this window",
            ) from None
        left: Iterable[tuple[int, Any]] = enumerate(raws)
        received = len(raws)
    else:
        received = batch.records
        left = ((position, batch.raws[position]) for position in batch.left)
    rows, ordinals, rejects = [], [], []
    for position, raw in left:  # each record on its own: a row or a reason
        try:
            rows.append(normalise(parse_record(raw), run.start, run.end))
        except Rejected as exc:
            rejects.append((position, str(exc), bytes(raw)))
            continue
        ordinals.append(position)
    ruled = fast_path.rules_rows(rows, ordinals)
    if batch is None:
        return ruled, received, rejects
    if not rows:
        return batch.rows, received, rejects
    return pa.concat_batches([batch.rows, ruled]), received, rejects


class PageChecks:
    """The window's pages (its manifest's), checked, in order: fetched by threads, checked by
    worker processes, at most `IN_FLIGHT` ahead. A context manager: the workers stop with
    it, and pages not yet checked are dropped."""

    def __init__(self, bucket: Bucket, manifest: dict, run: Window) -> None:
        self.bucket, self.manifest, self.run = bucket, manifest, run
        # spawned, not forked: the load's process holds a PostgreSQL session
        self.workers = ProcessPoolExecutor(WORKERS, multiprocessing.get_context("spawn"))
        self.fetchers = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="page")

    def __enter__(self) -> PageChecks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fetchers.shutdown(cancel_futures=True)
        self.workers.shutdown(cancel_futures=True)

    def __iter__(self) -> Iterator[CheckedPage]:
        ahead: deque[Future[CheckedPage]] = deque()
        for number, page in enumerate(self.manifest["pages"], start=1):
            ahead.append(self.fetchers.submit(self._checked, number, page))
            if len(ahead) > IN_FLIGHT:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()

    def _checked(self, number: int, page: dict) -> CheckedPage:
        key = page["key"]
        packed = self.bucket.get(key)
        where = f"s3://{self.bucket.name}/{key}"
        if packed is None:
            raise DataError(f"backup page {where} is missing", self.run.hint)
        return self.workers.submit(
            check_page, number, where, page["sha256"], packed, self.run
        ).result()
