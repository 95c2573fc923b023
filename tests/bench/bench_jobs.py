"""Benchmark: the load and archive jobs' peak memory and throughput at 100k and 1M rows.

Serves a high-volume ad API from ``dags/api_load/scripts/extract.py`` on a spare loopback port,
backs up one window of each size (on two different days) with the extract_backup image, runs
the load image three times per size, then archives (and restores) each day three times, and
prints medians: peak RSS (from the jobs' summary lines), seconds, rows per second, and the
ratio of the 1M case to the 100k case. Memory is bounded when the ratio stays near 1 (the
target: within 20 %). Needs the stack (make start).

    make bench
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "dags" / "api_load" / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "platform"))

import extract  # noqa: E402
import helpers  # noqa: E402

helpers.load_env()

PORT = 18091
PER_HOUR = 1_000_000
RUNS = 3
SIZES = {
    "100k": (datetime(2026, 8, 1, tzinfo=UTC), timedelta(minutes=6)),
    "1M": (datetime(2026, 8, 3, tzinfo=UTC), timedelta(hours=1)),
}


def job(image: str, *args: str) -> dict:
    done = helpers.docker_run(
        f"adpipe/{image}:dev",
        *args,
        env={
            "AD_API_URL": f"http://127.0.0.1:{PORT}",
            "EXTRACT_PAGE_SIZE": "10000",
            "ARCHIVE_RETENTION_DAYS": "30",
        },
        timeout=1800,
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("SUMMARY ")]
    if done.returncode or not line:
        sys.exit(f"bench: {image} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(line[-1][len("SUMMARY ") :])


def medians(runs: list[dict], rows_key: str) -> dict:
    return {
        "rows": runs[0][rows_key],
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "seconds": statistics.median(r["seconds"] for r in runs),
    }


def report(title: str, results: dict) -> float:
    print(f"\n{title}\n{'case':<8}{'rows':>10}{'peak RSS MB':>14}{'seconds':>10}{'rows/s':>12}")
    for label, r in results.items():
        print(
            f"{label:<8}{r['rows']:>10}{r['peak_rss_mb']:>14.1f}{r['seconds']:>10.2f}"
            f"{r['rows'] / r['seconds']:>12.0f}"
        )
    ratio = results["1M"]["peak_rss_mb"] / results["100k"]["peak_rss_mb"]
    print(f"peak memory 1M / 100k: {ratio:.2f} (target <= 1.20; medians of {RUNS} runs)")
    return ratio


def main() -> None:
    server = extract.make_server("127.0.0.1", PORT, PER_HOUR, "bench")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    first, last = SIZES["100k"][0].date(), SIZES["1M"][0].date()
    job("archive", "restore", "--from", first.isoformat(), "--to", last.isoformat())
    loads, archives = {}, {}
    for label, (start, length) in SIZES.items():
        window = ("--start", start.isoformat(), "--end", (start + length).isoformat())
        job("extract_backup", *window)
        loads[label] = medians([job("load", *window) for _ in range(RUNS)], "rows_written")
    for label, (start, _) in SIZES.items():
        day = start.date()
        runs = []
        for _ in range(RUNS):
            job("archive", "restore", "--from", day.isoformat(), "--to", day.isoformat())
            runs.append(job("archive", "--date", (day + timedelta(days=31)).isoformat()))
        archives[label] = medians(runs, "rows_archived")
        archives[label]["rows"] = runs[-1]["rows_archived"]
    server.shutdown()
    ratios = [
        report("load (backup -> ad_impressions)", loads),
        report("archive (ad_impressions -> Parquet in S3)", archives),
    ]
    sys.exit(0 if max(ratios) <= 1.2 else 1)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
