"""How full the S3 store is: the bytes under each prefix are what a listing of it sums,
`make status` prints the health service's listing, and with the threshold above the days
left, the capacity alarm reaches the webhook through Prometheus and Alertmanager (throwaway
ones, on ports of their own: the stack's are left alone)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import helpers
import pytest
from adpipe.settings import Settings
from adpipe.storage import Bucket
from adpipe_archive.health import usage

pytestmark = pytest.mark.usefixtures("stack")

# Objects of the test's own under each top prefix, but beside the tables' keys (no job,
# restore or reconcile lists them, and the archive's orphan checks of the tests running
# beside this one see none)
RUN = uuid.uuid4().hex[:12]
PREFIXES = tuple(f"{top}capacity-test/{RUN}/" for top in ("backup/", "quarantine/", "archive/"))
SIZES = {PREFIXES[0]: [1000, 2345], PREFIXES[1]: [17], PREFIXES[2]: [40_000, 1, 999]}
ARCHIVE_IMAGE = "adpipe/archive:dev"
MONITOR_IMAGE = "adpipe/monitor:dev"
HEALTH_PORT, PROMETHEUS_PORT, ALERTMANAGER_PORT, WEBHOOK_PORT = 18111, 18112, 18113, 18114
ALERT = "AdpipeS3DiskFilling"
FIRE_WITHIN = 120  # two scrapes and evaluations at 3 s, group_wait, and slack
MONITORS = ("capacity-test-health", "capacity-test-prometheus", "capacity-test-alertmanager")


@pytest.fixture(scope="module")
def own_objects() -> Iterator[dict[str, int]]:
    """Objects of known sizes under each prefix of the module's day; bytes per prefix."""
    s3, written = helpers.s3(), []
    for prefix, sizes in SIZES.items():
        for n, length in enumerate(sizes):
            key = f"{prefix}capacity-{n}.bin"
            s3.put_object(Bucket=helpers.bucket(), Key=key, Body=os.urandom(length))
            written.append(key)
    yield {prefix: sum(sizes) for prefix, sizes in SIZES.items()}
    s3.delete_objects(
        Bucket=helpers.bucket(), Delete={"Objects": [{"Key": key} for key in written]}
    )


def listed(prefix: str) -> tuple[int, int]:
    """Bytes and objects under ``prefix``, from the test's own listing."""
    found = [0, 0]
    pages = (
        helpers.s3()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=helpers.bucket(), Prefix=prefix)
    )
    for page in pages:
        for item in page.get("Contents", []):
            found[0] += item["Size"]
            found[1] += 1
    return found[0], found[1]


def test_each_prefix_counts_what_a_listing_of_it_sums(own_objects: dict[str, int]) -> None:
    found = usage(Bucket(Settings("reconcile")), PREFIXES, datetime.now(UTC))
    for prefix, total in own_objects.items():
        name = prefix.rstrip("/")
        assert found.bytes[name] == total == listed(prefix)[0], name
        assert found.objects[name] == len(SIZES[prefix]) == listed(prefix)[1], name
    # written a moment ago: all of it is the last week's growth
    assert found.written_last_week == sum(own_objects.values())
    assert found.bytes_per_day == sum(own_objects.values()) / 7


def run(*argv: str, env: dict[str, str]) -> None:
    """A detached container of the test's; its values reach docker through the environment
    (only the names are in its arguments)."""
    names = [arg for name in env for arg in ("-e", name)]
    done = subprocess.run(
        ["docker", "run", "-d", "--network", "host", *names, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr


def s3_volume() -> str:
    """The stack's S3 data volume, as its container mounts it."""
    found = helpers.service_container("s3")
    return subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}',
            found,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def health(own_objects: dict[str, int]) -> Iterator[str]:
    """The health service of the image under test, as compose runs it (reconcile's identity,
    the S3 volume read-only at /s3data), on a port of the test's."""
    subprocess.run(["docker", "rm", "-f", *MONITORS], capture_output=True, check=False)
    env_file = str(helpers.job_env_file(ARCHIVE_IMAGE, ["health"]))
    mount = f"{s3_volume()}:/s3data:ro"
    run(
        *("--name", MONITORS[0], "--env-file", env_file, "-v", mount, ARCHIVE_IMAGE, "health"),
        env={"HEALTH_PORT": str(HEALTH_PORT)},
    )
    try:
        helpers.wait_for_log(MONITORS[0], "health: serving on")
        yield f"http://127.0.0.1:{HEALTH_PORT}"
    finally:
        subprocess.run(["docker", "rm", "-f", *MONITORS], capture_output=True, check=False)


def test_make_status_prints_the_bytes_a_listing_of_each_prefix_sums(health: str) -> None:
    """Other tests write beside this one: the printed bytes are compared with listings made
    just before and just after, on an attempt where those two agree."""
    env = {**os.environ, "HEALTH_PORT": str(HEALTH_PORT)}
    for _ in range(10):
        before = {prefix: listed(prefix) for prefix in ("backup/", "archive/", "quarantine/")}
        done = subprocess.run(
            [sys.executable, str(helpers.ROOT / "platform" / "capacity.py")],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env=env,
        )
        after = {prefix: listed(prefix) for prefix in before}
        if before == after:
            break
    else:
        pytest.fail("the bucket changed during every one of 10 listings")
    assert done.returncode == 0, done.stderr
    for prefix, (size, objects) in before.items():
        line = re.search(rf"^  {prefix}\s+([\d,]+) bytes .*?([\d,]+) objects$", done.stdout, re.M)
        assert line, done.stdout
        assert (int(line[1].replace(",", "")), int(line[2].replace(",", ""))) == (size, objects)
    assert re.search(r"disk left +[\d.]+ [kMGT]?B where the S3 data lives", done.stdout)
    assert re.search(r"days left +[\d,]+ at the last week's rate", done.stdout), done.stdout


def firing(posts: list[dict]) -> list[dict]:
    """The capacity alarm's firing alerts among what the webhook received."""
    return [
        alert
        for message in posts
        for alert in message.get("alerts", [])
        if alert["labels"].get("alertname") == ALERT and alert["status"] == "firing"
    ]


def days_left(health: str) -> float:
    request = urllib.request.Request(  # noqa: S310 - the test's own health service
        f"{health}/capacity", headers={"Authorization": f"Bearer {os.environ['HEALTH_TOKEN']}"}
    )
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
        return json.load(answer)["days_left"]


def test_the_capacity_alarm_reaches_the_webhook_when_fewer_days_are_left(health: str) -> None:
    left = days_left(health)  # the module's objects are the last week's growth: never None
    threshold = str(int(left) + 1)
    with helpers.webhook(WEBHOOK_PORT) as posts:
        monitor_env = {
            "HEALTH_PORT": str(HEALTH_PORT),
            "HEALTH_TOKEN": os.environ["HEALTH_TOKEN"],
            "PROMETHEUS_PORT": str(PROMETHEUS_PORT),
            "ALERTMANAGER_PORT": str(ALERTMANAGER_PORT),
            "MONITOR_PASSWORD": os.environ["MONITOR_PASSWORD"],
            "ALARM_NO_LOAD_MINUTES": "100000",
            "MONITOR_INTERVAL_SECONDS": "3",
            "S3_ALERT_DAYS_LEFT": threshold,
            "ALERT_WEBHOOK": f"http://127.0.0.1:{WEBHOOK_PORT}/alerts",
        }
        run("--name", MONITORS[2], MONITOR_IMAGE, "alertmanager", env=monitor_env)
        run("--name", MONITORS[1], MONITOR_IMAGE, "prometheus", env=monitor_env)
        deadline = time.monotonic() + FIRE_WITHIN
        while not firing(posts):
            assert time.monotonic() < deadline, f"no {ALERT} in {FIRE_WITHIN} s: {posts}"
            time.sleep(2)
        alert = firing(posts)[0]
        assert f"fewer than {threshold} days" in alert["annotations"]["summary"]
