"""check: Prove the job image reaches its services with its own identity.

Connects to the
warehouse (where the identity has a role) and to the bucket, and reports both; the smoke DAG
and make test run it through every job image.

    docker run --rm --network host --env-file .env.load adpipe/load:dev check
"""

from __future__ import annotations

import argparse
from typing import Any

from adpipe.job import Command
from adpipe.settings import ENV_FILES, S3, WAREHOUSE
from adpipe.storage import Bucket
from adpipe.warehouse import connect


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = args.settings
    found: dict[str, Any] = {}
    if "WAREHOUSE_DSN" in args.settings.names:
        conn = connect(settings.warehouse_dsn, "adpipe-check", settings)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_database(), current_user, version()")
                database, role, version = cur.fetchone()
        finally:
            conn.close()
        found.update(warehouse=database, role=role, postgres=version.split(",")[0])
    bucket = Bucket(settings)
    bucket.check()
    return {**found, "bucket": f"s3://{bucket.name}"}


def command(env_file: str) -> Command:
    """The image's ``check``, with the identity of its job (``env_file``)."""
    names = ENV_FILES[env_file].names
    return Command(
        "check",
        "check",
        __doc__ or "",
        main,
        env_file=env_file,
        settings=tuple(n for n in (*WAREHOUSE, *S3) if n in names),
    )
