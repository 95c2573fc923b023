"""Benchmark: the load job's peak memory and throughput at 100k and 1M rows per window.

Serves a high-volume ad API from ``dags/api_load/scripts/extract.py`` on a spare loopback port,
backs up one window of each size with the extract_backup image, then runs the load image
three times per size and prints medians: peak RSS (from the job's summary line), seconds,
rows per second, and the ratio of the 1M window to the 100k window. Memory is bounded when
the ratio stays near 1 (the target: within 20 %). Needs the stack (make start).

    make bench
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "dags" / "api_load" / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

import extract  # noqa: E402
import helpers  # noqa: E402

helpers.load_env()

PORT = 18091
PER_HOUR = 1_000_000
RUNS = 3
START = datetime(2026, 8, 1, tzinfo=UTC)
SIZES = {"100k": timedelta(minutes=6), "1M": timedelta(hours=1)}


def job(image: str, start: datetime, end: datetime) -> dict:
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", "--env-file", str(ROOT / ".env"),
         "-e", f"AD_API_URL=http://127.0.0.1:{PORT}", "-e", "EXTRACT_PAGE_SIZE=10000",
         f"adpipe/{image}:dev", "--start", start.isoformat(), "--end", end.isoformat()],
        capture_output=True, text=True, check=False, timeout=1800)
    line = [x for x in done.stdout.splitlines() if x.startswith("SUMMARY ")]
    if done.returncode or not line:
        sys.exit(f"bench: {image} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(line[-1][len("SUMMARY "):])


def main() -> None:
    server = extract.make_server("127.0.0.1", PORT, PER_HOUR, "bench")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    results = {}
    for label, length in SIZES.items():
        end = START + length
        job("extract_backup", START, end)
        runs = [job("load", START, end) for _ in range(RUNS)]
        results[label] = {
            "rows": runs[0]["rows_written"],
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
            "seconds": statistics.median(r["seconds"] for r in runs),
        }
    server.shutdown()
    print(f"{'window':<8}{'rows':>10}{'peak RSS MB':>14}{'seconds':>10}{'rows/s':>12}")
    for label, r in results.items():
        print(f"{label:<8}{r['rows']:>10}{r['peak_rss_mb']:>14.1f}{r['seconds']:>10.2f}"
              f"{r['rows'] / r['seconds']:>12.0f}")
    ratio = results["1M"]["peak_rss_mb"] / results["100k"]["peak_rss_mb"]
    print(f"peak memory 1M / 100k: {ratio:.2f} (target <= 1.20; medians of {RUNS} runs)")
    sys.exit(0 if ratio <= 1.2 else 1)


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
