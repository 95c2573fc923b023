"""Helpers over the real services: S3 (boto3), the warehouse (psycopg2), Airflow's REST API."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import days
import psycopg2
import pyarrow.parquet as pq
import stack_client
from adpipe.table import IMPRESSION_COLUMNS
from adpipe.windows import backup_prefix, manifest_key, page_key, rfc3339
from stack_client import (  # noqa: F401 - for the tests
    ROOT,
    job_argv,
    job_env_file,
    load_env,
    login_status,
)

ENV_FILE = ROOT / ".env"


# the tests' extracts ask for pages of 1,000 records, not the product's default 10,000: the
# mock's 3,000 records an hour then span three pages, and paging is exercised
PAGE_SIZE = 1000


def docker_run(
    image: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    detach: bool = False,
    name: str | None = None,
    entrypoint: str | None = None,
    remove: bool = True,
    claim: bool = True,
) -> subprocess.CompletedProcess:
    """``docker run --rm --network host --env-file .env.<identity> <image> <args>``, as
    docs/operations.md tells a user (``remove=False`` keeps the container, and its log, after
    it ends). The days it writes must be the test module's (``claim=False``: a run the job
    refuses). An extract asks for pages of `PAGE_SIZE` records unless ``env`` says otherwise."""
    options = [*(["--rm"] if remove else []), *(["-d"] if detach else [])]
    options += [
        *(["--name", name] if name else []),
        *(["--entrypoint", entrypoint] if entrypoint else []),
    ]
    if claim:
        _claim(image, args)
    if "/extract_backup:" in image:
        env = {"EXTRACT_PAGE_SIZE": str(PAGE_SIZE), **(env or {})}
    cmd = job_argv(image, args, env, options)
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},  # the values docker reads for job_argv's names
    )


def _claim(image: str, args: tuple[str, ...]) -> None:
    """The days a job command writes must be its test module's (`days.claim`)."""
    given = dict(itertools.pairwise(args))
    try:
        job = image.split("/")[-1].split(":")[0]
        if "--start" in given and "--end" in given and job in ("extract_backup", "load"):
            start, end = map(datetime.fromisoformat, (given["--start"], given["--end"]))
            last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
            first = start.astimezone(UTC).date()
            days.claim(first, max(last, first), f"runs {job}")
        elif "restore" in args and "--from" in given and "--to" in given:
            first, last = map(date.fromisoformat, (given["--from"], given["--to"]))
            days.claim(first, last, "restores")
    except (ValueError, OverflowError):
        pass  # an argument the job itself refuses (exit 2) writes nothing


class Airflow(stack_client.Airflow):
    """The stack's Airflow, whose api-load runs claim their hour (`days.claim`), and whose
    failed runs explain themselves (`explain`)."""

    def trigger(
        self,
        dag_id: str,
        logical_date: datetime,
        run_id: str,
        interval: tuple[datetime, datetime] | None = None,
    ) -> None:
        if dag_id == "api-load":  # a manual run's window is the hour before its date
            low, high = interval or (logical_date - timedelta(hours=1), logical_date)
            last = (high - timedelta(microseconds=1)).astimezone(UTC).date()
            days.claim(low.astimezone(UTC).date(), last, "runs api-load")
        super().trigger(dag_id, logical_date, run_id, interval)

    def explain(self, dag_id: str, run_id: str) -> str:
        """Each task's state, and the FAILED line and last lines of each try of every task
        that did not succeed (reconcile's per-day table among them): what an assertion on a
        run shows."""
        lines = []
        for task, state in self.task_states(dag_id, run_id).items():
            lines.append(f"{task}: {state}")
            if state in ("success", "skipped"):
                continue
            for attempt, text in enumerate(self.tries(dag_id, run_id, task), start=1):
                failed = [t for t in text if "FAILED " in t]
                lines += [f"  try {attempt}:", *(f"    {t}" for t in failed + text[-40:])]
        return "\n".join(lines)

    def tries(self, dag_id: str, run_id: str, task: str) -> list[list[str]]:
        """The log lines of each try of the task so far (a try whose log cannot be read
        says why)."""
        ti = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task}")
        logs = []
        for attempt in range(1, max(int(ti.get("try_number") or 1), 1) + 1):
            try:
                log = self.api(
                    "GET",
                    f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task}/logs/{attempt}"
                    "?full_content=true",
                )
            except urllib.error.HTTPError as exc:
                logs.append([f"(no log: {exc})"])
                continue
            events = log.get("content", []) if isinstance(log, dict) else []
            logs.append([e.get("event", "") if isinstance(e, dict) else str(e) for e in events])
        return logs


def summary(done: subprocess.CompletedProcess) -> dict:
    """A job's SUMMARY line as a dict, with its exit code and stderr."""
    lines = [x for x in done.stdout.splitlines() if x.startswith("SUMMARY ")]
    assert lines, done.stdout + done.stderr
    result = json.loads(lines[-1][len("SUMMARY ") :])
    result["exit_code"], result["stderr"] = done.returncode, done.stderr
    return result


def load_window(start: datetime, end: datetime, env: dict[str, str] | None = None) -> None:
    """api-load for one window, as the DAG runs it: extract_backup, then load."""
    for job in ("extract_backup", "load"):
        done = docker_run(
            f"adpipe/{job}:dev", "--start", start.isoformat(), "--end", end.isoformat(), env=env
        )
        assert done.returncode == 0, done.stderr


def load_span(start: datetime, end: datetime, env: dict[str, str] | None = None) -> None:
    """api-load over ``[start, end)``, a window a day (a window never spans two days), the
    days three at a time."""
    windows = []
    while start < end:
        midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1)
        windows.append((start, min(midnight, end)))
        start = min(midnight, end)
    load_windows(windows, env)


def load_days(days_: list[date], env: dict[str, str] | None = None) -> None:
    """api-load of each day whole, three at a time."""
    midnights = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days_]
    load_windows([(m, m + timedelta(days=1)) for m in midnights], env)


def load_windows(windows: list[tuple[datetime, datetime]], env: dict[str, str] | None) -> None:
    """api-load of each window, three at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        for done in [pool.submit(load_window, low, high, env) for low, high in windows]:
            done.result()


def impression(at: datetime, /, **fields: Any) -> dict[str, Any]:
    """A record the ad API could send, valid by every rule, shown ``at``: a new id, ``fields``
    on top (its ``shown_at`` too, as text)."""
    return {
        "impression_id": str(uuid.uuid4()),
        "ad_id": 1,
        "campaign_id": 2,
        "advertiser_id": 3,
        "placement": "feed",
        "device": "mobile",
        "country": "DE",
        "shown_at": rfc3339(at),
        "cost_micros": 4,
        "currency": "EUR",
        "clicked": False,
        **fields,
    }


def put_backup(start: datetime, end: datetime, pages: list[list[dict]], **facts) -> None:
    """A new backup version of the window holding these pages, written as the extract writes
    one; ``facts`` go into its manifest."""
    prefix = backup_prefix(start, end)
    version = len(backup_manifests(start, end)) + 1
    listed = []
    for number, records in enumerate(pages, start=1):
        cursor = None if number == len(pages) else f"after-{number}"
        body = json.dumps({"impressions": records, "next_cursor": cursor}).encode()
        digest = hashlib.sha256(body).hexdigest()
        key = page_key(prefix, digest)
        s3().put_object(Bucket=bucket(), Key=key, Body=gzip.compress(body))
        listed.append({"key": key, "records": len(records), "bytes": len(body), "sha256": digest})
    manifest = {"window": {"start": rfc3339(start), "end": rfc3339(end)}, "pages": listed, **facts}
    s3().put_object(
        Bucket=bucket(),
        Key=manifest_key(prefix, version),
        Body=json.dumps(manifest).encode(),
    )


def start_detached(image: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Start a job container in the background; returns its name. It is kept after it ends,
    so its exit code and log can be read however fast it fails: `wait_exit` or `finish`
    remove it, ``docker rm -f`` kills and removes it."""
    name = f"{image.split('/')[-1].split(':')[0]}-{uuid.uuid4().hex[:8]}"
    done = docker_run(image, *args, env=env, detach=True, name=name, remove=False)
    assert done.returncode == 0, done.stderr
    return name


def wait_exit(name: str, timeout: float = 300) -> int:
    """The exit code of a detached container, once it ends; removes the container."""
    return finish(name, timeout)[0]


def finish(name: str, timeout: float = 300) -> tuple[int, str]:
    """The exit code and log of a detached container, once it ends; removes it."""
    done = subprocess.run(
        ["docker", "wait", name], capture_output=True, text=True, timeout=timeout, check=True
    )
    code = int(done.stdout.strip())
    logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
    subprocess.run(["docker", "rm", name], capture_output=True, check=False)
    return code, logs.stdout + logs.stderr


def wait_for_log(name: str, text: str, timeout: float = 60) -> None:
    """Wait until the container's log holds ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        if text in logs.stdout + logs.stderr:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never logged {text!r}")


@contextlib.contextmanager
def served_api(
    port: int,
    per_hour: int,
    seed: str,
    faults: bool = False,
    token: str | None = None,
    late_share: float = 0.0,
) -> Iterator[str]:
    """The mock ad API (``dags/api_load/scripts/extract.py``) served from this process on a
    port of its own (0: any free one, for a module whose tests run in two processes); yields
    its base URL. With ``token`` it answers only requests that carry it; with ``late_share``
    that share of its records only once published (``POST /_late``)."""
    from api_load.scripts import extract

    server = extract.make_server("127.0.0.1", port, per_hour, seed, faults, token, late_share)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def faults(api: str, *plan: str) -> None:
    """Queue faults on an ad API started with its fault endpoint (the ``fault_api`` fixture)."""
    post_json(f"{api}/_faults", {"plan": list(plan)})


def post_json(url: str, body: object) -> None:
    request = urllib.request.Request(  # noqa: S310 - the local mock
        url, method="POST", data=json.dumps(body).encode()
    )
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310


def stack(action: str, *services: str) -> subprocess.CompletedProcess:
    """``platform/stack.sh start|stop|wait SERVICE...``: start waits until every service is
    healthy, wait until the ones named are."""
    return subprocess.run(
        ["bash", str(ROOT / "platform" / "stack.sh"), action, *services],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


@contextlib.contextmanager
def s3_stopped() -> Iterator[None]:
    """The S3 server really stopped for the block; started again, and healthy, after it."""
    assert compose("stop", "s3").returncode == 0
    try:
        yield
    finally:
        compose("start", "s3")
        wait_healthy("s3")


def wait_healthy(service: str, timeout: float = 120) -> None:
    """Wait until the stack's ``service`` is healthy: its compose healthcheck passes
    (`stack.sh wait`, which runs the check itself rather than wait for Docker's next)."""
    done = subprocess.run(
        ["bash", str(ROOT / "platform" / "stack.sh"), "wait", service],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
        cwd=ROOT,
        env={**os.environ, "STACK_WAIT_SECONDS": f"{timeout:.0f}"},
    )
    assert done.returncode == 0, f"{service} not healthy after {timeout} s: {done.stderr}"


def restore_days(first: str, last: str, always: bool = False) -> None:
    """Bring archived days back, so a test may load their windows again (a reload of an
    archived window is refused). With no manifest row of the days still live there is
    nothing the restore would do, and no container runs (``always``: it runs anyway). While
    another test's archive holds the archive lock, the restore is refused; it is tried again
    for up to three minutes."""
    days.claim(date.fromisoformat(first), date.fromisoformat(last), "restores")  # run or not
    live = (
        "SELECT 1 FROM archive_manifest WHERE shown_date BETWEEN %s AND %s AND restored_at IS NULL"
    )
    if not always and not query(f"{live} LIMIT 1", (first, last)):
        return
    deadline = time.monotonic() + 180
    while True:
        done = docker_run("adpipe/archive:dev", "restore", "--from", first, "--to", last)
        busy = "holds the archive lock" in done.stderr
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert done.returncode == 0, done.stderr


def compose(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """platform/compose.sh with ``args``; ``env``'s values over .env's for what it interpolates."""
    return subprocess.run(
        ["bash", str(ROOT / "platform" / "compose.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def day_locked(day: date) -> Iterator[None]:
    """The archive's exclusive hold on one day's rows, taken for the block: a load of the day
    waits on it (and fails after its lock_timeout, for a retry) until the block ends."""
    from adpipe.locks import lock_days  # the archive's own way to take it

    holder = warehouse()
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            lock_days(cur, day, day)
        yield
    finally:
        holder.rollback()
        holder.close()


def lineage_events(dag_run_id: str, task_id: str, event_type: str, timeout: float = 60) -> dict:
    """The one OpenLineage event of ``event_type`` a task of a DAG run emitted, read with
    ``make lineage``. The provider writes it as the task ends, which may be a moment after
    the run's state is final, so this waits (bounded) for it."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(
            ["make", "-s", "lineage"], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        found = []
        for line in done.stdout.splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:  # the last line, while another task appends it
                continue
            airflow = event.get("run", {}).get("facets", {}).get("airflow", {})
            if (
                event["eventType"] == event_type
                and airflow.get("dagRun", {}).get("run_id") == dag_run_id
                and airflow.get("task", {}).get("task_id") == task_id
            ):
                found.append(event)
        if found or time.monotonic() > deadline:
            assert len(found) == 1, (event_type, task_id, len(found), done.stderr)
            return found[0]
        time.sleep(1)


def s3() -> Any:
    ca = stack_client.tls_ca()
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        region_name=os.environ["AWS_DEFAULT_REGION"],
        verify=str(ca[0]) if ca else None,
    )


def on_host(dsn: str) -> str:
    """``dsn`` as this host connects with it: with TLS the CA's path in a container
    (sslrootcert, `stack_client.tls_ca`) becomes the CA's path here."""
    ca = stack_client.tls_ca()
    return dsn.replace(f"sslrootcert={ca[1]}", f"sslrootcert={ca[0]}") if ca else dsn


def bucket() -> str:
    return os.environ.get("S3_BUCKET", "ad-data")


def keys(prefix: str) -> list[str]:
    found = []
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket(), Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return sorted(found)


def archive_keys() -> list[str]:
    """Every key under archive/ but the S3 identity test's probes (archive/probe/, which it
    writes and deletes beside the old-days tests that compare this listing)."""
    return [key for key in keys("archive/") if not key.startswith("archive/probe/")]


def get(key: str) -> bytes:
    return s3().get_object(Bucket=bucket(), Key=key)["Body"].read()


def warehouse(dsn: str | None = None) -> Any:
    """A connection as the warehouse's owner (or to ``dsn``): tests set up and inspect what
    jobs may not."""
    return psycopg2.connect(on_host(dsn or os.environ["WAREHOUSE_OWNER_DSN"]))


def query(sql: str, params: tuple = (), dsn: str | None = None) -> list[tuple]:
    conn = warehouse(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def admin_query(sql: str, params: tuple = ()) -> list[tuple]:
    """A query as the superuser: what only an operator may see or do to other sessions
    (their queries in pg_stat_activity, pg_terminate_backend)."""
    conn = superuser()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def attempt(dsn_setting: str, take: str | Callable[[Any], None]) -> str:
    """The error PostgreSQL answers a session of ``dsn_setting``'s role with when it runs
    ``take`` (a statement, or a function of a cursor), or 'ok'; rolled back either way."""
    conn = psycopg2.connect(on_host(os.environ[dsn_setting]))
    try:
        with conn.cursor() as cur:
            cur.execute(take) if isinstance(take, str) else take(cur)
        return "ok"
    except psycopg2.Error as exc:
        return type(exc).__name__
    finally:
        conn.rollback()
        conn.close()


def table_exists(name: str) -> bool:
    return query("SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0]


# a row's columns, load metadata aside: the ones the API sends (adpipe.table)
ROWS = ", ".join(IMPRESSION_COLUMNS)


def comparable(values: Iterable[Any]) -> tuple:
    """A row's values in ``ROWS``' order as PostgreSQL's and the archive's rows compare:
    the id as text, ``shown_at`` as ISO 8601 text in UTC."""
    row = dict(zip(IMPRESSION_COLUMNS, values, strict=True))
    ident = row["impression_id"]
    row["impression_id"] = str(uuid.UUID(bytes=ident)) if isinstance(ident, bytes) else str(ident)
    row["shown_at"] = row["shown_at"].astimezone(UTC).isoformat()
    return tuple(row.values())


def window_checksum(start: datetime, end: datetime) -> tuple[int, str]:
    """(rows, md5 over the ordered rows) of ad_impressions in the window, load metadata aside."""
    digest = "coalesce(md5(string_agg(r::text, '|' ORDER BY impression_id)), '')"
    return query(
        f"SELECT count(*), {digest} FROM (SELECT {ROWS} FROM ad_impressions"  # noqa: S608
        " WHERE shown_at >= %s AND shown_at < %s) r",
        (start, end),
    )[0]


def pg_rows(day: date) -> list[tuple]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = query(
        f"SELECT {ROWS} FROM ad_impressions WHERE shown_at >= %s "  # noqa: S608
        "AND shown_at < %s",
        (start, start + timedelta(days=1)),
    )
    return sorted(comparable(r) for r in rows)


def archived_rows(day: date) -> list[tuple]:
    """The day's rows as pyarrow reads them from the live archive objects."""
    rows = []
    for (key,) in query(
        "SELECT object_key FROM archive_manifest WHERE shown_date = %s AND restored_at IS NULL",
        (day,),
    ):
        table = pq.read_table(io.BytesIO(get(key)))
        rows += [comparable(r[c] for c in IMPRESSION_COLUMNS) for r in table.to_pylist()]
    return sorted(rows)


def api_pages(
    start: datetime, end: datetime, limit: int = PAGE_SIZE, base: str | None = None
) -> list[bytes]:
    """Every page body the ad API serves for the window, fetched here, not by the job."""
    base = base or os.environ["AD_API_URL"]
    bodies, cursor = [], None
    while True:
        url = f"{base}/v1/impressions?start={rfc3339(start)}&end={rfc3339(end)}&limit={limit}" + (
            f"&cursor={cursor}" if cursor else ""
        )
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - local mock
            body = resp.read()
        bodies.append(body)
        cursor = json.loads(body)["next_cursor"]
        if cursor is None:
            return bodies


def backup_manifests(start: datetime, end: datetime) -> list[str]:
    """The window's manifest versions, oldest first."""
    return sorted(k for k in keys(backup_prefix(start, end)) if "/manifest-" in k)


def backup_pages(start: datetime, end: datetime) -> list[bytes]:
    """The page bodies of the window's current backup version, in the manifest's order."""
    manifest = json.loads(get(backup_manifests(start, end)[-1]))
    return [gunzip(get(page["key"])) for page in manifest["pages"]]


def backup_objects(start: datetime, end: datetime) -> dict[str, bytes]:
    """Every object of the window's backup, by key, as stored."""
    return {key: get(key) for key in keys(backup_prefix(start, end))}


SUPERUSER_APP = "adpipe-tests-superuser"


def superuser(dbname: str | None = None) -> Any:
    """A connection as the server's superuser (POSTGRES_USER), for what a job may not do;
    to Airflow's database unless ``dbname`` names another. Its sessions are named
    ``SUPERUSER_APP``, so a test counting Airflow's sessions can tell them apart."""
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=os.environ["POSTGRES_PORT"],
        user=os.environ["POSTGRES_USER"],
        password=os.environ["POSTGRES_PASSWORD"],
        dbname=dbname or os.environ["POSTGRES_DB"],
        application_name=SUPERUSER_APP,
    )
    conn.autocommit = True
    return conn


def gunzip(data: bytes) -> bytes:
    return gzip.decompress(data)


HOUR = timedelta(hours=1)


def balance_days(owner: str, reason: str = "") -> list[tuple[datetime, datetime]]:
    """`balance_day` for each of ``owner``'s days (tests/days.py) that holds a load: a test
    that loads a few hours of a day inside the archive DAG's reconcile window leaves nothing
    there that reconcile would name. Returns the spans accepted."""
    accepted = []
    for first, last in days.of(owner):
        low = datetime(first.year, first.month, first.day, tzinfo=UTC)
        high = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        loaded = query(
            "SELECT DISTINCT (window_start AT TIME ZONE 'UTC')::date FROM load_runs "
            "WHERE window_start >= %s AND window_start < %s",
            (low, high),
        )
        for (day,) in loaded:
            accepted += balance_day(day, reason or f"{owner}: a test loads only some hours")
    return accepted


def balance_day(day: date, reason: str) -> list[tuple[datetime, datetime]]:
    """Accept as gaps (as `make accept-gap` does, as the owner) the hours of ``day`` no load
    and no accepted gap covers, of those that ended an hour ago (reconcile expects a day that
    holds a load whole; later hours it does not expect yet). Returns the spans accepted."""
    low = datetime(day.year, day.month, day.day, tzinfo=UTC)
    covered = query(
        "SELECT window_start, window_end FROM load_runs WHERE window_start < %s "
        "AND window_end > %s UNION ALL SELECT gap_start, gap_end FROM accepted_gaps "
        "WHERE gap_start < %s AND gap_end > %s",
        (low + timedelta(days=1), low, low + timedelta(days=1), low),
    )
    now, spans = datetime.now(UTC), []
    for hour in (low + n * HOUR for n in range(24)):
        if hour + HOUR > now - HOUR or any(a <= hour and hour + HOUR <= b for a, b in covered):
            continue
        if spans and spans[-1][1] == hour:
            spans[-1] = (spans[-1][0], hour + HOUR)
        else:
            spans.append((hour, hour + HOUR))
    for gap_start, gap_end in spans:
        query(
            "INSERT INTO accepted_gaps (gap_start, gap_end, reason) VALUES (%s, %s, %s)",
            (gap_start, gap_end, reason),
        )
    return spans


@contextlib.contextmanager
def own_airflow(timeout: float = 120) -> Iterator[OwnAirflow]:
    """An Airflow of the test's own: the stack's scheduler service (its image, environment,
    DAGs folder, logs volume and Docker access, `compose run`), but a metadata database of
    its own (SQLite in the container), so no run it makes is seen, let alone run, by the
    stack's scheduler. Removed after."""
    name = f"adpipe-test-airflow-{uuid.uuid4().hex[:8]}"
    started = compose(
        "run",
        "-d",
        "--rm",
        "--no-deps",
        "--name",
        name,
        "-e",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:////tmp/airflow.db",
        "airflow-scheduler",
        "sleep",
        str(int(timeout) + 3600),
        timeout=timeout,
    )
    assert started.returncode == 0, started.stderr
    try:
        migrated = subprocess.run(
            ["docker", "exec", name, "airflow", "db", "migrate"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
        yield OwnAirflow(name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@dataclass(frozen=True)
class OwnAirflow:
    """An Airflow of a test's own (`own_airflow`): its container."""

    container: str

    def test(
        self, what: str, *args: str, env: dict[str, str], timeout: float = 600
    ) -> subprocess.CompletedProcess:
        """``airflow dags test DAG DATE`` (``what`` = "dags") or ``airflow tasks test DAG
        TASK DATE`` ("tasks"): a run of the DAG or task by Airflow itself, the real operators
        and job containers, with ``env`` over the stack's environment. Each of ``env`` goes
        by name only (``docker exec -e NAME``), its value from this process's environment:
        no value, a token least of all, in an argument."""
        if what == "dags":
            dag_id, logical = args
            days.claim(*_dags_test_days(dag_id, logical, env), f"runs {dag_id}")
        named = [part for name in env for part in ("-e", name)]
        return subprocess.run(
            ["docker", "exec", *named, self.container, "airflow", what, "test", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **env},
        )

    def xcoms(self) -> bytes:
        """Every XCom it holds, as its database stores them."""
        return subprocess.run(
            [
                "docker",
                "exec",
                self.container,
                "python3",
                "-c",
                "import sqlite3; print(sqlite3.connect('/tmp/airflow.db').execute("
                "'SELECT dag_id, task_id, run_id, value FROM xcom').fetchall())",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout


def _dags_test_days(dag_id: str, logical: str, env: dict[str, str]) -> tuple[date, date]:
    """The days a run of ``dag_id`` at ``logical`` writes: api-load's window is the one that
    ends at its date (ADPIPE_WINDOW_MINUTES long)."""
    end = datetime.fromisoformat(logical).astimezone(UTC)
    minutes = int(env.get("ADPIPE_WINDOW_MINUTES") or 60)
    start = end - timedelta(minutes=minutes) if dag_id == "api-load" else end
    return start.date(), (end - timedelta(microseconds=1)).date()


def summaries(output: str) -> list[dict]:
    """Every job SUMMARY in a run's output (each try's, as Airflow logs the job's lines), in
    order."""
    found = []
    for line in output.splitlines():
        _, marker, rest = line.partition("SUMMARY {")
        if marker:
            found.append(json.loads("{" + rest[: rest.rindex("}") + 1]))
    return found


def marked(name: str) -> str:
    """A value of setting ``name`` of its own: valid, and not its default (a test that sets
    every setting so finds each where it must arrive)."""
    from adpipe.errors import ConfigError
    from adpipe.settings import SETTINGS

    known = SETTINGS[name]
    default = known.default or ""
    candidates = [
        "29min",
        "31s",
        "2026-01-02T03:00:00Z",
        "header:X-Marked",
        "https://marked.example",
        "marked",
    ]
    try:
        number = float(default)
        candidates[:0] = [str(int(number) - 1), str(int(number) + 1), "30"]
    except ValueError:
        pass
    for candidate in candidates:
        try:
            known.parse(name, candidate)
        except ConfigError:
            continue
        if candidate != default:
            return candidate
    raise AssertionError(f"no marked value for {name}")


@contextlib.contextmanager
def webhook(port: int) -> Iterator[list[dict[str, Any]]]:
    """A webhook on 127.0.0.1:``port``, the notifier's or Alertmanager's receiver as the
    test's: yields the list of every JSON POSTed to it, in order."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    posts: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            posts.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield posts
    finally:
        server.shutdown()
        server.server_close()


def service_container(service: str) -> str:
    """The id of the stack's running container of ``service`` (compose's labels), or "" when
    none runs (a Celery worker on the LocalExecutor's stack)."""
    return subprocess.run(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={os.environ['COMPOSE_PROJECT_NAME']}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
