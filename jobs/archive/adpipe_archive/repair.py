"""The archive's two repairs: what resolves an archive object the archive refuses to touch.
Each is recorded in archive_actions."""

from __future__ import annotations

import argparse
import base64
import io
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from adpipe.errors import ConfigError, DataError, UpstreamError
from adpipe.job import Command
from adpipe.settings import S3, WAREHOUSE
from adpipe.storage import Bucket
from adpipe.windows import (
    ARCHIVE_TABLE_PREFIX,
    SET_ASIDE_PREFIX,
    archive_day_prefix,
    archive_key_day,
    set_aside_key,
)

from adpipe_archive import verify
from adpipe_archive.archive import archive_session
from adpipe_archive.parquet_files import batches, sha256_file, version_of
from adpipe_archive.verify import download

ADOPT_DOC = """adopt: Re-create the lost archive_manifest rows of a day's archive objects.

When archive_manifest has lost rows (a warehouse restored from an older backup), the archive
leaves the day's objects in place and names this command. adopt --date D re-creates the
rows of day D's objects that no row lists, from the objects themselves (rows, SHA-256, ids
digest, first and last shown_at), and records each adoption in archive_actions.

It adopts an object only when it is a readable archive file of that day and none of its ids
is in ad_impressions or in another archived object of the day, so no row is counted twice.
Each object is adopted in a transaction of its own; one it refuses stops the run (exit 3)
with nothing of that object recorded, and the FAILED line names the set-aside command that
resolves it. Running it again adopts only the objects still unlisted.

    docker run --rm --network host --env-file .env.archive adpipe/archive:dev adopt \\
        --date 2026-10-18
"""

SET_ASIDE_DOC = """set-aside: Move one archive object out of archive/, keeping a verified copy.

For an archive object the archive cannot vouch for (one adopt refuses, or whose bytes are
not those archived): copies it to set-aside/<key> in the bucket, proves the copy holds the
same bytes (S3 checks its SHA-256 on receipt, and the checksum it keeps, or a read back,
proves it), records the move in archive_actions, and only then deletes the original, so its
bytes are never lost.

An object archive_manifest listed is marked set aside there (restored_at, set_aside_key):
its day's rows are then in neither the table nor the archive until the day is reloaded from
its backups, with the command the SUMMARY line's reload names (make backfill DAG=api-load
... REPROCESS=completed). Refused: a --key that is not an object under
archive/ad_impressions/ (exit 2); a copy that does not hold the original's bytes (exit 4,
the original left in place). A run that failed before the delete can run again and
finishes; after one that completed, the key is gone and a rerun fails naming it (exit 3).

    docker run --rm --network host --env-file .env.archive adpipe/archive:dev set-aside \\
        --key archive/ad_impressions/shown_date=2026-10-18/part-0123.parquet
"""

LIVE_KEYS = """
SELECT object_key FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL
"""
INSERT_ADOPTED = """
INSERT INTO archive_manifest (object_key, shown_date, rows, bytes, sha256, ids_sha256,
    min_shown_at, max_shown_at, run_date, schema_version)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, current_date, %s)
"""
RECORD = """
INSERT INTO archive_actions (action, object_key, moved_to, shown_date, rows, sha256, listed)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
IDS_STAGE = "CREATE TEMPORARY TABLE {name} (impression_id uuid NOT NULL) ON COMMIT DROP"
IDS_IN_TABLE = "SELECT count(*) FROM ad_impressions a JOIN candidate c USING (impression_id)"
IDS_IN_ARCHIVE = "SELECT count(*) FROM candidate c JOIN listed l USING (impression_id)"


def _download(bucket: Bucket, key: str, path: Path) -> None:
    if not download(bucket, key, path):
        raise DataError(f"s3://{bucket.name}/{key} is gone", "list the prefix and rerun")


def _stage_ids(cur: Any, table: str, path: Path) -> None:
    """The file's impression ids, into the temporary table ``table``."""
    cur.execute(IDS_STAGE.format(name=table))
    for batch in batches(path, ["impression_id"]):
        text = "".join(f"{raw.hex()}\n" for raw in batch.column(0).storage.to_pylist())
        cur.copy_expert(f"COPY {table} FROM STDIN", io.BytesIO(text.encode()))


def adopt(conn: Any, bucket: Bucket, day: date) -> dict[str, Any]:
    """List each archive object of the day no manifest row lists, once it is proven whole
    and none of its ids is in the table or in the day's listed objects."""
    with conn, conn.cursor() as cur:
        cur.execute(LIVE_KEYS, (day,))
        listed = {row[0] for row in cur.fetchall()}
    orphans = sorted(k for k in bucket.keys(archive_day_prefix(day)) if k not in listed)
    with tempfile.TemporaryDirectory(prefix="adpipe-adopt-") as tmp:
        path = Path(tmp) / "object.parquet"
        for key in orphans:
            _download(bucket, key, path)
            facts = verify.facts(path, key, day)  # whole, and of the day, before anything
            with conn, conn.cursor() as cur:
                _refuse_counted_twice(cur, bucket, (key, facts["rows"]), listed, Path(tmp))
                _list(cur, key, day, facts, path)
            listed.add(key)
    return {"date": day.isoformat(), "objects_adopted": len(orphans), "keys": orphans}


def _refuse_counted_twice(
    cur: Any, bucket: Bucket, candidate: tuple[str, int], listed: set[str], tmp: Path
) -> None:
    """`DataError` when any id of the object (``candidate``: its key and rows, downloaded as
    object.parquet in ``tmp``) is in the table or in one of the ``listed`` objects."""
    key, rows = candidate
    _stage_ids(cur, "candidate", tmp / "object.parquet")
    cur.execute(IDS_IN_TABLE)
    in_table = cur.fetchone()[0]
    cur.execute(IDS_STAGE.format(name="listed"))
    for listed_key in sorted(listed):
        _download(bucket, listed_key, tmp / "listed.parquet")
        _stage_ids(cur, "listed_one", tmp / "listed.parquet")
        cur.execute("INSERT INTO listed SELECT * FROM listed_one; DROP TABLE listed_one")
    cur.execute(IDS_IN_ARCHIVE)
    in_archive = cur.fetchone()[0]
    if in_table or in_archive:
        raise DataError(
            f"{key}: {in_table} of its {rows} ids are in ad_impressions and {in_archive} in "
            "the day's other archive objects; adopting it would count them twice; nothing "
            "was adopted",
            f"archive set-aside --key {key} (its bytes are kept under {SET_ASIDE_PREFIX})",
        )


def _list(cur: Any, key: str, day: date, facts: dict[str, Any], path: Path) -> None:
    """The proven object's manifest row and the operator's action, recorded together."""
    sha = sha256_file(path)
    row = (key, day, facts["rows"], path.stat().st_size, sha, facts["ids_sha256"])
    cur.execute(INSERT_ADOPTED, (*row, facts["min"], facts["max"], version_of(path)))
    cur.execute(RECORD, ("adopt", key, None, day, facts["rows"], sha, False))


def set_aside(conn: Any, bucket: Bucket, key: str) -> dict[str, Any]:
    if not key.startswith(ARCHIVE_TABLE_PREFIX) or key.endswith("/"):
        raise ConfigError(
            f"--key {key!r} is not an object under {ARCHIVE_TABLE_PREFIX}",
            "name one object of the archive (the FAILED line of the archive run names it)",
        )
    target = set_aside_key(key)
    with tempfile.TemporaryDirectory(prefix="adpipe-set-aside-") as tmp:
        path = Path(tmp) / "object"
        _download(bucket, key, path)
        sha = sha256_file(path)
        checksum = base64.b64encode(bytes.fromhex(sha)).decode()
        with path.open("rb") as body:
            # a copy already there from a set-aside that died before its delete is verified too
            bucket.put_new(target, body, "application/octet-stream", ChecksumSHA256=checksum)
        stored = bucket.stored_sha256(target)
        if stored is None:
            copy = Path(tmp) / "copy"
            _download(bucket, target, copy)
            stored = sha256_file(copy)
        if stored != sha:
            raise UpstreamError(
                f"the copy at s3://{bucket.name}/{target} does not hold {key}'s bytes; the "
                "original was left in place",
                f"inspect s3://{bucket.name}/{target}, then rerun",
            )
    day = archive_key_day(key)
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE archive_manifest SET restored_at = now(), set_aside_key = %s "
            "WHERE object_key = %s AND restored_at IS NULL RETURNING rows",
            (target, key),
        )
        found = cur.fetchone()
        cur.execute(
            RECORD,
            ("set-aside", key, target, day, found[0] if found else None, sha, bool(found)),
        )
    # the verified copy holds these bytes and the commit above says where: the original is
    # redundant now
    bucket.delete([key])
    return {
        "key": key,
        "moved_to": f"s3://{bucket.name}/{target}",
        "sha256": sha,
        "was_listed": bool(found),
        "reload": (verify.reload_day(day) if found and day else None),
    }


def _adopt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date", type=date.fromisoformat, required=True, help="the day (YYYY-MM-DD)"
    )
    parser.set_defaults(action="adopt")


def _set_aside_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", required=True, help="the archive object's key")
    parser.set_defaults(action="set-aside")


def main(args: argparse.Namespace) -> dict[str, Any]:
    with archive_session(args.settings) as conn:
        bucket = Bucket(args.settings)
        if args.action == "adopt":
            return adopt(conn, bucket, args.date)
        return set_aside(conn, bucket, args.key)


ADOPT = Command(
    "adopt",
    "archive",
    ADOPT_DOC,
    main,
    _adopt_arguments,
    env_file="archive",
    settings=(*WAREHOUSE, *S3),
)
SET_ASIDE = Command(
    "set-aside",
    "archive",
    SET_ASIDE_DOC,
    main,
    _set_aside_arguments,
    env_file="archive",
    settings=(*WAREHOUSE, *S3),
)
