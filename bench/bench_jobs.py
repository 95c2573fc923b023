"""make bench: adpipe's jobs against what a data engineer would otherwise use, on the same
generated rows, in the same run, side by side, at the settings a user gets by default.
Needs the stack (make start).

Never touches the data: the jobs run (with their own identities) against a database of their
own (``adpipe_bench``, migrated like the warehouse) and a bucket of their own
(``<S3_BUCKET>-bench``); state is reset with SQL between repetitions. The warehouse's tables
and the data bucket are fingerprinted before and after: an object or committed row changed
or gone (but for an archive object a restore put back), or anything added for the bench's
days (August 2026), fails the bench (exit 3).
The product's DAGs may go on running meanwhile.

Every entry is a process: adpipe's jobs and the two ceilings a ``docker run`` of their image,
the contenders child processes of the bench (bench/contenders.py, from the lock's bench
group). Each runs in a memory cgroup of its own (bench/measure.py); for every repetition the
bench keeps ``wall_seconds`` (the whole process: container start and imports included),
``seconds`` (the work alone, as the process reports it) and ``peak_mb`` (the highest
anonymous memory of its cgroup, sampled every 10 ms), and reports min/median/max of each.

    api-load   adpipe: the extract_backup + load images, one after the other (the API's
               pages are rendered into a cache by an untimed first extract, so the mock's own
               work is excluded)
               dlt-rest-api (and -csv): dlt's rest_api source paging the same API by its
               cursor at the extract's page size, merged on impression_id into PostgreSQL
    extract    adpipe: the extract_backup image
               fetch-ceiling: in the extract's image, a keep-alive client reading the same
               pages by cursor as bytes, parsing nothing
    load       adpipe: the load image (window backup -> ad_impressions)
    both       copy-ceiling: in the load's image, as the load's identity, the same valid rows
               already encoded as binary COPY, streamed into ad_impressions (partitioned, with
               its primary key) in the API's order; copy-ceiling-sorted: in id order
               insert_rows: Airflow's PostgresHook.insert_rows, executemany
               dlt-merge (and -csv): dlt, write_disposition="merge" on impression_id
    archive    adpipe: the archive image (export, verify, delete)
               sql_to_s3: Airflow's SqlToS3Operator, Parquet (it deletes nothing)
               export-only: ADBC record batches to Parquet, uploaded (the near limit)
insert_rows, the dlt lines and sql_to_s3 run up to 1M rows: at 10M rows each would take
most of an hour per repetition. Every contender's rows are checked against adpipe's.

The jobs get where to connect and nothing else (their identity's DSN and keys, the bucket,
the API): every other setting is its default. Quick mode alone sets WINDOW_MINUTES=1, so its
1-minute window lies on the grid.

Results go to bench/results/latest.json (full mode) or bench/results/quick.json, with the
git revision, the job images' versions and the machine, and a table with every ratio and
goal. Full mode exits 1 when a goal is missed; ``--quick`` (17k rows, one repetition)
checks the bench runs and leaves the data alone, and gates nothing.

    make bench            # 1M rows (3 repetitions) and 10M rows (2)
    make bench QUICK=1    # 17k rows, 1 repetition (what make test runs)

Besides the venv's packages it imports the tests' helpers, the platform's scripts and the mock
API (``api_load.scripts.extract``): ``make bench`` puts tests, platform and dags on
PYTHONPATH (its BENCH_PATH). It creates memory cgroups: it runs as root (or in a delegated
cgroup) beside a Docker engine using the cgroupfs driver.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import helpers
import measure
import report
import stack_client
from adpipe.table import COLUMNS as TABLE
from adpipe.table import TABLE_COLUMNS
from adpipe.windows import ARCHIVE_PREFIX, QUARANTINE_PREFIX, backup_prefix, rfc3339
from api_load.scripts import extract

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state"

helpers.load_env()

PORT = 18091
API_URL = f"http://127.0.0.1:{PORT}"
PER_HOUR = 1_000_000  # the bench API's slots per hour: a minute holds about 16,700 rows
BENCH_DB = "adpipe_bench"
BUCKET = os.environ.get("BENCH_S3_BUCKET", f"{os.environ.get('S3_BUCKET', 'ad-data')}-bench")
IMAGES = ("adpipe/extract_backup:dev", "adpipe/load:dev", "adpipe/archive:dev")
# label: (first moment, window length, repetitions)
FULL = {
    "1M": (datetime(2026, 8, 3, tzinfo=UTC), timedelta(hours=1), 3),
    "10M": (datetime(2026, 8, 5, tzinfo=UTC), timedelta(hours=10), 2),
}
QUICK = {"17k": (datetime(2026, 8, 7, tzinfo=UTC), timedelta(minutes=1), 1)}
BENCH_DAYS = (date(2026, 8, 1), date(2026, 8, 8))  # every size's window lies in these
SLOW_ABOVE = 1_500_000  # insert_rows, the dlt lines and sql_to_s3 run on windows up to this
# what tells a job where to connect, under an identity's prefix or none; nothing else of its
# env file reaches it, so every other setting is the default a user gets
CONNECT = (
    "WAREHOUSE_DSN",
    "WAREHOUSE_OWNER_DSN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "AWS_DEFAULT_REGION",
    "AD_API_URL",
)
# quick mode's 1-minute window must lie on the grid (the default grid is the hour)
QUICK_SETTINGS = {"WINDOW_MINUTES": "1"}


# a setting's default, as the adpipe.settings of the image that reads it declares it (the
# venv's copy of the package may be newer or older than an image's)
IMAGE_DEFAULT = (
    "import sys; from adpipe.settings import SETTINGS; print(SETTINGS[sys.argv[1]].default)"
)


def default(image: str, name: str) -> str:
    """A setting's default in ``image``'s adpipe.settings."""
    done = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "python3", image, "-c", IMAGE_DEFAULT, name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode or not done.stdout.strip():
        sys.exit(f"bench: cannot read {name}'s default in {image}: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


# a constant: the statements below only ever name these columns
COLUMNS = ", ".join(TABLE_COLUMNS)
UTC_TEXT = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
# the rows adpipe's load wrote, as CSV for the contenders, in id order (the order the primary
# key's B-tree takes fastest: in their favour)
EXPORT_CSV = (
    "COPY (SELECT "  # noqa: S608
    + ", ".join(UTC_TEXT.format(c.name) if c.arrow == "timestamp" else c.name for c in TABLE)
    + " FROM ad_impressions ORDER BY impression_id) TO STDOUT WITH (FORMAT csv)"
)
# the same rows as binary COPY for the ceilings: in the API's order (the mock serves its slots
# in time order) and in id order
EXPORT_BINARY = (
    f"COPY (SELECT {COLUMNS} FROM ad_impressions ORDER BY {{}}) "  # noqa: S608
    "TO STDOUT WITH (FORMAT binary)"
)
CEILINGS = {"copy-ceiling": "shown_at, impression_id", "copy-ceiling-sorted": "impression_id"}
CONTAINER_BENCH = "/bench"  # where a ceiling's script and rows are mounted in its container


def bench_dsn(dsn: str) -> str:
    """A DSN naming the bench's database instead of the warehouse."""
    base, _, rest = dsn.rpartition("/")
    options = rest.partition("?")[2]
    return f"{base}/{BENCH_DB}" + (f"?{options}" if options else "")


def connect_env(image: str, args: Sequence[str], quick: bool) -> dict[str, str]:
    """Where a job command connects, from its identity's env file, pointed at the bench's
    database, bucket and API (and quick mode's grid)."""
    found = {
        name: bench_dsn(value) if name.endswith("_DSN") else value
        for name, value in stack_client.env_file_values(helpers.job_env_file(image, args)).items()
        if any(name == c or name.endswith(f"_{c}") for c in CONNECT)
    }
    if "S3_BUCKET" in found:
        found["S3_BUCKET"] = BUCKET
    if "AD_API_URL" in found:
        found["AD_API_URL"] = API_URL
    return found | (QUICK_SETTINGS if quick else {})


OWNER_DSN = bench_dsn(os.environ["WAREHOUSE_OWNER_DSN"])
JOB_TIMEOUT = 3600  # seconds a job, a ceiling or a contender may take, then the bench fails
CONTENDER_TIMEOUT = 7200


class Runner:
    """Runs each entry as a process in a memory cgroup of its own and times it."""

    def __init__(self, groups: measure.Cgroups | measure.Unweighed, quick: bool) -> None:
        self.groups = groups
        self.quick = quick
        # the page size the extract asks for by default; the contenders paging the API ask
        # the same
        self.page_size = default("adpipe/extract_backup:dev", "EXTRACT_PAGE_SIZE")
        self.retention_days = int(default("adpipe/archive:dev", "ARCHIVE_RETENTION_DAYS"))

    def docker(
        self,
        image: str,
        args: Sequence[str],
        env: dict[str, str],
        group: measure.Group | None = None,
        mounts: Sequence[tuple[Path, str]] = (),
        entrypoint: str | None = None,
    ) -> subprocess.CompletedProcess:
        """``docker run`` of an image on the host network, ``env``'s names passed by name
        (docker reads their values from its own environment: none is in an argument)."""
        name = f"adpipe-bench-{uuid.uuid4().hex[:12]}"  # to remove it if it overruns
        argv = ["docker", "run", "--rm", "--name", name, "--network", "host"]
        argv += ["--cgroup-parent", group.parent] if group else []
        for source, target in mounts:
            argv += ["-v", f"{source}:{target}:ro"]
        argv += ["--entrypoint", entrypoint] if entrypoint else []
        for setting in env:
            argv += ["-e", setting]
        try:
            return subprocess.run(
                [*argv, image, *args],
                capture_output=True,
                text=True,
                timeout=JOB_TIMEOUT,
                check=False,
                env={**os.environ, **env},
            )
        except subprocess.TimeoutExpired:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
            sys.exit(f"bench: {image} {' '.join(args)} ran over {JOB_TIMEOUT} s; removed")

    def job(self, name: str, *args: str, entry: str | None = None) -> dict[str, Any]:
        """Run a job image on the bench's database, bucket and API (``entry``: timed and
        weighed as that entry); its SUMMARY, with the run's figures."""
        image = f"adpipe/{name}:dev"
        env = connect_env(image, args, self.quick)
        with self.timed(entry) as run:
            done = self.docker(image, args, env, run.get("group"))
        line = [x for x in done.stdout.splitlines() if x.startswith("SUMMARY ")]
        if done.returncode or not line:
            sys.exit(f"bench: {name} {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
        summary = json.loads(line[-1][len("SUMMARY ") :])
        return {
            "seconds": summary["seconds"],
            **figures(run),
            "phase_seconds": summary.get("phase_seconds", {}),
            "summary": summary,
        }

    def script(
        self, entry: str, image: str, script: str, args: Sequence[str], env: dict[str, str]
    ) -> dict[str, Any]:
        """One of the bench's scripts (``bench/<script>``) run by the image's python3, the
        files it reads mounted read-only; its JSON line, with the run's figures."""
        mounts = [(ROOT / "bench" / script, f"{CONTAINER_BENCH}/{script}")]
        inside = []
        for arg in args:
            if Path(arg).is_file():  # a file of .state/, mounted beside the script
                mounts.append((Path(arg), f"{CONTAINER_BENCH}/{Path(arg).name}"))
                arg = f"{CONTAINER_BENCH}/{Path(arg).name}"
            inside.append(arg)
        with self.timed(entry) as run:
            done = self.docker(
                image,
                [f"{CONTAINER_BENCH}/{script}", *inside],
                env,
                run["group"],
                mounts,
                entrypoint="python3",
            )
        if done.returncode:
            sys.exit(f"bench: {entry} failed: {done.stderr.strip()[-1500:]}")
        return {**json.loads(done.stdout.strip().splitlines()[-1]), **figures(run)}

    def contender(self, entry: str, name: str, *args: str) -> dict[str, Any]:
        """One of bench/contenders.py in a child process; its seconds and rows, with the
        run's figures."""
        env = {
            **os.environ,
            "BENCH_DSN": OWNER_DSN,
            "BENCH_S3_BUCKET": BUCKET,
            "AD_API_URL": API_URL,
            "EXTRACT_PAGE_SIZE": self.page_size,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "RUNTIME__DLTHUB_TELEMETRY": "false",  # dlt phones home otherwise
        }
        program = [sys.executable, str(ROOT / "bench" / "contenders.py"), name, *args]
        with self.timed(entry) as run:
            try:
                done = subprocess.run(
                    run["group"].wrap(program) if run["group"] else program,
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=CONTENDER_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:  # subprocess.run killed it
                sys.exit(f"bench: {entry} ran over {CONTENDER_TIMEOUT} s; killed")
        if done.returncode:
            sys.exit(f"bench: {entry} failed: {done.stderr.strip()[-1500:]}")
        return {**json.loads(done.stdout.strip().splitlines()[-1]), **figures(run)}

    @contextlib.contextmanager
    def timed(self, entry: str | None) -> Any:
        """The block's wall seconds and, for an entry, its cgroup's peak anonymous memory."""
        run: dict[str, Any] = {}
        with self.groups.group(entry) if entry else contextlib.nullcontext() as group:
            run["group"] = group
            began = time.monotonic()
            yield run
            run["wall_seconds"] = round(time.monotonic() - began, 3)
        run["peak_mb"] = group.peak_mb if group else None


def figures(run: dict[str, Any]) -> dict[str, Any]:
    return {"wall_seconds": run["wall_seconds"], "peak_mb": run["peak_mb"]}


def owner_sql(statement: str, params: tuple = ()) -> list[tuple]:
    return helpers.query(statement, params, dsn=OWNER_DSN)


def setup(runner: Runner) -> None:
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
    runner.job("archive", "migrate")


def reset(*, backups: tuple[datetime, datetime] | None = None) -> None:
    """Empty the bench's tables, its archive and quarantine (and a window's backup)."""
    owner_sql("TRUNCATE ad_impressions, load_runs, archive_manifest")
    owner_sql("DROP SCHEMA IF EXISTS dlt_bench, dlt_bench_staging CASCADE")
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


def export_rows(csv_path: Path, orders: dict[str, Path]) -> int:
    """The valid rows the load wrote: as CSV for the contenders, and as binary COPY in each
    order for the ceilings; their number."""
    conn = helpers.warehouse(OWNER_DSN)
    try:
        with conn.cursor() as cur:
            with csv_path.open("w") as out:
                cur.copy_expert(EXPORT_CSV, out)
            for order, path in orders.items():
                with path.open("wb") as out:
                    cur.copy_expert(EXPORT_BINARY.format(order), out)
            cur.execute("SELECT count(*) FROM ad_impressions")
            return cur.fetchone()[0]
    finally:
        conn.close()


def distinct_ids(start: datetime, end: datetime, page_size: str) -> int:
    """The records dlt's merge on ``impression_id`` should hold for the window: one a distinct
    id (the API's repeats once; the invalid ones kept, but for those without an id), from the
    same pages, read after the clock stops."""
    ids: set[str | None] = set()
    for body in helpers.api_pages(start, end, limit=int(page_size), base=API_URL):
        ids.update(r.get("impression_id") for r in json.loads(body)["impressions"])
    return len(ids - {None})


def check_rows(entry: str, runs: list[dict[str, Any]], expected: int) -> None:
    wrong = [r["rows"] for r in runs if r["rows"] != expected]
    if wrong:
        sys.exit(f"bench: {entry} reported {wrong[0]} rows; it should hold {expected}")


def run_size(
    runner: Runner, label: str, start: datetime, length: timedelta, reps: int
) -> list[dict[str, Any]]:
    end = start + length
    window = ("--start", start.isoformat(), "--end", end.isoformat())
    day = start.date()
    slow = []  # the contenders that skip the large sizes
    results: list[dict[str, Any]] = []

    def add(job: str, contender: str, runs: list[dict[str, Any]], rows: int, expected: int):
        check_rows(f"{contender} ({job} {label})", runs, expected)
        results.append(report.entry(job, label, contender, runs, rows, expected))
        print(
            f"bench: {label} {job} {contender}: median {results[-1]['seconds']['median']:.2f} s "
            f"({results[-1]['wall_seconds']['median']:.2f} s wall), "
            f"peak {report.megabytes(results[-1]['peak_mb']['max'])}",
            flush=True,
        )

    def repeat(work: Any, before: Any = reset) -> list[dict[str, Any]]:
        timings = []
        for _ in range(reps):
            before()
            timings.append(work())
        return timings

    # api-load end to end: a fresh backup and a fresh table each time; the pages come from
    # the cache the untimed first extract filled
    reset(backups=(start, end))
    runner.job("extract_backup", *window)
    extracts, loads = [], []
    for _ in range(reps):
        reset(backups=(start, end))
        extracts.append(runner.job("extract_backup", *window, entry="extract"))
        loads.append(runner.job("load", *window, entry="api-load"))
    received = extracts[-1]["summary"]["records"]
    rows = loads[-1]["summary"]["rows_written"]
    for e in extracts:
        e["rows"] = e["summary"]["records"]
    e2e = []
    for e, loaded in zip(extracts, loads, strict=True):
        phases = {
            "extract": e["seconds"],
            **{f"extract.{k}": v for k, v in e["phase_seconds"].items()},
        }
        phases |= {
            "load": loaded["seconds"],
            **{f"load.{k}": v for k, v in loaded["phase_seconds"].items()},
        }
        e2e.append(
            {
                "seconds": round(e["seconds"] + loaded["seconds"], 3),
                "wall_seconds": round(e["wall_seconds"] + loaded["wall_seconds"], 3),
                "peak_mb": None
                if loaded["peak_mb"] is None
                else max(e["peak_mb"], loaded["peak_mb"]),
                "rows": loaded["summary"]["rows_written"],
                "phase_seconds": phases,
            }
        )
    add("api-load", "adpipe", e2e, rows, rows)
    add("extract", "adpipe", [strip(e) for e in extracts], received, received)

    # the extract's ceiling reads the same pages as bytes: the same number of pages and bytes
    # as the extract received means the same records
    api_window = (rfc3339(start), rfc3339(end))
    pages, size = extracts[-1]["summary"]["pages"], extracts[-1]["summary"]["bytes_received"]
    fetches = []
    for _ in range(reps):
        fetched = runner.script(
            "fetch-ceiling",
            "adpipe/extract_backup:dev",
            "fetch_ceiling.py",
            api_window,
            {"AD_API_URL": API_URL, "EXTRACT_PAGE_SIZE": runner.page_size},
        )
        if (fetched["pages"], fetched["bytes"]) != (pages, size):
            sys.exit(
                f"bench: fetch-ceiling read {fetched['pages']} pages, {fetched['bytes']} bytes; "
                f"the extract {pages} pages, {size} bytes (not the same page size?)"
            )
        fetches.append({**fetched, "rows": received})
    add("extract", "fetch-ceiling", fetches, received, received)

    if rows <= SLOW_ABOVE:
        held = distinct_ids(start, end, runner.page_size)
        for name, file_format in (("dlt-rest-api", "parquet"), ("dlt-rest-api-csv", "csv")):
            runs = repeat(
                lambda f=file_format, n=name: runner.contender(n, "dlt_rest_api", *api_window, f)
            )
            add("api-load", name, runs, rows, held)
    else:
        slow.append("dlt-rest-api")

    # the load alone, from the backup just made
    add(
        "load",
        "adpipe",
        [loaded_rows(r) for r in repeat(lambda: runner.job("load", *window, entry="load"))],
        rows,
        rows,
    )
    csv_path = STATE / "bench-rows.csv"
    copies = {order: STATE / f"bench-rows-{name}.copy" for name, order in CEILINGS.items()}
    same = export_rows(csv_path, copies)
    if same != rows:
        sys.exit(f"bench: the table holds {same} rows; the load wrote {rows}")
    ceiling_env = {
        "LOAD_WAREHOUSE_DSN": connect_env("adpipe/load:dev", window, False)["LOAD_WAREHOUSE_DSN"]
    }
    for name, order in CEILINGS.items():
        runs = repeat(
            lambda n=name, o=order: runner.script(
                n, "adpipe/load:dev", "ceiling.py", [str(copies[o])], ceiling_env
            )
        )
        add("load", name, runs, rows, rows)
        add("api-load", name, runs, rows, rows)
    for path in copies.values():
        path.unlink()
    if rows <= SLOW_ABOVE:
        loaders = [
            ("insert_rows", ("insert_rows", str(csv_path))),
            ("dlt-merge", ("dlt_merge", str(csv_path), "parquet")),
            ("dlt-merge-csv", ("dlt_merge", str(csv_path), "csv")),
        ]
        for name, args in loaders:
            runs = repeat(lambda n=name, a=args: runner.contender(n, *a))
            add("load", name, runs, rows, rows)
            add("api-load", name, runs, rows, rows)
    csv_path.unlink()

    # the archive: the day loaded (untimed); the exporters leave it in place, the archive
    # moves it out, so each of its repetitions loads it again first
    reset()
    runner.job("load", *window)
    key = f"{ARCHIVE_PREFIX}bench-{label}"
    exporters = [("export-only", "export_only")]
    if rows <= SLOW_ABOVE:
        exporters.append(("sql_to_s3", "sql_to_s3"))
    for name, program in exporters:
        runs = repeat(
            lambda n=name, p=program: runner.contender(n, p, str(day), f"{key}-{p}"), lambda: None
        )
        add("archive", name, runs, rows, rows)
    empty(ARCHIVE_PREFIX)  # the exporters' objects: the archive adopts none it did not write
    first = [True]

    def load_day() -> None:
        if first:  # the day loaded above
            first.pop()
            return
        reset()
        runner.job("load", *window)

    # a date whose default retention moves the bench's day out, and no later day
    archive_date = f"{day + timedelta(days=runner.retention_days + 1)}"
    archives = repeat(
        lambda: runner.job("archive", "run", "--date", archive_date, entry="archive"), load_day
    )
    for a in archives:
        a["rows"] = a["summary"]["rows_archived"]
    add("archive", "adpipe", [strip(a) for a in archives], rows, rows)
    return results


def strip(run: dict[str, Any]) -> dict[str, Any]:
    """A run's figures, its job's SUMMARY left out (each run keeps its own seconds, wall
    seconds, peak and rows)."""
    return {k: v for k, v in run.items() if k != "summary"}


def loaded_rows(run: dict[str, Any]) -> dict[str, Any]:
    return strip(run) | {"rows": run["summary"]["rows_written"]}


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
        )
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def image_versions() -> dict[str, dict[str, Any]]:
    """Each job image's id, creation time and the git revision it was built from."""
    found: dict[str, dict[str, Any]] = {}
    for image in IMAGES:
        done = subprocess.run(
            [
                "docker",
                "image",
                "inspect",
                "--format",
                '{{.Id}} {{.Created}} {{index .Config.Labels "org.opencontainers.image.revision"}}',
                image,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode:
            sys.exit(f"bench: no image {image}: {done.stderr.strip()} (make build-jobs)")
        ident, created, revision = [*done.stdout.split(), "", "", ""][:3]
        found[image] = {"id": ident, "created": created, "revision": revision}
    return found


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def machine(sizes: dict[str, tuple[datetime, timedelta, int]]) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "postgres": helpers.query("SHOW server_version")[0][0],
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def cgroups(quick: bool) -> measure.Cgroups | measure.Unweighed:
    """The bench's memory cgroups, or one line saying what the bench needs; the quick bench
    runs unweighed instead (as `make test` does for a user who is not root)."""
    driver = measure.docker_cgroup_driver()
    if driver != "cgroupfs" and quick:
        print(f"bench: memory not weighed: Docker's cgroup driver is {driver or 'unknown'}")
        return measure.Unweighed()
    if driver != "cgroupfs":
        sys.exit(
            f"bench: needs Docker's cgroupfs cgroup driver (this engine's: {driver or 'unknown'}),"
            " to run each job's container in a memory cgroup of the bench's"
        )
    try:
        return measure.Cgroups()
    except measure.CgroupUnavailable as exc:
        if quick:
            print(f"bench: memory not weighed: {exc}")
            return measure.Unweighed()
        sys.exit(
            f"bench: needs to create memory cgroups ({exc}): run it as root, or in a cgroup "
            "delegated to its user"
        )


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
        print(report.markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    sizes = QUICK if args.quick else {k: v for k, v in FULL.items() if k in (args.size or FULL)}
    groups = cgroups(args.quick)
    images = image_versions()
    before = fingerprint()
    pages = STATE / "bench-pages"
    shutil.rmtree(pages, ignore_errors=True)
    pages.mkdir(parents=True)
    server = cached_api(pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        runner = Runner(groups, args.quick)
        setup(runner)
        results = []
        for label, (start, length, reps) in sizes.items():
            results += run_size(runner, label, start, length, reps)
            reset(backups=(start, start + length))
            for page in pages.iterdir():
                page.unlink()
    finally:
        server.shutdown()
        shutil.rmtree(pages, ignore_errors=True)
        groups.close()
    after = fingerprint()
    images_after = image_versions()
    for image, version in images.items():
        version["rebuilt_during_run"] = images_after[image]["id"] != version["id"]
    partial = args.quick or len(sizes) < len(FULL)
    out = ROOT / "bench" / "results" / ("quick.json" if partial else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    results_file = {
        "revision": git_revision(),
        "images": images,
        "machine": machine(sizes),
        "profile": "defaults",
        "weighed": isinstance(groups, measure.Cgroups),
        "settings": {
            "EXTRACT_PAGE_SIZE": runner.page_size,
            "ARCHIVE_RETENTION_DAYS": str(runner.retention_days),
            **(QUICK_SETTINGS if args.quick else {}),
        },
        "repetitions": {label: size[2] for label, size in sizes.items()},
        "results": results,
    }
    out.write_text(json.dumps(results_file, indent=1) + "\n")
    missed = report.table(results)
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
