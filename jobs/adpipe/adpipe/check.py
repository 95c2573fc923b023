"""check: proves a job image reaches its services. Connects to the warehouse and to the
bucket, and reports both; the smoke DAG and `make test` run it through every job image.

    docker run --rm --network host --env-file .env --entrypoint python3 \\
        adpipe/load:dev -m adpipe.check
"""

from __future__ import annotations

import argparse
from typing import Any

from adpipe.job import run
from adpipe.settings import Settings
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


if __name__ == "__main__":
    run("check", argparse.ArgumentParser(description=__doc__.splitlines()[0]), main)
