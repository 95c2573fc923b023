"""Proof that an archive object is what it should be, read from its bytes: the archive's
proof of what it stored, restore's of what it brings back, adopt's of what a manifest row
would say, reconcile's count. Every check names the object and, where a person must act, the
command that resolves it."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from adpipe.errors import DataError, UpstreamError, backfill
from adpipe.storage import Bucket

from adpipe_archive.parquet_files import SCHEMA, batches, ids_sha256, sha256_file


def download(bucket: Bucket, key: str, path: Path) -> bool:
    """The object's bytes into ``path``; False when it is gone."""
    with path.open("wb") as handle:
        return bool(bucket.download(key, handle))


def check_rows(path: Path, expected: dict[str, Any], what: str) -> None:
    """`DataError` unless the file holds the rows counted and digested when it was written."""
    if ids_sha256(path) != (expected["rows"], expected["ids_sha256"]):
        raise DataError(f"{what} holds other rows than the day's", "nothing was deleted; rerun")


def stored(
    bucket: Bucket, key: str, expected_sha: str, expected: dict[str, Any], workdir: Path
) -> None:
    """Prove the object holds the day's file: the SHA-256 S3 checked on receipt and keeps
    (a HEAD); where it keeps none (an object put without one), read it back and check its
    bytes, row count and ids on this side."""
    kept = bucket.stored_sha256(key)
    if kept == expected_sha:
        return
    if kept is not None:
        raise DataError(
            f"archive object s3://{bucket.name}/{key} holds other bytes (sha256 {kept})",
            "nothing was deleted; rerun",
        )
    copy = workdir / "readback.parquet"
    if not download(bucket, key, copy):
        raise UpstreamError(f"archive object s3://{bucket.name}/{key} vanished after PUT")
    if sha256_file(copy) != expected_sha:
        raise DataError(
            f"archive object s3://{bucket.name}/{key} reads back different bytes",
            "nothing was deleted; rerun",
        )
    check_rows(copy, expected, f"archive object s3://{bucket.name}/{key}")
    copy.unlink()


def as_archived(
    path: Path, key: str, recorded: tuple[int, str, str], bucket: str, day: date
) -> None:
    """`DataError` unless the downloaded object is the one archived: the bytes its manifest
    row's SHA-256 names, and (so a forged file of the right size cannot pass) its rows'
    count and ids digest."""
    rows, sha256, ids = recorded
    found = sha256_file(path)
    problem = ""
    if found != sha256.strip():
        problem = f"its SHA-256 is {found}, archive_manifest records {sha256.strip()}"
    else:
        count, digest = ids_sha256(path)
        if (count, digest) != (rows, ids.strip()):
            problem = f"it holds {count} rows with other ids than the {rows} archived"
    if problem:
        raise DataError(
            f"archive object s3://{bucket}/{key} is not the object that was archived ({problem}); "
            "nothing was restored or deleted",
            f"put the original back from a copy of the bucket, or set this one aside and reload "
            f"day {day} from its backups: {set_aside_and_reload(key, day)}",
        )


def facts(path: Path, key: str, day: date) -> dict[str, Any]:
    """What a manifest row says of an archive file, read from the file; `DataError` when it
    is not an archive file of ``day``."""
    refuse = f"archive set-aside --key {key}"
    low = high = None
    shown_type = SCHEMA.field("shown_at").type
    try:
        rows, ids = ids_sha256(path)
        for batch in batches(path, ["shown_at"]):
            shown = batch.column(0)
            if shown.type != shown_type:
                raise KeyError("shown_at")
            first, last = pc.min_max(shown).values()
            low = first.as_py() if low is None else min(low, first.as_py())
            high = last.as_py() if high is None else max(high, last.as_py())
    except (pa.ArrowException, OSError, KeyError, IndexError):
        raise DataError(f"{key} is not an archive Parquet file; not adopted", refuse) from None
    if rows == 0 or low is None or high is None:
        raise DataError(f"{key} is not an archive file of impressions; not adopted", refuse)
    if low.date() != day or high.date() != day:
        raise DataError(f"{key} holds rows shown outside {day}; not adopted", refuse)
    return {"rows": rows, "ids_sha256": ids, "min": low, "max": high}


def rows_and_sha256(bucket: Bucket, key: str, workdir: Path) -> tuple[int, str] | None:
    """(rows, SHA-256) of an archive object, or None when it is gone."""
    path = workdir / "archive.parquet"
    if not download(bucket, key, path):
        return None
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError):
        rows = 0  # not Parquet: its SHA-256 differs from the one archived, which says so
    return rows, sha256_file(path)


def set_aside_and_reload(key: str, day: date) -> str:
    """The commands that replace a damaged or lost archive object of ``day`` by its rows
    loaded anew from the backups."""
    return f"archive set-aside --key {key}, then {reload_day(day)}"


def reload_day(day: date) -> str:
    """The command that loads ``day`` anew from its backups, through Airflow."""
    return backfill(f"{day}T00:00", f"{day}T23:00")
