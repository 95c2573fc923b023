"""make demo: the pipelines end to end through Airflow's scheduler, then a reconciliation.

Runs ``api-load`` for three whole days (50, 16 and 15 days ago), one run a day whose data
interval is the day (24 hours of the hourly grid in one window), then ``archive`` for the day
after the last of them, through the stack's REST API, and prints reconcile's table for the
three days. The archive's cutoff (its date less the 30-day retention) moves the oldest day
to S3, and its reconcile task checks the 45 days before its date: the demo's days, not the
stack's first day, whose hours before the stack started were never loaded (reconcile names
them, with the commands that fill or accept them). Exits 0 only when every day balances.
Expects the stack to run (``make demo`` starts it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
from datetime import UTC, datetime, timedelta

from stack_client import Airflow, job_argv, load_env

DAYS_AGO = (50, 16, 15)  # tests/days.py reserves them for the demo


def unsuccessful(airflow: Airflow, dag_id: str, run_ids: list[str]) -> list[str]:
    """Wait for the runs, saying as each ends; the ids of those that did not succeed."""
    states = airflow.wait(
        dag_id,
        run_ids,
        timeout=240,
        on_end=lambda run_id, state: print(f"demo: {dag_id} {run_id}: {state}", flush=True),
    )
    return [run_id for run_id, state in states.items() if state != "success"]


def docker(args: list[str]) -> subprocess.CompletedProcess:
    """``docker run`` of a job image with its own env file, as a user would."""
    return subprocess.run(  # noqa: S603 - fixed arguments
        job_argv(args[0], args[1:]), capture_output=True, text=True, check=False
    )


def main() -> int:
    load_env()
    started = time.monotonic()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in DAYS_AGO]
    try:
        airflow = Airflow()
        # a second demo first restores the old day its first run archived, so reloading it
        # is a reload, not a second copy (load refuses to load an archived window twice)
        docker(
            [
                "adpipe/archive:dev",
                "restore",
                "--from",
                f"{days[0]:%Y-%m-%d}",
                "--to",
                f"{days[0]:%Y-%m-%d}",
            ]
        )
        airflow.unpause("api-load")
        runs = []
        for day in days:
            end = day + timedelta(days=1)
            run_id = f"demo__{day:%Y-%m-%d}"
            airflow.trigger("api-load", end, run_id, interval=(day, end))
            runs.append(run_id)
        print(f"demo: triggered {len(runs)} api-load runs, one a whole day", flush=True)
        failed = unsuccessful(airflow, "api-load", runs)
        # a manual run's date is that of the last 02:00 before its logical date: the day
        # after the demo's last
        run_date = days[-1] + timedelta(days=1)
        run_id = f"demo__archive_{run_date:%Y-%m-%d}"
        airflow.trigger("archive", run_date + timedelta(hours=12), run_id)
        airflow.unpause("archive")  # after the loads, so its own scheduled run sees them too
        failed += unsuccessful(airflow, "archive", [run_id])
    except (urllib.error.URLError, OSError, KeyError) as exc:
        where = (
            f" ({exc.url}: {exc.read()[:300]!r})" if isinstance(exc, urllib.error.HTTPError) else ""
        )
        print(
            f"demo: the Airflow API at {os.environ.get('AIRFLOW_URL')} failed: {exc}{where}; "
            "see `make status` and `make logs`",
            file=sys.stderr,
        )
        return 1
    if failed:
        print(
            f"demo: runs failed: {', '.join(failed)}; see their task logs in the UI",
            file=sys.stderr,
        )
    reconcile = docker(
        [
            "adpipe/archive:dev",
            "reconcile",
            "--from",
            f"{days[0]:%Y-%m-%d}",
            "--to",
            f"{days[-1]:%Y-%m-%d}",
        ]
    )
    print(reconcile.stdout.split("SUMMARY")[0].rstrip())
    if reconcile.returncode:
        print(reconcile.stderr.strip().splitlines()[-1], file=sys.stderr)
    print(
        f"demo: {time.monotonic() - started:.0f} s; Airflow UI {os.environ['AIRFLOW_URL']} "
        f"(login {os.environ['AIRFLOW_USER']} / {os.environ['AIRFLOW_PASSWORD']})"
    )
    return 1 if failed or reconcile.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
