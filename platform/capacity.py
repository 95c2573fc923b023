"""`make status`'s capacity lines: how full the S3 store is and how long the disk lasts.

The numbers are the health service's (GET /capacity, with HEALTH_TOKEN): the bytes under each
prefix of the bucket from a listing it makes then (as reconcile's identity, which may only
read and list), the bytes a day written over the last week, the disk left where the S3 data
lives and the days left at that rate. The disk left where PostgreSQL's data lives is read
here, with `stat -f` in its container (what `docker exec` may do for a user in the docker
group). Each wait is bounded; a service that does not answer is named, never waited on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from stack_client import load_env

LISTING_SECONDS = 120  # a listing reads every key's name: seconds for a bucket of millions
EXEC_SECONDS = 10
PGDATA = "/var/lib/postgresql/data"  # docker-compose.yml's pgdata volume


def capacity() -> dict[str, Any]:
    """The health service's /capacity answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{os.environ['HEALTH_PORT']}/capacity",
        headers={"Authorization": f"Bearer {os.environ['HEALTH_TOKEN']}"},
    )
    with urllib.request.urlopen(request, timeout=LISTING_SECONDS) as answer:  # noqa: S310
        return json.load(answer)


def postgres_disk_free() -> int | None:
    """Bytes free for a user who is not root on the disk of PostgreSQL's data; None when its
    container is not running or does not answer in EXEC_SECONDS."""
    project = os.environ.get("COMPOSE_PROJECT_NAME", "")
    try:
        found = subprocess.run(  # noqa: S603 - fixed arguments
            [  # noqa: S607
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={project}",
                "--filter",
                "label=com.docker.compose.service=postgres",
            ],
            capture_output=True,
            text=True,
            timeout=EXEC_SECONDS,
            check=False,
        ).stdout.split()
        if not found:
            return None
        stat = subprocess.run(  # noqa: S603 - fixed arguments
            ["docker", "exec", found[0], "stat", "-f", "-c", "%a %S", PGDATA],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=EXEC_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    blocks, size = ([*stat.stdout.split(), "", ""])[:2]
    return int(blocks) * int(size) if stat.returncode == 0 and blocks.isdigit() else None


def size(n: float) -> str:
    """``n`` bytes as a person reads them (1,000-based, as `df -H`)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def report(found: dict[str, Any], postgres_free: int | None, alert_days: str) -> list[str]:
    """The lines `make status` prints for ``found`` (a /capacity answer)."""
    lines = [f"\nS3 STORE s3://{found['bucket']} (listed {found['listed_at'][:19]}Z)"]
    for name, prefix in found["prefixes"].items():
        lines.append(
            f"  {name + '/':<12} {prefix['bytes']:>16,} bytes  {size(prefix['bytes']):>9}"
            f"  {prefix['objects']:>10,} objects"
        )
    rate = found["bytes_per_day"]
    lines.append(f"  growth       {size(rate)}/day over the last {found['growth_days']} days")
    free = found["disk_free_bytes"]
    lines.append(
        f"  disk left    {size(free)} where the S3 data lives"
        if free is not None
        else "  disk left    unknown where the S3 data lives: the health service has no "
        "/s3data (docker-compose.yml's health service mounts s3data there, read-only)"
    )
    lines.append(
        f"  disk left    {size(postgres_free)} where PostgreSQL's data lives"
        if postgres_free is not None
        else "  disk left    unknown where PostgreSQL's data lives: its container did not "
        "answer (make logs SERVICE=postgres)"
    )
    left = found["days_left"]
    if left is not None:
        lines.append(
            f"  days left    {left:,.0f} at the last week's rate"
            f" (the alarm fires below {alert_days}: S3_ALERT_DAYS_LEFT)"
        )
    elif rate <= 0:
        lines.append("  days left    no growth in the last week")
    return lines


def main() -> int:
    load_env()
    try:
        found = capacity()
    except (OSError, ValueError) as exc:
        reason = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else str(exc)
        print(
            f"\nS3 STORE: the health service did not say how full it is ({reason}): "
            "make logs SERVICE=health",
            file=sys.stderr,
        )
        return 0  # the services' table above is the status; this part is told, not failed
    alert_days = os.environ.get("S3_ALERT_DAYS_LEFT") or "30"
    print("\n".join(report(found, postgres_disk_free(), alert_days)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
