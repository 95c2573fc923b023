"""make bench: adpipe's jobs against what a data engineer would otherwise use, on the same
generated rows, in the same run, side by side. Needs the stack (make start).

Never touches the data: the jobs run (with their own identities) against a database of their
own (``adpipe_bench``, migrated like the warehouse) and a bucket of their own
(``<S3_BUCKET>-bench``); state is reset with SQL between repetitions. The warehouse's tables
and the data bucket are fingerprinted before and after: an object or committed row changed
or gone (but for an archive object a restore put back), or anything added for the bench's
days (August 2026), fails the bench (exit 3).
The product's DAGs may go on running meanwhile.

Contenders, on the same rows (medians of the repetitions; peak RSS of each process):
    api-load   adpipe: the extract_backup + load images end to end, containers included (and
               reported without them); the API's pages are rendered into a cache by an
               untimed first extract, so the mock's own work is excluded
               dlt-rest-api: dlt's rest_api source paging the same API by its cursor,
               merged on impression_id into PostgreSQL
    extract    adpipe: the extract_backup image alone (its own seconds, as in its SUMMARY)
               fetch-ceiling: a plain keep-alive client reading the same pages, no work
    load       adpipe: the load image alone (window backup -> ad_impressions)
               binary-copy-ceiling: the same valid rows from Arrow by binary COPY (ADBC)
                 into an unindexed table: a load that never formats text
    both       copy-ceiling: server-side COPY of the same valid rows from a CSV file (no
               validation at all: the ceiling)
               insert_rows: Airflow's PostgresHook.insert_rows
               dlt-merge: dlt, write_disposition="merge" on impression_id, same table shape
    archive    adpipe: the archive image (export, verify, delete)
               sql_to_s3: Airflow's SqlToS3Operator, Parquet (it deletes nothing)
               export-only: ADBC record batches to Parquet, uploaded (the near limit)
The contenders run as child processes (bench/contenders.py) from the bench group of
the lock, never from a job image. insert_rows, dlt-merge, dlt-rest-api and sql_to_s3 run at
100k and 1M rows only: at 10M rows each would take most of an hour per repetition.

Results go to bench/results/latest.json (full mode) or bench/results/quick.json, and a
table with every ratio and goal. Full mode exits 1 when a goal is missed; ``--quick`` (small
sizes, one repetition) checks the bench runs and leaves the data alone, and gates nothing.

    make bench            # 100k, 1M and 10M rows (10M: one repetition)
    make bench QUICK=1    # 17k rows, 1 repetition (what make test runs)

Besides the venv's packages it imports the tests' helpers, the platform's scripts and the mock
API (``api_load.scripts.extract``): ``make bench`` puts tests, platform and dags on
PYTHONPATH (its BENCH_PATH).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import helpers
from adpipe.table import COLUMNS as TABLE
from adpipe.table import TABLE_COLUMNS
from adpipe.windows import ARCHIVE_PREFIX, QUARANTINE_PREFIX, backup_prefix, rfc3339
from api_load.scripts import extract
from contenders import csv_batches

ROOT = Path(__file__).resolve().parents[1]

helpers.load_env()

PORT = 18091
PER_HOUR = 1_000_000  # the bench API's slots per hour: a minute holds about 16,700 rows
BENCH_DB = "adpipe_bench"
BUCKET = os.environ.get("BENCH_S3_BUCKET", f"{os.environ.get('S3_BUCKET', 'ad-data')}-bench")
# label: (first moment, window length, repetitions)
FULL = {
    "100k": (datetime(2026, 8, 1, tzinfo=UTC), timedelta(minutes=6), 3),
    "1M": (datetime(2026, 8, 3, tzinfo=UTC), timedelta(hours=1), 3),
    "10M": (datetime(2026, 8, 5, tzinfo=UTC), timedelta(hours=10), 1),
}
QUICK = {"17k": (datetime(2026, 8, 7, tzinfo=UTC), timedelta(minutes=1), 1)}
BENCH_DAYS = (date(2026, 8, 1), date(2026, 8, 8))  # every size's window lies in these
SLOW_ABOVE = 1_500_000  # insert_rows, dlt-merge and sql_to_s3 run on windows up to this
# a constant: the statements below only ever name these columns
COLUMNS = ", ".join(TABLE_COLUMNS)
UTC_TEXT = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
# the contenders' rows in id order, the order the primary key's B-tree takes fastest (and the
# order the load stored them in until it wrote each page's rows straight in): so the ceiling
# stays the fastest way in, whatever order adpipe's load leaves the table in
EXPORT = (
    "COPY (SELECT "  # noqa: S608
    + ", ".join(UTC_TEXT.format(c.name) if c.arrow == "timestamp" else c.name for c in TABLE)
    + " FROM ad_impressions ORDER BY impression_id) TO STDOUT WITH (FORMAT csv)"
)
IMPORT = f"COPY ad_impressions ({COLUMNS}) FROM '/tmp/bench.csv' WITH (FORMAT csv)"
# (job, contender, reference, measure, bound): adpipe's figure / the reference's must be at
# least the bound for rows/s, at most the bound for peak RSS
GOALS = [
    ("load", "adpipe", "copy-ceiling", "rows_per_s", 0.6),
    ("load", "adpipe", "dlt-merge", "rows_per_s", 2.0),
    ("api-load", "adpipe", "copy-ceiling", "rows_per_s", 0.35),
    ("api-load", "adpipe", "dlt-rest-api", "rows_per_s", 2.0),
    ("api-load", "adpipe", "insert_rows", "rows_per_s", 2.5),
    ("extract", "adpipe", "fetch-ceiling", "rows_per_s", 0.8),
    ("archive", "adpipe", "sql_to_s3", "rows_per_s", 3.0),
    ("archive", "adpipe", "sql_to_s3", "peak_rss_mb", 0.25),
    ("archive", "adpipe", "export-only", "rows_per_s", 0.7),
]
# from 1M to 10M rows, every adpipe job's time per row and peak RSS grow at most this much
SCALING = ("1M", "10M", {"time per row": 1.1, "peak MB": 1.2})


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
    # the sizes' windows (1 and 6 minutes, 1 and 10 hours) on one grid; the grid costs nothing
    "WINDOW_MINUTES": "1",
    "ARCHIVE_RETENTION_DAYS": "30",
    "EXTRACT_MAX_PAGES": "100000",
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
    owner_sql("DROP SCHEMA IF EXISTS dlt_bench, dlt_bench_staging CASCADE")
    owner_sql("DROP TABLE IF EXISTS bench_binary_copy")
    prefixes = [ARCHIVE_PREFIX, QUARANTINE_PREFIX]
    if backups:
        prefixes.append(backup_prefix(*backups))
    for prefix in prefixes:
        empty(prefix)


def empty(prefix: str) -> None:
    """Delete every object under ``prefix`` of the bench's bucket."""
    client = helpers.s3()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])


def fingerprint() -> dict[str, Any]:
    """What the bench must leave alone: the warehouse's tables and the data bucket."""
    first, last = BENCH_DAYS
    rows = helpers.query(
        "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s",
        (first, last),
    )[0][0]
    runs = helpers.query("SELECT load_run_id, window_start, rows_written FROM load_runs")
    archived = helpers.query("SELECT archive_id, object_key FROM archive_manifest")
    restored = helpers.query(
        "SELECT object_key FROM archive_manifest WHERE restored_at IS NOT NULL"
    )
    objects = {}
    client = helpers.s3()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=helpers.bucket()):
        objects.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return {
        "bench_day_rows": rows,
        "runs": runs,
        "archived": archived,
        "restored": {key for (key,) in restored},
        "objects": objects,
    }


def touched(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """How the warehouse or the data bucket changed in a way only the bench could have
    caused. The product's own DAGs may run meanwhile: they add load runs, manifest rows and
    objects of their own days, and change or remove no object or committed row, but for the
    archive object a restore (or a set-aside) removes once its manifest row says so."""
    first, last = BENCH_DAYS
    days = [f"{first + timedelta(days=n)}" for n in range((last - first).days)]
    found = []
    changed = [
        k
        for k, etag in before["objects"].items()
        if after["objects"].get(k, etag if k in after["restored"] else None) != etag
    ]
    if changed:
        found.append(f"{len(changed)} objects changed or gone (first: {changed[0]})")
    added = [
        k for k in after["objects"].keys() - before["objects"].keys() if any(d in k for d in days)
    ]
    if added:
        found.append(f"{len(added)} objects of the bench's days added (first: {added[0]})")
    for name in ("runs", "archived"):
        gone = set(before[name]) - set(after[name])
        if gone:
            found.append(f"{len(gone)} rows of {name} changed or gone")
    runs = set(after["runs"]) - set(before["runs"])
    if any(first <= start.date() < last for _, start, _ in runs):
        found.append("load runs of the bench's days added")
    if after["bench_day_rows"] != before["bench_day_rows"]:
        found.append("rows of the bench's days added or removed")
    return found


def contender(name: str, *args: str) -> dict[str, Any]:
    """Run one of bench/contenders.py in a child process; its seconds, rows and RSS."""
    env = {
        **os.environ,
        "BENCH_DSN": ENV["WAREHOUSE_OWNER_DSN"],
        "BENCH_S3_BUCKET": BUCKET,
        "AD_API_URL": ENV["AD_API_URL"],
        "EXTRACT_PAGE_SIZE": ENV["EXTRACT_PAGE_SIZE"],
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "RUNTIME__DLTHUB_TELEMETRY": "false",  # dlt phones home otherwise
    }
    program = str(ROOT / "bench" / "contenders.py")
    done = subprocess.run(
        [sys.executable, program, name, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=7200,
        check=False,
    )
    if done.returncode:
        sys.exit(f"bench: {name} failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cached_api(folder: Path) -> Any:
    """The mock API, each page rendered once and kept in ``folder``: the first extract of a
    window fills it (untimed), the timed ones read the same bytes back."""
    server = extract.make_server("127.0.0.1", PORT, PER_HOUR, "bench")
    rendering = server.RequestHandlerClass

    class Cached(rendering):  # type: ignore[valid-type, misc]
        def _impressions(self, query: dict[str, list[str]]) -> None:
            name = hashlib.sha256(json.dumps(sorted(query.items())).encode()).hexdigest()
            path = folder / name
            if not path.exists():
                try:
                    body = extract.page(self.traffic, query)
                except extract.BadRequest as exc:
                    self._error(400, str(exc))
                    return
                path.with_suffix(".part").write_bytes(body)
                path.with_suffix(".part").rename(path)
            self._send(200, path.read_bytes())

    server.RequestHandlerClass = Cached
    return server


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


def arrow_rows(csv_path: str, arrow_path: str) -> None:
    """The exported rows as an Arrow IPC file, typed as the table (ids as text), for the
    binary COPY ceiling: it then times the send alone."""
    import pyarrow as pa

    reader = csv_batches(csv_path, 16 << 20)
    with pa.OSFile(arrow_path, "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def phases(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each phase's median seconds over the runs, from the jobs' own summaries."""
    names = runs[0].get("phase_seconds", {})
    return {n: round(statistics.median(r["phase_seconds"][n] for r in runs), 3) for n in names}


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
    day = start.date()
    results = []

    def add(job_name: str, contender_name: str, figures: dict[str, Any], **extra: Any) -> None:
        results.append(
            {"job": job_name, "size": label, "contender": contender_name, **figures, **extra}
        )
        print(
            f"bench: {label} {job_name} {contender_name}: {figures['rows_per_s']} rows/s, "
            f"peak {figures['peak_rss_mb']} MB",
            flush=True,
        )

    def repeat(work: Any, before: Any = reset) -> list[dict[str, Any]]:
        timings = []
        for _ in range(runs):
            before()
            timings.append(work())
        return timings

    # api-load end to end: a fresh backup and a fresh table each time; the pages come from
    # the cache the untimed first extract filled
    reset(backups=(start, start + length))
    job("extract_backup", *window)

    def api_load() -> dict[str, Any]:
        extracted, loaded = job("extract_backup", *window), job("load", *window)
        return {
            "seconds": extracted["wall"] + loaded["wall"],
            "jobs_seconds": extracted["seconds"] + loaded["seconds"],
            "extract": extracted,
            "peak_rss_mb": max(extracted["peak_rss_mb"], loaded["peak_rss_mb"]),
            "rows": loaded["rows_written"],
            "phase_seconds": {
                "containers": extracted["wall"]
                + loaded["wall"]
                - extracted["seconds"]
                - loaded["seconds"],
                "extract": extracted["seconds"],
                **{f"extract.{k}": v for k, v in extracted.get("phase_seconds", {}).items()},
                "load": loaded["seconds"],
            },
        }

    e2e = repeat(api_load, lambda: reset(backups=(start, start + length)))
    rows = e2e[-1]["rows"]
    inside = statistics.median(r["jobs_seconds"] for r in e2e)
    add(
        "api-load",
        "adpipe",
        median_of(e2e, rows),
        rows_per_s_without_containers=round(rows / inside),
        phase_seconds=phases(e2e),
    )
    # the extract alone, as its SUMMARY times it (no container start), against a plain client
    # reading the same pages
    extracts = [r["extract"] for r in e2e]
    received = extracts[-1]["records"]
    add("extract", "adpipe", median_of(extracts, received), phase_seconds=phases(extracts))
    api_window = (rfc3339(start), rfc3339(start + length))
    fetched = repeat(lambda: contender("fetch", *api_window), lambda: None)
    if fetched[-1]["rows"] != received:
        sys.exit(f"bench: fetch-ceiling read {fetched[-1]['rows']} records of {received}")
    add("extract", "fetch-ceiling", median_of(fetched, received))
    if rows <= SLOW_ABOVE:
        # it validates nothing: it keeps every record with a new id, the broken ones too
        merged = repeat(lambda: contender("dlt_rest_api", *api_window))
        if not rows <= merged[-1]["rows"] <= received:
            sys.exit(f"bench: dlt-rest-api kept {merged[-1]['rows']} rows of {received} records")
        add("api-load", "dlt-rest-api", median_of(merged, rows), rows_kept=merged[-1]["rows"])
    # the load alone, from the backup just made
    loads = repeat(lambda: job("load", *window))
    add("load", "adpipe", median_of(loads, rows), phase_seconds=phases(loads))
    csv_path = str(ROOT / ".state" / "bench-rows.csv")
    same = export_rows(csv_path)
    arrow_path = str(ROOT / ".state" / "bench-rows.arrow")
    arrow_rows(csv_path, arrow_path)
    binary = median_of(repeat(lambda: contender("binary_copy", arrow_path)), same)
    add("load", "binary-copy-ceiling", binary)
    os.unlink(arrow_path)
    loaders: list[tuple[str, Any]] = [("copy-ceiling", lambda: copy_ceiling(csv_path))]
    if same <= SLOW_ABOVE:
        loaders += [
            ("insert_rows", lambda: contender("insert_rows", csv_path)),
            ("dlt-merge", lambda: contender("dlt_merge", csv_path)),
        ]
    for name, work in loaders:
        figures = median_of(repeat(work), same)
        add("load", name, figures)
        add("api-load", name, figures)
    os.unlink(csv_path)
    # the archive: the day loaded (untimed); the exporters leave it in place, the archive
    # moves it out, so each of its repetitions loads it again first
    reset()
    job("load", *window)
    key = f"{ARCHIVE_PREFIX}bench-{label}"
    exporters = [("export-only", "export_only")]
    if same <= SLOW_ABOVE:
        exporters.append(("sql_to_s3", "sql_to_s3"))
    for name, program in exporters:
        timings = repeat(lambda p=program: contender(p, str(day), f"{key}-{p}"), lambda: None)
        wrong = [t["rows"] for t in timings if t["rows"] != same]
        if wrong:
            sys.exit(f"bench: {name} exported {wrong[0]} rows of {same}")
        add("archive", name, median_of(timings, same))
    empty(ARCHIVE_PREFIX)  # the exporters' objects: the archive adopts none it did not write
    first = [True]

    def load_day() -> None:
        if first:  # the day loaded above
            first.pop()
            return
        reset()
        job("load", *window)

    archive_date = f"{day + timedelta(days=31)}"
    archives = repeat(lambda: job("archive", "run", "--date", archive_date), load_day)
    if archives[-1]["rows_archived"] != same:
        sys.exit(f"bench: the archive moved {archives[-1]['rows_archived']} rows of {same}")
    add("archive", "adpipe", median_of(archives, same), phase_seconds=phases(archives))
    return results


def goals(results: list[dict[str, Any]]) -> list[tuple[str, float, float, bool]]:
    """Every goal the results can judge: (what, ratio, bound, met)."""

    def one(job_name: str, contender_name: str, size: str) -> dict[str, Any] | None:
        found = [
            r
            for r in results
            if (r["job"], r["contender"], r["size"]) == (job_name, contender_name, size)
        ]
        return found[0] if found else None

    judged = []
    sizes = list(dict.fromkeys(r["size"] for r in results))
    for job_name, mine, reference, measure, bound in GOALS:
        for size in sizes:
            a, b = one(job_name, mine, size), one(job_name, reference, size)
            if not a or not b or not a[measure] or not b[measure]:
                continue
            ratio = a[measure] / b[measure]
            met = ratio >= bound if measure == "rows_per_s" else ratio <= bound
            what = f"{job_name} {size}: {'rows/s' if measure == 'rows_per_s' else 'peak MB'} " + (
                f"{mine} / {reference}"
            )
            judged.append((what, ratio, bound, met))
    small, large, bounds = SCALING
    for job_name in ("api-load", "extract", "load", "archive"):
        a, b = one(job_name, "adpipe", small), one(job_name, "adpipe", large)
        if not a or not b:
            continue
        grew = {
            "time per row": (b["seconds"] / b["rows"]) / (a["seconds"] / a["rows"]),
            "peak MB": b["peak_rss_mb"] / a["peak_rss_mb"],
        }
        for measure, ratio in grew.items():
            bound = bounds[measure]
            judged.append(
                (f"{job_name}: {measure} {large} / {small}", ratio, bound, ratio <= bound)
            )
    return judged


def table(results: list[dict[str, Any]]) -> list[str]:
    """Print every result and goal; the goals missed."""
    print(f"\n{'job':<10}{'size':>6}  {'contender':<21}{'rows':>10}{'rows/s':>10}{'peak MB':>9}")
    for r in results:
        peak = f"{r['peak_rss_mb']:.1f}" if r["peak_rss_mb"] is not None else "-"
        print(
            f"{r['job']:<10}{r['size']:>6}  {r['contender']:<21}{r['rows']:>10}"
            f"{r['rows_per_s']:>10}{peak:>9}"
        )
    print("\nwhere adpipe's time goes (median seconds per phase, from the jobs' summaries):")
    for r in results:
        if r.get("phase_seconds"):
            spent = ", ".join(f"{n} {v:.2f}" for n, v in r["phase_seconds"].items())
            print(f"  {r['job']} {r['size']} ({r['seconds']:.2f} s): {spent}")
    missed = []
    print(f"\n{'goal':<48}{'ratio':>8}{'bound':>8}  met?")
    for what, ratio, bound, met in goals(results):
        at = "at least" if "rows/s" in what else "at most"
        if met:
            verdict = "yes"
        elif at == "at least":
            verdict = f"NO, short by {bound / ratio:.2f}x"
        else:
            verdict = f"NO, over by {ratio / bound:.2f}x"
        print(f"{what:<48}{ratio:>8.2f}{bound:>8.2f}  {verdict}")
        if not met:
            missed.append(what)
    return missed


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def markdown(report: dict[str, Any]) -> str:
    """The results and goals as Markdown tables, as docs/benchmarks.md shows them."""
    lines = [
        "| job | size | contender | rows | rows/s | peak RSS MB |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        peak = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] is not None else "-"
        lines.append(
            f"| {r['job']} | {r['size']} | {r['contender']} | {r['rows']:,} | "
            f"{r['rows_per_s']:,} | {peak} |"
        )
    lines += ["", "| goal | ratio | bound | met |", "| --- | ---: | ---: | --- |"]
    for what, ratio, bound, met in goals(report["results"]):
        lines.append(f"| {what} | {ratio:.2f} | {bound:.2f} | {'yes' if met else '**no**'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="17k rows, one repetition")
    parser.add_argument(
        "--size", action="append", choices=list(FULL), help="only these sizes (repeatable)"
    )
    parser.add_argument(
        "--markdown", metavar="RESULTS", help="print a results file as docs/benchmarks.md's tables"
    )
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    sizes = QUICK if args.quick else {k: v for k, v in FULL.items() if k in (args.size or FULL)}
    before = fingerprint()
    pages = ROOT / ".state" / "bench-pages"
    shutil.rmtree(pages, ignore_errors=True)
    pages.mkdir(parents=True)
    server = cached_api(pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        setup()
        results = []
        for label, (start, length, runs) in sizes.items():
            results += run_size(label, start, length, runs)
            reset(backups=(start, start + length))
            for page in pages.iterdir():
                page.unlink()
    finally:
        server.shutdown()
        shutil.rmtree(pages, ignore_errors=True)
    after = fingerprint()
    machine = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "postgres": helpers.query("SHOW server_version")[0][0],
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "repetitions": {label: size[2] for label, size in sizes.items()},
    }
    partial = args.quick or len(sizes) < len(FULL)
    out = ROOT / "bench" / "results" / ("quick.json" if partial else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=1) + "\n")
    missed = table(results)
    print(f"\nbench: results in {out.relative_to(ROOT)}")
    found = touched(before, after)
    if found:
        print(
            f"bench: the warehouse or the data bucket changed: {'; '.join(found)}", file=sys.stderr
        )
        return 3
    if missed and not args.quick:
        print(f"bench: {len(missed)} goals missed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
