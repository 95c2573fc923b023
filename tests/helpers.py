"""Helpers over the real services: S3 (boto3), the warehouse (psycopg2), Airflow's REST API."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import psycopg2
from stack_client import ROOT, Airflow, load_env, login_status  # noqa: F401 - for the tests

ENV_FILE = ROOT / ".env"


def docker_run(
    image: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    detach: bool = False,
    name: str | None = None,
    entrypoint: str | None = None,
) -> subprocess.CompletedProcess:
    """``docker run --rm --network host --env-file .env <image> <args>``, as a user would."""
    cmd = ["docker", "run", "--rm", "--network", "host", "--env-file", str(ENV_FILE)]
    if detach:
        cmd.append("-d")
    if name:
        cmd += ["--name", name]
    for key, value in (env or {}).items():
        cmd += ["-e", f"{key}={value}"]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    cmd += [image, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


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


def start_detached(image: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Start a job container in the background; returns its name (for kill, logs, wait)."""
    name = f"{image.split('/')[-1].split(':')[0]}-{uuid.uuid4().hex[:8]}"
    done = docker_run(image, *args, env=env, detach=True, name=name)
    assert done.returncode == 0, done.stderr
    return name


def wait_exit(name: str, timeout: float = 300) -> int:
    """The exit code of a detached container, once it ends."""
    done = subprocess.run(
        ["docker", "wait", name], capture_output=True, text=True, timeout=timeout, check=True
    )
    return int(done.stdout.strip())


def stack(action: str) -> subprocess.CompletedProcess:
    """``platform/stack.sh start|stop``: start waits until every service is healthy."""
    return subprocess.run(
        ["bash", str(ROOT / "platform" / "stack.sh"), action],
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
        stack("start")


def restore_days(first: str, last: str) -> None:
    """Bring archived days back, so a test may load their windows again (a reload of an
    archived window is refused)."""
    done = docker_run("adpipe/archive:dev", "restore", "--from", first, "--to", last)
    assert done.returncode == 0, done.stderr


def compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "platform" / "compose.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def s3() -> Any:
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        region_name=os.environ["AWS_DEFAULT_REGION"],
    )


def bucket() -> str:
    return os.environ.get("S3_BUCKET", "ad-data")


def keys(prefix: str) -> list[str]:
    found = []
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket(), Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return sorted(found)


def get(key: str) -> bytes:
    return s3().get_object(Bucket=bucket(), Key=key)["Body"].read()


def warehouse() -> Any:
    return psycopg2.connect(os.environ["WAREHOUSE_DSN"])


def query(sql: str, params: tuple = ()) -> list[tuple]:
    conn = warehouse()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def table_exists(name: str) -> bool:
    return query("SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0]


def window_checksum(start: datetime, end: datetime) -> tuple[int, str]:
    """(rows, md5 over the ordered rows) of ad_impressions in the window, load metadata aside."""
    return query(
        "SELECT count(*), coalesce(md5(string_agg(r::text, '|' ORDER BY impression_id)), '') "
        "FROM (SELECT impression_id, ad_id, campaign_id, advertiser_id, placement, device,"
        " country, shown_at, cost_micros, currency, clicked FROM ad_impressions"
        " WHERE shown_at >= %s AND shown_at < %s) r",
        (start, end),
    )[0]


def api_pages(start: datetime, end: datetime, limit: int = 1000) -> list[bytes]:
    """Every page body the ad API serves for the window, fetched here, not by the job."""
    base = os.environ["AD_API_URL"]
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


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gunzip(data: bytes) -> bytes:
    return gzip.decompress(data)
