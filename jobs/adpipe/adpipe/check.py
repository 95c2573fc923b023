"""The ``check`` every job image has (what its user reads is `doc`, its --help): it connects
with the image's own identity and reports what it reached, so a wrong key, role or address
shows before a real run. The smoke DAG and make test run it through every job image.
"""

from __future__ import annotations

import argparse
import textwrap
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


def doc(env_file: str, warehouse: bool) -> str:
    """The help of the ``check`` of image ``adpipe/<env_file>``, which has that identity:
    its example runs that image with that env file; ``warehouse``: the identity has a role."""
    services = "the warehouse and the bucket" if warehouse else "the bucket"
    found = "the database, the role, the PostgreSQL version and " if warehouse else ""
    about = textwrap.fill(
        f"Connects to {services} as the job itself does, with its own settings (below), "
        f"and reports what it reached in its SUMMARY line: {found}the bucket. It changes "
        "nothing, so it may run at any time: after make env, or when a job cannot connect. A "
        "missing setting is exit 2; a service that refuses the identity or does not answer is "
        "exit 4, naming it.",
        width=92,
    )
    example = f"docker run --rm --network host --env-file .env.{env_file} adpipe/{env_file}:dev"
    return (
        "check: Prove the job image reaches its services with its own identity.\n\n"
        f"{about}\n\n    {example} check\n"
    )


def command(env_file: str) -> Command:
    """The image's ``check``, with the identity of its job (``env_file``, which names the
    image too: adpipe/<env_file>)."""
    names = ENV_FILES[env_file].names
    return Command(
        "check",
        "check",
        doc(env_file, "WAREHOUSE_DSN" in names),
        main,
        env_file=env_file,
        settings=tuple(n for n in (*WAREHOUSE, *S3) if n in names),
    )
