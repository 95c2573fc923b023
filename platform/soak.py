"""make soak: the stack under a long run, outside CI. Through the scheduler (Airflow's backfill
API), 200 hourly api-load intervals and the daily archive runs that move those days out, day
by day (a day's hours, then the archive run that moves that day), then reconcile over them.
Meanwhile it samples the resident anonymous memory of every long-lived service (its cgroup's
heap and stacks; `docker stats` where that is not readable) and compares the median of the
first quarter of the samples with the last quarter's.

Exits 0 only when every run succeeded, reconcile balances (no gap, no row lost or doubled)
and no service's memory grew beyond 1.2x, or, for a service whose runtime is given a soft
bound (GOMEMLIMIT: SeaweedFS), beyond that bound: its collector lets the heap use the room up
to it by design (SeaweedFS went from 102 to 244 MB over 200 hours under a 512 MiB bound), and
only memory it cannot free, a leak, passes it. The hours lie 48 days back and more, so that the
archive runs (dated 31 days after each day) move them; standard library only.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import backfill
from stack_client import ROOT, job_argv, load_env

HOURS = int(os.environ.get("SOAK_HOURS", "200"))
GROWTH_LIMIT = 1.2
SAMPLE_SECONDS = 10
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "kB": 1000, "MB": 10**6}


def resident(text: str) -> float:
    """``123.4MiB / 7.6GiB`` -> bytes used."""
    used = text.split("/")[0].strip()
    for unit in sorted(UNITS, key=len, reverse=True):
        if used.endswith(unit):
            return float(used[: -len(unit)]) * UNITS[unit]
    return float(used)


def service_of(project: str, container: str) -> str | None:
    """The service a container of the project runs (its name less the project and the
    replica number), or None for a container of another project."""
    if not container.startswith(project):
        return None
    return container.removeprefix(project).strip("_-").rsplit("_", 1)[0]


def sample(project: str, samples: dict[str, list[float]], stop: threading.Event) -> None:
    while not stop.is_set():
        out = subprocess.run(
            [  # noqa: S607 - docker from PATH
                "docker",
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}}\t{{.MemUsage}}",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for line in out.splitlines():
            name, _, usage = line.partition("\t")
            if service := service_of(project, name):
                samples.setdefault(service, []).append(resident(usage))
        stop.wait(SAMPLE_SECONDS)


def soft_bounds(project: str) -> dict[str, float]:
    """Each service's GOMEMLIMIT, in bytes, where its container sets one."""
    bounds = {}
    names = subprocess.run(
        ["docker", "ps", "--format", "{{.Names}}"],  # noqa: S607 - docker from PATH
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    for name in names:
        if not (service := service_of(project, name)):
            continue
        env = subprocess.run(  # noqa: S603 - fixed arguments
            ["docker", "inspect", "--format", "{{json .Config.Env}}", name],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for item in json.loads(env or "[]"):
            if item.startswith("GOMEMLIMIT="):
                bounds[service] = resident(item.partition("=")[2])
    return bounds


def main() -> int:
    load_env()
    project = os.environ["COMPOSE_PROJECT_NAME"]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=48)
    last = first + timedelta(hours=HOURS - 1)
    days = sorted({(first + timedelta(hours=h)).date() for h in range(HOURS)})
    samples: dict[str, list[float]] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(project, samples, stop), daemon=True)
    started = time.monotonic()
    sampler.start()
    loads = archives = 0
    try:
        # day by day, as the scheduler would: the day's hours, then the archive run that
        # moves that day out (dated 31 days after it), so every quarter holds the same mix
        print(f"soak: {HOURS} api-load hours from {first:%Y-%m-%dT%H:%M}Z, day by day", flush=True)
        for day in days:
            low = max(first, datetime(day.year, day.month, day.day, tzinfo=UTC))
            high = min(last, low.replace(hour=23))
            loads |= backfill.main(
                [
                    "--dag",
                    "api-load",
                    "--from",
                    low.isoformat(),
                    "--to",
                    high.isoformat(),
                    "--reprocess",
                    "completed",
                    "--timeout",
                    "3600",
                ]
            )
            # the run at 02:00 thirty days later ends the next day: its cutoff is the day after
            point = f"{day + timedelta(days=30)}T02:00"
            archive_args = ["--dag", "archive", "--from", point, "--to", point]
            archives |= backfill.main([*archive_args, "--reprocess", "completed"])
    finally:
        stop.set()
        sampler.join()
    reconcile = subprocess.run(  # noqa: S603 - fixed arguments
        job_argv(
            "adpipe/archive:dev",
            ["reconcile", "--from", days[0].isoformat(), "--to", days[-1].isoformat()],
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    print(reconcile.stdout.split("SUMMARY")[0].rstrip())
    growth, grew = {}, []
    bounds = soft_bounds(project)
    print(f"\n{'service':<26}{'first quarter MB':>18}{'last quarter MB':>18}{'ratio':>8}  bound")
    for service, values in sorted(samples.items()):
        quarter = max(1, len(values) // 4)
        early, late = statistics.median(values[:quarter]), statistics.median(values[-quarter:])
        growth[service] = late / early if early else 1.0
        bound = bounds.get(service)
        if (late > bound) if bound else (growth[service] > GROWTH_LIMIT):
            grew.append(service)
        limit = f"{bound / 2**20:.0f} MB" if bound else f"{GROWTH_LIMIT}x"
        print(
            f"{service:<26}{early / 2**20:>18.1f}{late / 2**20:>18.1f}"
            f"{growth[service]:>8.2f}  {limit}"
        )
    figures = {
        "hours": HOURS,
        "load_runs_exit": loads,
        "archive_runs_exit": archives,
        "reconcile_exit": reconcile.returncode,
        "total_seconds": round(time.monotonic() - started),
        "memory_growth": {k: round(v, 3) for k, v in growth.items()},
    }
    (ROOT / ".state" / "soak.json").write_text(json.dumps(figures, indent=1))
    print(f"\nsoak: {json.dumps(figures)}")
    if grew:
        print(f"soak: memory grew beyond its bound: {', '.join(grew)}", file=sys.stderr)
    return 0 if not (loads or archives or reconcile.returncode or grew) else 1


if __name__ == "__main__":
    sys.exit(main())
