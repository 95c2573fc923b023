"""check: proves a job image reaches its services. Connects to the warehouse and to the
bucket, and reports both; the smoke DAG and `make test` run it through every job image.

    docker run --rm --network host --env-file .env adpipe/load:dev check
"""

from __future__ import annotations

import argparse
from typing import Any

from adpipe.job import Command
from adpipe.settings import LOGS, S3, WAREHOUSE, Settings
from adpipe.storage import Bucket
from adpipe.warehouse import connect


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    conn = connect(settings.warehouse_dsn, "adpipe-check")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), version()")
            database, version = cur.fetchone()
    finally:
        conn.close()
    bucket = Bucket(settings)
    bucket.check()
    return {
        "warehouse": database,
        "postgres": version.split(",")[0],
        "bucket": f"s3://{bucket.name}",
    }


# the common identities (WAREHOUSE_DSN, AWS_*), as the smoke DAG hands them
COMMAND = Command("check", "check", __doc__ or "", main, settings=(*WAREHOUSE[:1], *S3, *LOGS))
