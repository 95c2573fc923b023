"""make demo: the pipelines end to end through Airflow's scheduler, then a reconciliation.

Runs ``api-load`` for two hours on each of three days (40 days ago, old enough for the
30-day retention, and the two days before today), then ``archive`` for today, through the
stack's REST API, and prints reconcile's table for the range. Exits 0 only when every day
balances. Expects the stack to run (``make demo`` starts it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOURS = (8, 9)


def load_env() -> None:
    for line in (ROOT / ".env").read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ.setdefault(key.strip(), value.strip())


class Airflow:
    def __init__(self) -> None:
        self.base = os.environ["AIRFLOW_URL"]
        body = json.dumps(
            {"username": os.environ["AIRFLOW_USER"], "password": os.environ["AIRFLOW_PASSWORD"]}
        ).encode()
        token = self._request("POST", "/auth/token", body, auth=False)
        self.token = token["access_token"]

    def _request(
        self, method: str, path: str, body: bytes | None = None, auth: bool = True
    ) -> dict:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(  # noqa: S310 - the local stack's API
            self.base + path,
            data=body,
            method=method,
            headers=headers,
        )
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - the local stack
            return json.loads(resp.read() or b"null") or {}

    def api(self, method: str, path: str, payload: object = None) -> dict:
        body = None if payload is None else json.dumps(payload).encode()
        return self._request(method, "/api/v2" + path, body)

    def trigger(self, dag_id: str, logical_date: datetime, run_id: str) -> None:
        stamp = urllib.parse.quote(logical_date.isoformat())
        old = self.api(
            "GET", f"/dags/{dag_id}/dagRuns?logical_date_gte={stamp}&logical_date_lte={stamp}"
        )
        stale = {run["dag_run_id"] for run in old.get("dag_runs", [])}
        try:
            self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            stale.add(run_id)
        except urllib.error.HTTPError:
            pass
        for stale_id in stale:  # a second demo replaces its runs, ending any still going
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{stale_id}")["state"]
            if state not in ("success", "failed"):
                self.api("PATCH", f"/dags/{dag_id}/dagRuns/{stale_id}", {"state": "failed"})
            self.api("DELETE", f"/dags/{dag_id}/dagRuns/{stale_id}")
        self.api(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            {"dag_run_id": run_id, "logical_date": logical_date.isoformat()},
        )

    def unpause(self, dag_id: str) -> None:
        deadline = time.monotonic() + 120
        while True:  # a fresh stack may still be parsing the DAG files
            try:
                self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
                return
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def wait(self, dag_id: str, run_ids: list[str], timeout: float = 240) -> list[str]:
        """Wait until the runs end; returns the ids of those that failed."""
        deadline = time.monotonic() + timeout
        pending = set(run_ids)
        failed = []
        while pending and time.monotonic() < deadline:
            for run_id in sorted(pending):
                state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
                if state in ("success", "failed"):
                    pending.discard(run_id)
                    print(f"demo: {dag_id} {run_id}: {state}", flush=True)
                    if state == "failed":
                        failed.append(run_id)
            time.sleep(2)
        return failed + sorted(pending)


def docker(args: list[str]) -> subprocess.CompletedProcess:
    """``docker run`` of a job image with the stack's settings, as a user would."""
    return subprocess.run(  # noqa: S603 - fixed arguments
        [  # noqa: S607 - docker from PATH, as in the Makefile
            "docker",
            "run",
            "--rm",
            "--network",
            "host",
            "--env-file",
            str(ROOT / ".env"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
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
        failed = airflow.wait("api-load", runs)
        run_id = f"demo__{today:%Y-%m-%d}"
        # a manual run's window is the last whole day before its date: the run's date is today
        # (or yesterday before 02:00 UTC); either way the oldest demo day is past the cutoff
        airflow.trigger("archive", datetime.now(UTC).replace(second=0, microsecond=0), run_id)
        airflow.unpause("archive")  # after the loads, so its own scheduled run sees them too
        failed += airflow.wait("archive", [run_id])
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
            "--entrypoint",
            "python3",
            "adpipe/archive:dev",
            "/app/reconcile.py",
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
