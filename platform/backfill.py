"""make backfill: run a DAG over a past range through Airflow 3's backfill API, and wait.

    python3 platform/backfill.py --dag api-load --from 2026-11-20T00:00 --to 2026-11-20T05:00

FROM and TO are ISO 8601 dates or date-times, UTC where no offset is given; Airflow creates a
run for every schedule point (logical date, the start of the run's data interval) from FROM
to TO, both included, that has no run yet (``--reprocess failed`` or ``completed`` reruns
those too). Says what it will run first (the API's dry run), then progress as runs end, then a
count of runs by state. Exits 0 only when every run succeeded; 1 when any did not or the
wait ran out (the backfill keeps running in Airflow: see the UI's Backfills); 2 for a wrong
argument. Standard library only: it needs the stack, not the development venv.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from stack_client import Airflow, load_env

POLL_SECONDS = 5


def moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; UTC when it has no offset."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or date-time: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make backfill", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dag", required=True, help="the DAG id (api-load, archive)")
    parser.add_argument("--from", dest="first", type=moment, required=True, help="first point")
    parser.add_argument("--to", dest="last", type=moment, required=True, help="last point")
    parser.add_argument(
        "--reprocess",
        choices=["none", "failed", "completed"],
        default="none",
        help="rerun points that already have a run: none (default), failed, or completed (all)",
    )
    parser.add_argument("--max-active-runs", type=int, default=4, help="runs at once (4)")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for every run (3600)"
    )
    args = parser.parse_args(argv)
    if args.last < args.first:
        parser.error(f"--to ({args.last.isoformat()}) is before --from ({args.first.isoformat()})")
    return args


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def plan(airflow: Airflow, body: dict[str, Any]) -> list[str]:
    """The logical dates the backfill will run, from the API's dry run."""
    found = airflow.api("POST", "/backfills/dry_run", body)["backfills"]
    return sorted(item["logical_date"] for item in found if item.get("logical_date"))


def run_states(airflow: Airflow, dag_id: str, dates: list[str]) -> dict[str, str]:
    """The state of the run at each logical date (``absent`` until it is created)."""
    query = (
        f"/dags/{dag_id}/dagRuns?limit=100&order_by=logical_date"
        f"&logical_date_gte={dates[0].replace('+', '%2B')}"
        f"&logical_date_lte={dates[-1].replace('+', '%2B')}"
    )
    runs: list[dict[str, Any]] = []
    while True:  # the API answers at most 100 runs a page
        page = airflow.api("GET", f"{query}&offset={len(runs)}")["dag_runs"]
        runs += page
        if len(page) < 100:
            break
    by_date = {moment(r["logical_date"]): r["state"] for r in runs if r.get("logical_date")}
    return {d: by_date.get(moment(d), "absent") for d in dates}


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    load_env()
    body = {
        "dag_id": args.dag,
        "from_date": _stamp(args.first),
        "to_date": _stamp(args.last),
        "reprocess_behavior": args.reprocess,
        "max_active_runs": args.max_active_runs,
    }
    try:
        airflow = Airflow()
        airflow.wait_for_dag(args.dag)
        dates = plan(airflow, body)
        if not dates:
            print(
                f"backfill: {args.dag} has nothing to run from {body['from_date']} to "
                f"{body['to_date']}: no schedule point lies there, or each has a run already "
                "(--reprocess failed|completed reruns those)"
            )
            return 0
        print(f"backfill: {args.dag}: {len(dates)} runs, {dates[0]} .. {dates[-1]}", flush=True)
        backfill = airflow.api("POST", "/backfills", body)
        print(f"backfill: created backfill {backfill['id']}", flush=True)
        deadline = time.monotonic() + args.timeout
        said: Counter[str] = Counter()
        while True:
            states = run_states(airflow, args.dag, dates)
            counts = Counter(states.values())
            if counts != said:
                shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
                print(f"backfill: {shown}", flush=True)
                said = counts
            done = airflow.api("GET", f"/backfills/{backfill['id']}").get("completed_at")
            if done and counts["success"] + counts["failed"] == len(dates):
                break
            if time.monotonic() > deadline:
                print(
                    f"backfill: still running after {args.timeout:.0f} s; it goes on in "
                    "Airflow (the UI's Backfills page)",
                    file=sys.stderr,
                )
                return 1
            time.sleep(POLL_SECONDS)
    except (urllib.error.URLError, OSError, KeyError) as exc:
        detail = ""
        if isinstance(exc, urllib.error.HTTPError):
            detail = f": {json.loads(exc.read() or b'{}').get('detail', '')}"
        print(f"backfill: the Airflow API failed: {exc}{detail}", file=sys.stderr)
        return 1
    failed = sorted(d for d, state in states.items() if state != "success")
    print(
        f"backfill: {args.dag}: {counts['success']} of {len(dates)} runs succeeded"
        + (f"; not: {', '.join(failed)}" if failed else "")
    )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
