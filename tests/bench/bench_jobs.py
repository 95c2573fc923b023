"""make bench: adpipe's jobs against what a data engineer would otherwise use, on the same
generated rows, in the same run, side by side. Needs the stack (make start).

Never touches the data: the jobs run (with their own identities) against a database of their
own (``adpipe_bench``, migrated like the warehouse) and a bucket of their own
(``<S3_BUCKET>-bench``); state is reset with SQL between repetitions. The warehouse's tables
and the data bucket are fingerprinted before and after, and a difference fails the bench.

Contenders (medians of RUNS repetitions; peak RSS of each process):
    load       adpipe's load image (window backup -> ad_impressions)
               copy-ceiling: server-side COPY of the same valid rows from a CSV file into the
               same table (the ceiling)
               insert_rows: Airflow's PostgresHook.insert_rows of the same rows
    api-load   adpipe's extract_backup + load images end to end, containers included
               (the API's pages are rendered once before, so the mock's work is excluded)
    archive    adpipe's archive image (export, verify, delete)
Results go to bench/results/latest.json (full mode) or bench/results/quick.json, and a
table with every ratio and goal. Full mode exits 1 when a goal is missed; ``--quick`` (small
sizes, one repetition) checks the bench runs and leaves the data alone, and gates nothing.

    make bench            # 100k and 1M rows, 3 repetitions
    make bench QUICK=1    # 20k rows, 1 repetition (what make test runs)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "dags" / "api_load" / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "platform"))

import extract  # noqa: E402
import helpers  # noqa: E402

helpers.load_env()

PORT = 18091
PER_HOUR = 1_000_000  # the bench API's slots per hour: a minute holds about 16,700 rows
BENCH_DB = "adpipe_bench"
BUCKET = os.environ.get("BENCH_S3_BUCKET", f"{os.environ.get('S3_BUCKET', 'ad-data')}-bench")
FULL = {
    "100k": (datetime(2026, 8, 1, tzinfo=UTC), timedelta(minutes=6)),
    "1M": (datetime(2026, 8, 3, tzinfo=UTC), timedelta(hours=1)),
}
QUICK = {"20k": (datetime(2026, 8, 5, tzinfo=UTC), timedelta(seconds=72))}
# a constant: the statements below only ever name these columns
COLUMNS = (
    "impression_id, ad_id, campaign_id, advertiser_id, placement, device, country, shown_at, "
    "cost_micros, currency, clicked, load_run_id, loaded_at"
)
EXPORT = f"COPY (SELECT {COLUMNS} FROM ad_impressions) TO STDOUT WITH (FORMAT csv)"  # noqa: S608
IMPORT = f"COPY ad_impressions ({COLUMNS}) FROM '/tmp/bench.csv' WITH (FORMAT csv)"
# (job, contender, reference, least ratio of rows/s): the goals
GOALS = [
    ("load", "adpipe", "copy-ceiling", 0.5),
    ("api-load", "adpipe", "copy-ceiling", 0.35),
    ("api-load", "adpipe", "insert_rows", 2.5),
]


def bench_dsn(name: str) -> str:
    """A DSN of .env, naming the bench's database instead of the warehouse."""
    base, _, rest = os.environ[name].rpartition("/")
    options = rest.partition("?")[2]
    return f"{base}/{BENCH_DB}" + (f"?{options}" if options else "")


ENV = {
    "WAREHOUSE_DSN": bench_dsn("WAREHOUSE_DSN"),
    "LOAD_WAREHOUSE_DSN": bench_dsn("LOAD_WAREHOUSE_DSN"),
    "ARCHIVE_WAREHOUSE_DSN": bench_dsn("ARCHIVE_WAREHOUSE_DSN"),
    "WAREHOUSE_OWNER_DSN": bench_dsn("WAREHOUSE_OWNER_DSN"),
    "S3_BUCKET": BUCKET,
    "AD_API_URL": f"http://127.0.0.1:{PORT}",
    "EXTRACT_PAGE_SIZE": "10000",
    "ARCHIVE_RETENTION_DAYS": "30",
    "LOAD_MAX_SHRINK_SHARE": "1",
}


def job(image: str, *args: str) -> dict[str, Any]:
    """Run a job image on the bench's database and bucket; its SUMMARY, plus wall seconds."""
    began = time.monotonic()
    done = helpers.docker_run(f"adpipe/{image}:dev", *args, env=ENV, timeout=3600)
    wall = time.monotonic() - began
    line = [x for x in done.stdout.splitlines() if x.startswith("SUMMARY ")]
    if done.returncode or not line:
        sys.exit(f"bench: {image} {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return {**json.loads(line[-1][len("SUMMARY ") :]), "wall": wall}


def owner_sql(statement: str, params: tuple = ()) -> list[tuple]:
    return helpers.query(statement, params, dsn=ENV["WAREHOUSE_OWNER_DSN"])


def setup() -> None:
    """The bench's database (as the superuser, owned by the warehouse's owner) and schema."""
    admin = helpers.superuser()
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,))
            if not cur.fetchone():
                owner = os.environ["WAREHOUSE_USER"].replace('"', '""')
                cur.execute(f'CREATE DATABASE {BENCH_DB} OWNER "{owner}"')
    finally:
        admin.close()
    job("archive", "migrate")


def reset(*, backups: tuple[datetime, datetime] | None = None) -> None:
    """Empty the bench's tables, its archive and quarantine (and a window's backup)."""
    owner_sql("TRUNCATE ad_impressions, load_runs, archive_manifest")
    client = helpers.s3()
    prefixes = ["archive/", "quarantine/"]
    if backups:
        prefixes.append(helpers.backup_prefix(*backups))
    for prefix in prefixes:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=BUCKET, Key=item["Key"])


def fingerprint() -> dict[str, Any]:
    """What the bench must leave alone: the warehouse's tables and the data bucket."""
    counts = helpers.query(
        "SELECT (SELECT count(*) FROM ad_impressions), (SELECT count(*) FROM load_runs), "
        "(SELECT coalesce(max(load_run_id), 0) FROM load_runs), "
        "(SELECT count(*) FROM archive_manifest)"
    )[0]
    objects = {}
    client = helpers.s3()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=helpers.bucket()):
        objects.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return {"tables": list(counts), "objects": objects}


def insert_rows(csv_path: str) -> dict[str, Any]:
    """Airflow's PostgresHook.insert_rows of the CSV's rows, in a child process (its RSS)."""
    program = f"""
import csv, json, resource, time, os
from airflow.providers.postgres.hooks.postgres import PostgresHook
os.environ["AIRFLOW_CONN_BENCH"] = {ENV["WAREHOUSE_OWNER_DSN"]!r}
columns = {COLUMNS!r}.split(", ")
def rows():
    with open({csv_path!r}, newline="") as f:
        yield from csv.reader(f)
began = time.monotonic()
PostgresHook(postgres_conn_id="bench").insert_rows(
    "ad_impressions", rows(), target_fields=columns, commit_every=5000)
print(json.dumps({{"seconds": time.monotonic() - began,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    if done.returncode:
        sys.exit(f"bench: insert_rows failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def copy_ceiling(csv_path: str) -> dict[str, Any]:
    """Server-side COPY of the CSV into ad_impressions, as the superuser (the file is in
    the PostgreSQL container): the fastest way in, with no validation at all."""
    container = helpers.compose("ps", "-q", "postgres").stdout.strip()
    subprocess.run(["docker", "cp", csv_path, f"{container}:/tmp/bench.csv"], check=True)
    subprocess.run(["docker", "exec", container, "chmod", "644", "/tmp/bench.csv"], check=True)
    conn = helpers.superuser(BENCH_DB)
    conn.autocommit = False
    try:
        began = time.monotonic()
        with conn, conn.cursor() as cur:
            cur.execute(IMPORT)
        return {"seconds": time.monotonic() - began, "peak_rss_mb": None}
    finally:
        conn.close()


def export_rows(csv_path: str) -> int:
    """The valid rows the load wrote, as CSV, for the contenders to load the same rows."""
    conn = helpers.warehouse(ENV["WAREHOUSE_OWNER_DSN"])
    try:
        with conn.cursor() as cur, open(csv_path, "w") as out:
            cur.copy_expert(EXPORT, out)
            cur.execute("SELECT count(*) FROM ad_impressions")
            return cur.fetchone()[0]
    finally:
        conn.close()


def median_of(runs: list[dict[str, Any]], rows: int, seconds: str = "seconds") -> dict[str, Any]:
    took = statistics.median(r[seconds] for r in runs)
    peaks = [r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb") is not None]
    return {
        "rows": rows,
        "seconds": round(took, 3),
        "rows_per_s": round(rows / took),
        "peak_rss_mb": round(statistics.median(peaks), 1) if peaks else None,
    }


def run_size(label: str, start: datetime, length: timedelta, runs: int) -> list[dict[str, Any]]:
    window = ("--start", start.isoformat(), "--end", (start + length).isoformat())
    results = []

    def add(job_name: str, contender: str, figures: dict[str, Any], **extra: Any) -> None:
        results.append({"job": job_name, "size": label, "contender": contender, **figures, **extra})
        print(f"bench: {label} {job_name} {contender}: {figures['rows_per_s']} rows/s", flush=True)

    # api-load end to end: a fresh backup and a fresh table each time
    e2e = []
    for _ in range(runs):
        reset(backups=(start, start + length))
        extracted, loaded = job("extract_backup", *window), job("load", *window)
        e2e.append(
            {
                "seconds": extracted["wall"] + loaded["wall"],
                "jobs_seconds": extracted["seconds"] + loaded["seconds"],
                "peak_rss_mb": max(extracted["peak_rss_mb"], loaded["peak_rss_mb"]),
            }
        )
    rows = loaded["rows_written"]
    inside = statistics.median(r["jobs_seconds"] for r in e2e)
    add(
        "api-load",
        "adpipe",
        median_of(e2e, rows),
        rows_per_s_without_containers=round(rows / inside),
    )
    # the load alone, from the backup just made
    loads = []
    for _ in range(runs):
        reset()
        loads.append(job("load", *window))
    add("load", "adpipe", median_of(loads, rows))
    csv_path = str(ROOT / ".state" / "bench-rows.csv")
    same = export_rows(csv_path)
    for name, contender in (("copy-ceiling", copy_ceiling), ("insert_rows", insert_rows)):
        timings = []
        for _ in range(runs):
            reset()
            timings.append(contender(csv_path))
        figures = median_of(timings, same)
        add("load", name, figures)
        add("api-load", name, figures)
    # the archive: the day loaded (not timed), then moved out
    archives = []
    for _ in range(runs):
        reset()
        job("load", *window)
        archives.append(job("archive", "run", "--date", f"{start.date() + timedelta(days=31)}"))
    add("archive", "adpipe", median_of(archives, archives[-1]["rows_archived"]))
    os.unlink(csv_path)
    return results


def table(results: list[dict[str, Any]]) -> list[str]:
    """Print every result and goal; the goals missed."""
    print(f"\n{'job':<10}{'size':>6}  {'contender':<14}{'rows':>10}{'rows/s':>10}{'peak MB':>9}")
    for r in results:
        peak = f"{r['peak_rss_mb']:.1f}" if r["peak_rss_mb"] is not None else "-"
        print(
            f"{r['job']:<10}{r['size']:>6}  {r['contender']:<14}{r['rows']:>10}"
            f"{r['rows_per_s']:>10}{peak:>9}"
        )
    missed = []
    print(f"\n{'goal':<44}{'ratio':>8}{'goal':>7}  met?")
    for job_name, contender, reference, least in GOALS:
        for size in sorted({r["size"] for r in results}):
            mine = [
                r
                for r in results
                if (r["job"], r["contender"], r["size"]) == (job_name, contender, size)
            ]
            ref = [
                r
                for r in results
                if (r["job"], r["contender"], r["size"]) == (job_name, reference, size)
            ]
            if not mine or not ref:
                continue
            ratio = mine[0]["rows_per_s"] / ref[0]["rows_per_s"]
            met = ratio >= least
            label = f"{job_name} {size}: {contender} / {reference}"
            verdict = "yes" if met else f"NO, short by {least / ratio:.1f}x"
            print(f"{label:<44}{ratio:>8.2f}{least:>7.2f}  {verdict}")
            if not met:
                missed.append(label)
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k rows, one repetition")
    args = parser.parse_args()
    sizes, runs = (QUICK, 1) if args.quick else (FULL, 3)
    before = fingerprint()
    server = extract.make_server("127.0.0.1", PORT, PER_HOUR, "bench")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        setup()
        results = []
        for label, (start, length) in sizes.items():
            results += run_size(label, start, length, runs)
    finally:
        server.shutdown()
    after = fingerprint()
    machine = {
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "repetitions": runs,
    }
    out = ROOT / "bench" / "results" / ("quick.json" if args.quick else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=1) + "\n")
    missed = table(results)
    print(f"\nbench: results in {out.relative_to(ROOT)}")
    if before != after:
        print("bench: the warehouse or the data bucket changed during the bench", file=sys.stderr)
        return 3
    if missed and not args.quick:
        print(f"bench: {len(missed)} goals missed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
