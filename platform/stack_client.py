"""A small client of the running stack: its settings from .env, and Airflow's REST API v2
logged in as the stack's user. `make demo` and the tests both drive Airflow through it."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENDED = ("success", "failed")


def env_file_values(path: Path) -> dict[str, str]:
    """The settings of an env file; a value in single or double quotes loses them, as
    compose and the shell read it."""
    found = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found[key.strip()] = value
    return found


def load_env() -> None:
    """Put the settings of .env into os.environ (variables already set win)."""
    env_file = ROOT / ".env"
    if not env_file.exists():
        return
    for key, value in env_file_values(env_file).items():
        os.environ.setdefault(key, value)


# the archive image's commands that run as another identity than the archive's
OTHER_IDENTITY = {"reconcile": "reconcile", "health": "health", "migrate": "migrate"}


def job_env_file(image: str, args: Sequence[str]) -> Path:
    """The env file `make env` wrote for the identity a job command runs as (.env.load, ...)."""
    job = image.split("/")[-1].split(":")[0]
    if job == "archive" and args:
        job = OTHER_IDENTITY.get(args[0], job)
    return ROOT / f".env.{job}"


def tls_ca() -> tuple[Path, str] | None:
    """With TLS=1 in .env: the CA of `make certs` on this host, and the path in a container
    where the jobs read it (S3_CA_BUNDLE, which the DSNs' sslrootcert names too)."""
    env_file = ROOT / ".env"
    settings = env_file_values(env_file) if env_file.exists() else {}
    if settings.get("TLS") != "1" or not settings.get("S3_CA_BUNDLE"):
        return None
    return ROOT / ".state" / "tls" / "ca.crt", settings["S3_CA_BUNDLE"]


def job_argv(
    image: str,
    args: Sequence[str],
    env: dict[str, str] | None = None,
    options: Sequence[str] = ("--rm",),
) -> list[str]:
    """``docker run`` of a job image as the DAGs run it: host network, the job's own env file
    (its identity and settings, nothing more), ``env``'s names on top, and with TLS the CA
    (`tls_ca`), read-only. Only the names: run it with ``env``'s values in the environment
    (``{**os.environ, **env}``), where docker reads them, so no value (a DSN, a key) is ever
    in a process's arguments."""
    argv = ["docker", "run", *options, "--network", "host"]
    ca = tls_ca()
    if ca:
        argv += ["-v", f"{ca[0]}:{ca[1]}:ro"]
    argv += ["--env-file", str(job_env_file(image, args))]
    for key in env or {}:
        argv += ["-e", key]
    return [*argv, image, *args]


def _request(method: str, url: str, payload: object = None, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - the local stack
        return json.loads(resp.read() or b"null")


def login_status(user: str, password: str) -> int:
    """The HTTP status ``POST /auth/token`` answers for these credentials."""
    try:
        _request(
            "POST",
            f"{os.environ['AIRFLOW_URL']}/auth/token",
            {"username": user, "password": password},
        )
        return 201
    except urllib.error.HTTPError as exc:
        return exc.code


class Airflow:
    """Airflow's REST API v2, logged in as AIRFLOW_USER."""

    def __init__(self) -> None:
        self.base = os.environ["AIRFLOW_URL"]
        credentials = {
            "username": os.environ["AIRFLOW_USER"],
            "password": os.environ["AIRFLOW_PASSWORD"],
        }
        self.token = _request("POST", f"{self.base}/auth/token", credentials)["access_token"]

    def api(self, method: str, path: str, payload: object = None) -> Any:
        return _request(method, f"{self.base}/api/v2{path}", payload, self.token)

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """A fresh stack may still be parsing the DAG files."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api("GET", f"/dags/{dag_id}")
                return
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def trigger(
        self,
        dag_id: str,
        logical_date: datetime,
        run_id: str,
        interval: tuple[datetime, datetime] | None = None,
    ) -> None:
        """Trigger a run for ``logical_date``, replacing an earlier run with that date or id
        (ending it first if it still goes), so a demo or a test can run again; ``interval``
        gives the run that data interval instead of the timetable's."""
        self.wait_for_dag(dag_id)
        stamp = urllib.parse.quote(logical_date.isoformat())
        earlier = self.api(
            "GET", f"/dags/{dag_id}/dagRuns?logical_date_gte={stamp}&logical_date_lte={stamp}"
        )
        stale = {run["dag_run_id"]: run["state"] for run in earlier["dag_runs"]}
        try:
            stale[run_id] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        except urllib.error.HTTPError:
            pass
        for stale_id, state in stale.items():
            if state not in ENDED:
                self.api("PATCH", f"/dags/{dag_id}/dagRuns/{stale_id}", {"state": "failed"})
            self.api("DELETE", f"/dags/{dag_id}/dagRuns/{stale_id}")
        body = {"dag_run_id": run_id, "logical_date": logical_date.isoformat()}
        if interval:
            body["data_interval_start"] = interval[0].isoformat()
            body["data_interval_end"] = interval[1].isoformat()
        self.api("POST", f"/dags/{dag_id}/dagRuns", body)

    def unpause(self, dag_id: str) -> None:
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def wait(
        self,
        dag_id: str,
        run_ids: list[str],
        timeout: float = 600,
        on_end: Callable[[str, str], None] | None = None,
    ) -> dict[str, str]:
        """Wait until the runs end; returns each run's last state (not ended: still going)."""
        deadline = time.monotonic() + timeout
        states = dict.fromkeys(run_ids, "queued")
        while time.monotonic() < deadline:
            for run_id in [r for r, state in states.items() if state not in ENDED]:
                states[run_id] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
                if states[run_id] in ENDED and on_end:
                    on_end(run_id, states[run_id])
            if all(state in ENDED for state in states.values()):
                break
            time.sleep(1)
        return states

    def run(self, dag_id: str, logical_date: datetime, run_id: str, timeout: float = 600) -> dict:
        """Trigger a run, unpause the DAG (after the trigger, so this run is queued before
        any the scheduler creates) and wait until it ends; returns the run."""
        return self.run_all(dag_id, {run_id: logical_date}, timeout)[run_id]

    def run_all(
        self, dag_id: str, dates: dict[str, datetime], timeout: float = 600
    ) -> dict[str, dict]:
        """`run` for several runs at once (as many run together as the DAG allows): each
        run id with its logical date in; each run id with its run out, once all ended."""
        for run_id, logical_date in dates.items():
            self.trigger(dag_id, logical_date, run_id)
        self.unpause(dag_id)
        states = self.wait(dag_id, list(dates), timeout)
        if going := [run_id for run_id, state in states.items() if state not in ENDED]:
            raise AssertionError(f"{dag_id} runs {going} did not end in {timeout} s")
        return {run_id: self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}") for run_id in dates}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        items = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in items["task_instances"]}


if __name__ == "__main__":
    # `python3 platform/stack_client.py IMAGE [ARGS...]`: run one job command as the DAGs run
    # it (the Makefile's migrate, restore and reconcile)
    import sys

    if len(sys.argv) < 2:
        sys.exit("usage: stack_client.py IMAGE [ARGS...]")
    argv = job_argv(sys.argv[1], sys.argv[2:])
    os.execvp(argv[0], argv)  # noqa: S606 - docker, with the job's fixed options
