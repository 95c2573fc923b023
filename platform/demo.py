"""make demo: the pipelines end to end through Airflow's scheduler, then a reconciliation.

Runs ``api-load`` for two hours on each of three days (40 days ago, old enough for the
30-day retention, and the two days before today), then ``archive`` for today, through the
stack's REST API, and prints reconcile's table for the range. Exits 0 only when every day
balances. Expects the stack to run (``make demo`` starts it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
from datetime import UTC, datetime, timedelta

from stack_client import Airflow, job_argv, load_env

HOURS = (8, 9)


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
    days = [today - timedelta(days=40), today - timedelta(days=2), today - timedelta(days=1)]
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
            for hour in HOURS:
                end = day + timedelta(hours=hour + 1)  # a manual run's window ends at its date
                run_id = f"demo__{end:%Y-%m-%dT%H}"
                airflow.trigger("api-load", end, run_id)
                runs.append(run_id)
        print(f"demo: triggered {len(runs)} api-load runs over {len(days)} days", flush=True)
        failed = unsuccessful(airflow, "api-load", runs)
        run_id = f"demo__{today:%Y-%m-%d}"
        # a manual run's window is the last whole day before its date: the run's date is today
        # (or yesterday before 02:00 UTC); either way the oldest demo day is past the cutoff
        airflow.trigger("archive", datetime.now(UTC).replace(second=0, microsecond=0), run_id)
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
            f"{today:%Y-%m-%d}",
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
