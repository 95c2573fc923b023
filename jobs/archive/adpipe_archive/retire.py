"""How retire works (what its user reads is RETIRE_DOC, its --help).

A window whose start or end lies off the grid (WINDOW_MINUTES), or that overlaps another
window of its day, holds records another window holds too, and reconcile would count them
twice. Windows like that come from before the jobs refused them (a 30-minute window run by
hand over a loaded hour). retire records the window in retired_windows, with the reason
given, after checking that it is such a window and that it was backed up or loaded; from
then on reconcile counts neither its backup nor its load, the load refuses it, and an
overlapping window may load. Nothing is deleted: its backup objects stay (backups are never
deleted), and so do its rows, until the window that covers its hours loads them again.
Reconcile names the hours no other window covers until then. The check and the insert run
under the window's days' lock, so no load of those days checks or writes meanwhile.
"""

from __future__ import annotations

import argparse
from datetime import date, datetime
from typing import Any

from adpipe import backups, grid
from adpipe.errors import ConfigError
from adpipe.job import Command, parse_utc
from adpipe.locks import lock_days
from adpipe.settings import S3, WAREHOUSE
from adpipe.storage import Bucket
from adpipe.warehouse import session
from adpipe.windows import backup_day_prefix, rfc3339, window_days, window_of

RETIRE_DOC = """retire: Stop counting a window that lies off the grid or overlaps another.

Reconcile counts each window's records once. A window whose start or end lies off the
WINDOW_MINUTES grid, or that overlaps another window of its day, holds records another
window holds too; such windows come from before the jobs refused them (a 30-minute window
run by hand over a loaded hour), and reconcile names them. retire records the window in
retired_windows with the reason given. From then on reconcile counts neither its backup nor
its load, the load refuses it, and a window over its hours may load. Nothing is deleted: its
backup stays, and so do its rows until the window that covers its hours loads them again;
reconcile names the hours no other window covers meanwhile.

Running it again for a retired window changes nothing (exit 0). Refused, recording nothing
(exit 2): a window on the grid that overlaps no other (reconcile counts it once), one that
was never backed up or loaded, and an empty --reason.

    docker run --rm --network host --env-file .env.archive adpipe/archive:dev retire \\
        --start 2026-11-20T10:00:00Z --end 2026-11-20T10:30:00Z --reason "30 minutes by hand"
"""

# the day's windows that count: loaded, or backed up (listed from S3), and not retired
LOADED = """
SELECT DISTINCT window_start, window_end FROM load_runs r
WHERE window_start < %(end)s AND window_end > %(start)s
"""
RETIRED = "SELECT window_start, window_end FROM retired_windows WHERE window_start < %s"
RETIRE = """
INSERT INTO retired_windows (window_start, window_end, reason) VALUES (%s, %s, %s)
ON CONFLICT (window_start, window_end) DO NOTHING RETURNING retire_id
"""


def backed_up_windows(bucket: Bucket, first: date, last: date) -> set[tuple[datetime, datetime]]:
    """The windows of these days with a backup version."""
    found: set[tuple[datetime, datetime]] = set()
    for day in (first, last):
        keys = list(bucket.keys(backup_day_prefix(day)))
        for prefix in {key.rsplit("/", 1)[0] + "/" for key in keys}:
            window = window_of(prefix)
            if window and backups.version_keys([k for k in keys if k.startswith(prefix)]):
                found.add(window)
    return found


def retire(
    conn: Any, bucket: Bucket, window: tuple[datetime, datetime], reason: str, minutes: int
) -> dict[str, Any]:
    start, end = window
    first, last = window_days(start, end)
    grid.check_days(first, last, "--start/--end")
    backed_up = backed_up_windows(bucket, first, last)
    with conn, conn.cursor() as cur:
        lock_days(cur, first, last)  # no load of the day checks or writes until this commits
        cur.execute(LOADED, {"start": start - grid.DAY, "end": end + grid.DAY})
        loaded = set(cur.fetchall())
        cur.execute(RETIRED, (end + grid.DAY,))
        retired = set(cur.fetchall())
        if (start, end) in retired:
            return {"window": [rfc3339(start), rfc3339(end)], "retired": False, "before": True}
        if (start, end) not in loaded | backed_up:
            raise ConfigError(
                f"the window {rfc3339(start)} to {rfc3339(end)} was never backed up or loaded",
                "name a window reconcile names (its FAILED line gives the command)",
            )
        others = grid.overlapping((loaded | backed_up) - retired, start, end)
        off_grid = not (grid.on_grid(start, minutes) and grid.on_grid(end, minutes))
        if not others and not off_grid:
            raise ConfigError(
                f"the window {rfc3339(start)} to {rfc3339(end)} is on the grid and overlaps no "
                "other window: reconcile counts its records once; nothing to retire"
            )
        cur.execute(RETIRE, (start, end, reason))
    return {
        "window": [rfc3339(start), rfc3339(end)],
        "retired": True,
        "off_grid": off_grid,
        "overlaps": [[rfc3339(low), rfc3339(high)] for low, high in others],
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.end <= args.start:
        raise ConfigError(f"--end ({args.end.isoformat()}) must be after --start")
    if not args.reason.strip():
        raise ConfigError("--reason is empty", "say why the window should not count")
    settings = args.settings
    with session(
        settings.warehouse_dsn, "adpipe-retire", "nothing was recorded; rerun", settings
    ) as conn:
        window = (args.start, args.end)
        return retire(conn, Bucket(settings), window, args.reason, settings.window_minutes)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=parse_utc, required=True, help="the window's start")
    parser.add_argument("--end", type=parse_utc, required=True, help="the window's end")
    parser.add_argument("--reason", required=True, help="why it should not count")


RETIRE_WINDOW = Command(
    "retire",
    "retire",
    RETIRE_DOC,
    main,
    _arguments,
    env_file="archive",
    settings=(*WAREHOUSE, *S3, "WINDOW_MINUTES"),
)
