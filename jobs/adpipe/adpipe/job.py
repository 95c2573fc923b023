"""The contract every job keeps: environment in, window on the command line, exit code and
one summary line out.

A job's ``main(args) -> dict`` returns its counts; ``run`` prints them as one JSON line
starting ``SUMMARY``. A failure is one line starting ``FAILED`` that says what failed and
what to do, and a non-zero exit code (`JobError.exit_code`); tracebacks only with
``ADPIPE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, NoReturn

log = logging.getLogger("adpipe")


class JobError(Exception):
    """A failure a job reports as one clear line, with what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(JobError):
    """A setting or an argument is missing or wrong."""

    exit_code = 2


class DataError(JobError):
    """The data does not hold what the contract promises (bad page, checksum, too many rejects)."""

    exit_code = 3


class UpstreamError(JobError):
    """A service the job needs (ad API, S3, PostgreSQL) failed or did not answer."""

    exit_code = 4


def parse_utc(value: str) -> datetime:
    """An ISO 8601 timestamp with an offset (or Z), as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset or Z: {value!r}")
    return moment.astimezone(UTC)


def window_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the window arguments every api-load job takes: ``--start``, ``--end``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--start", type=parse_utc, required=True, help="window start, inclusive (ISO 8601, UTC)"
    )
    parser.add_argument(
        "--end", type=parse_utc, required=True, help="window end, exclusive (ISO 8601, UTC)"
    )
    return parser


def check_window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ConfigError(f"--end ({end.isoformat()}) must be after --start ({start.isoformat()})")


def day_range_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the day range the archive's restore and reconcile take: ``--from``, ``--to``."""
    parser.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        required=True,
        help="first day (YYYY-MM-DD)",
    )
    parser.add_argument(
        "--to",
        dest="last",
        type=date.fromisoformat,
        required=True,
        help="last day, inclusive (YYYY-MM-DD)",
    )
    return parser


def check_day_range(first: date, last: date) -> None:
    if last < first:
        raise DataError("--to must not be before --from")


def run(
    name: str, parser: argparse.ArgumentParser, main: Callable[[argparse.Namespace], dict[str, Any]]
) -> NoReturn:
    """Parse the arguments, run ``main``, print the summary line and exit."""
    logging.basicConfig(
        level=os.environ.get("ADPIPE_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    args = parser.parse_args()
    started = time.monotonic()
    summary: dict[str, Any] = {"job": name, "status": "ok"}
    code = 0
    try:
        summary.update(main(args))
    except JobError as exc:
        code = exc.exit_code
        summary.update(status="failed", error=str(exc))
        print(
            f"FAILED {name}: {exc}" + (f" -- {exc.hint}" if exc.hint else ""),
            file=sys.stderr,
            flush=True,
        )
    except KeyboardInterrupt:
        code = 130
        summary.update(status="interrupted")
        print(f"FAILED {name}: interrupted", file=sys.stderr, flush=True)
    except Exception as exc:
        code = 1
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        print(
            f"FAILED {name}: unexpected {type(exc).__name__}: {exc} -- rerun with "
            "ADPIPE_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
            flush=True,
        )
        if os.environ.get("ADPIPE_DEBUG") == "1":
            log.exception("traceback")
    summary["seconds"] = round(time.monotonic() - started, 3)
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("SUMMARY " + json.dumps(summary, default=str, sort_keys=False), flush=True)
    sys.exit(code)
