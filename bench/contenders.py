"""What a data engineer would use instead of adpipe's jobs, each run by ``make bench`` as a
child process in a memory cgroup of its own (bench/measure.py). Each prints one JSON line:
``{"seconds": ..., "rows": ...}``: the work alone (not the imports, nor the count of what
was written, which is taken after the clock stops); the bench times the whole process too.

    python bench/contenders.py insert_rows ROWS.csv           # PostgresHook.insert_rows
    python bench/contenders.py dlt_merge ROWS.csv FORMAT      # dlt, write_disposition="merge"
    python bench/contenders.py dlt_rest_api START END FORMAT  # dlt's rest_api source, merge
    python bench/contenders.py sql_to_s3 DAY KEY              # SqlToS3Operator, Parquet
    python bench/contenders.py export_only DAY KEY            # ADBC record batches -> Parquet

FORMAT is dlt's loader file format: ``parquet`` (loaded through ADBC, dlt's fastest way into
PostgreSQL when adbc-driver-postgresql is installed) or ``csv`` (COPY of text).
Settings come from the environment: BENCH_DSN (the bench database, as its owner),
S3_ENDPOINT_URL, BENCH_S3_BUCKET and the archive's S3 identity (ARCHIVE_AWS_*), AD_API_URL
and EXTRACT_PAGE_SIZE (the bench's API and the page size the extract asks for).
The loading contenders read the rows ``make bench`` exported from what adpipe's load wrote;
the API's read the same API pages the extract reads; the archiving ones read the day
adpipe's load wrote and write under ``archive/``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from adpipe.table import COLUMNS, TABLE_COLUMNS, arrow_type

DAY_ROWS = "SELECT * FROM ad_impressions WHERE shown_at >= %(day)s AND shown_at < %(next)s"


def airflow_connections() -> None:
    """The bench's database and S3 identity as Airflow connections, from the environment."""
    os.environ["AIRFLOW_CONN_BENCH_PG"] = os.environ["BENCH_DSN"]
    os.environ["AIRFLOW_CONN_BENCH_S3"] = json.dumps(
        {
            "conn_type": "aws",
            "login": os.environ["ARCHIVE_AWS_ACCESS_KEY_ID"],
            "password": os.environ["ARCHIVE_AWS_SECRET_ACCESS_KEY"],
            "extra": {
                "endpoint_url": os.environ["S3_ENDPOINT_URL"],
                "region_name": os.environ["AWS_DEFAULT_REGION"],
            },
        }
    )


def csv_batches(path: str, block_size: int) -> Any:
    """The exported rows as Arrow batches, typed as the table; ids as text (dlt has no uuid
    type)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {c.name: pa.string() if c.arrow == "uuid" else arrow_type(c) for c in COLUMNS}
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(TABLE_COLUMNS), block_size=block_size),
        convert_options=pacsv.ConvertOptions(
            column_types=types, true_values=["t"], false_values=["f"]
        ),
    )


def dlt_pipeline(name: str) -> Any:
    """A dlt pipeline of its own (state in a new folder) into schema ``dlt_bench``."""
    import dlt

    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=tempfile.mkdtemp(prefix=f"{name}-"),
        destination=dlt.destinations.postgres(credentials=os.environ["BENCH_DSN"]),
        dataset_name="dlt_bench",
    )


def csv_rows(path: str) -> Iterator[list[str]]:
    import csv

    with open(path, newline="") as handle:
        yield from csv.reader(handle)


# rows a transaction: bigger chunks commit less often; the hook holds a chunk in memory
INSERT_CHUNK = 50_000


def insert_rows(path: str) -> Callable[[], Any]:
    """Airflow's own way in: ``PostgresHook.insert_rows`` with ``executemany=True``, the fastest
    its documentation names. With psycopg 3 and SQLAlchemy 2 installed (as here) the hook runs on
    psycopg 3, whose ``executemany`` pipelines the statements; ``fast_executemany`` (psycopg2's
    ``execute_values``) then has no effect, as the hook says."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    airflow_connections()
    hook = PostgresHook(postgres_conn_id="bench_pg")

    def work() -> int:
        rows = 0

        def counted() -> Iterator[list[str]]:
            nonlocal rows
            for row in csv_rows(path):
                rows += 1
                yield row

        hook.insert_rows(
            "ad_impressions",
            counted(),
            target_fields=TABLE_COLUMNS,
            commit_every=INSERT_CHUNK,
            executemany=True,
        )
        return rows

    return work


def dlt_merge(path: str, file_format: str) -> Callable[[], Any]:
    """dlt's merge on ``impression_id`` into a table of the same shape in schema ``dlt_bench``,
    fed Arrow batches (no per-row normalising), loaded as ``file_format``: parquet goes in
    through ADBC, csv by COPY."""
    import dlt
    import pyarrow as pa

    @dlt.resource(name="ad_impressions", write_disposition="merge", primary_key="impression_id")
    def impressions() -> Iterator[Any]:
        for batch in csv_batches(path, 4 << 20):
            yield pa.Table.from_batches([batch])

    pipeline = dlt_pipeline("bench_dlt")

    def work() -> Callable[[], int]:
        _loaded_as(pipeline.run(impressions(), loader_file_format=file_format), file_format)
        return _merged_rows  # counted after the clock stops

    return work


def _loaded_as(info: Any, file_format: str) -> None:
    """Fail unless every file dlt loaded was of ``file_format`` (dlt falls back from parquet
    to another format when the ADBC driver is missing)."""
    info.raise_on_failed_jobs()
    formats = {
        job.job_file_info.file_format
        for package in info.load_packages
        for job in package.jobs["completed_jobs"]
        if job.job_file_info.table_name == "ad_impressions"
    } - {"sql"}  # the merge's own statements, a follow-up job
    if formats != {file_format}:
        raise RuntimeError(f"dlt loaded ad_impressions as {formats}, not {file_format}")


def _window(start: str, end: str) -> dict[str, str]:
    """The API's query for a window, as the extract sends it."""
    return {"start": start, "end": end, "limit": os.environ["EXTRACT_PAGE_SIZE"]}


def dlt_rest_api(start: str, end: str, file_format: str) -> Callable[[], Any]:
    """What a data engineer would write instead of api-load: dlt's ``rest_api`` source paging
    the same API by its cursor, at the extract's page size, merged on ``impression_id`` into
    PostgreSQL (schema ``dlt_bench``), loaded as ``file_format``. It validates nothing but
    that a record has an id."""
    from dlt.sources.rest_api import rest_api_source

    config: Any = {  # dlt's RESTAPIConfig, as data
        "client": {
            "base_url": os.environ["AD_API_URL"],
            "paginator": {
                "type": "cursor",
                "cursor_path": "next_cursor",
                "cursor_param": "cursor",
            },
        },
        "resource_defaults": {"primary_key": "impression_id", "write_disposition": "merge"},
        "resources": [
            {
                "name": "ad_impressions",
                # a merge needs its key: a record without an id is dropped (dlt refuses a
                # null primary key), every other one kept as sent
                "processing_steps": [{"filter": lambda r: r.get("impression_id") is not None}],
                "endpoint": {
                    "path": "v1/impressions",
                    "params": _window(start, end),
                    "data_selector": "impressions",
                },
            }
        ],
    }
    source = rest_api_source(config)
    pipeline = dlt_pipeline("bench_dlt_rest")

    def work() -> Callable[[], int]:
        _loaded_as(pipeline.run(source, loader_file_format=file_format), file_format)
        return _merged_rows  # counted after the clock stops

    return work


def _merged_rows() -> int:
    """Rows dlt's merge left in its table (its normalize counts are not rows)."""
    import psycopg2

    with psycopg2.connect(os.environ["BENCH_DSN"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM dlt_bench.ad_impressions")
        return int(cur.fetchone()[0])


def sql_to_s3(day: str, key: str) -> Callable[[], Any]:
    """Airflow's own way out: ``SqlToS3Operator`` writing the day as one Parquet object. It
    does not delete what it exported, which is in its favour."""
    from datetime import date, timedelta

    from airflow.providers.amazon.aws.transfers.sql_to_s3 import SqlToS3Operator

    airflow_connections()
    first = date.fromisoformat(day)
    operator = SqlToS3Operator(
        task_id="sql_to_s3",
        query=DAY_ROWS,
        parameters={"day": first, "next": first + timedelta(days=1)},
        sql_conn_id="bench_pg",
        aws_conn_id="bench_s3",
        s3_bucket=os.environ["BENCH_S3_BUCKET"],
        s3_key=key,
        file_format="parquet",
        replace=True,
    )

    def work() -> Callable[[], int]:
        operator.execute(context={})  # type: ignore[arg-type]
        return lambda: _parquet_rows(key + ".parquet")  # counted after the clock stops

    return work


def export_only(day: str, key: str) -> Callable[[], Any]:
    """The near-limit reference: Arrow record batches from PostgreSQL through ADBC, written
    to a local Parquet file (zstd) and uploaded. No verification, no delete."""
    from datetime import date, timedelta

    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.parquet as pq

    first = date.fromisoformat(day)
    # dates the bench chose, not input: bound parameters would take ADBC off its COPY path
    query = (
        "SELECT * FROM ad_impressions "  # noqa: S608
        f"WHERE shown_at >= '{first}' AND shown_at < '{first + timedelta(days=1)}'"
    )

    def work() -> int:
        rows = 0
        with (
            tempfile.NamedTemporaryFile(suffix=".parquet") as spool,
            adbc.connect(os.environ["BENCH_DSN"]) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(query)
            reader = cur.fetch_record_batch()
            with pq.ParquetWriter(spool.name, reader.schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            _s3().upload_file(spool.name, os.environ["BENCH_S3_BUCKET"], key + ".parquet")
        return rows

    return work


def _s3() -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        region_name=os.environ["AWS_DEFAULT_REGION"],
        aws_access_key_id=os.environ["ARCHIVE_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["ARCHIVE_AWS_SECRET_ACCESS_KEY"],
    )


def _parquet_rows(key: str) -> int:
    """Rows of the Parquet object the contender wrote (read after the clock stops)."""
    import io

    import pyarrow.parquet as pq

    body = _s3().get_object(Bucket=os.environ["BENCH_S3_BUCKET"], Key=key)["Body"].read()
    return pq.ParquetFile(io.BytesIO(body)).metadata.num_rows


CONTENDERS: dict[str, Callable[..., Callable[[], Any]]] = {
    "insert_rows": insert_rows,
    "dlt_merge": dlt_merge,
    "dlt_rest_api": dlt_rest_api,
    "sql_to_s3": sql_to_s3,
    "export_only": export_only,
}


def main() -> None:
    name, *args = sys.argv[1:]
    work = CONTENDERS[name](*args)
    began = time.monotonic()
    rows: Any = work()
    seconds = time.monotonic() - began
    if callable(rows):
        rows = rows()
    print(json.dumps({"seconds": seconds, "rows": rows}))


if __name__ == "__main__":
    main()
