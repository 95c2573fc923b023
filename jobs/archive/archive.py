"""archive: where a row leaves. Moves whole days older than the retention cutoff from
``ad_impressions`` to ``s3://ad-data/archive/`` (the archive issue fills this in; for now it
checks its arguments and proves it reaches the warehouse and the bucket).

    docker run --rm --network host --env-file .env adpipe/archive:dev --date 2026-11-20
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from typing import Any

from adpipe.check import main as check
from adpipe.job import run
from adpipe.settings import Settings


def main(args: argparse.Namespace) -> dict[str, Any]:
    cutoff = args.date - timedelta(days=Settings().retention_days)
    return {"date": args.date.isoformat(), "cutoff": cutoff.isoformat(), "days_archived": 0,
            **check(args)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=date.fromisoformat, required=True,
                        help="the run's date (YYYY-MM-DD); days before date - retention move")
    run("archive", parser, main)
