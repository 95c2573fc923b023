"""The only program that changes the warehouse schema (what its user reads is MIGRATE_DOC, its
--help): the stack runs it once at start (warehouse-migrate), an operator with make migrate.
It connects as the schema's owner; the migrations and their runner are adpipe.migrations.
"""

from __future__ import annotations

import argparse
from typing import Any

from adpipe.job import Command
from adpipe.migrations import apply
from adpipe.warehouse import connect, service_error

MIGRATE_DOC = """migrate: Apply the warehouse's migrations as its owner.

Brings the warehouse schema (its tables, functions and the jobs' rights) up to date: applies,
in order, each migration this image holds that the warehouse has not recorded, all in one
transaction, so a failure applies none. It is the only command that changes the schema, and
the only one that connects as the owner (WAREHOUSE_OWNER_DSN); the jobs refuse a warehouse
whose schema is behind their image (exit 2) until migrate has run. The stack runs it once at
start; an operator runs it with make migrate.

Safe to run again: applied migrations are skipped, so a current warehouse is left as it is
(the SUMMARY's applied list is empty). Refused, applying nothing (exit 2): a migration whose
text changed after it was applied.

    docker run --rm --network host --env-file .env.migrate adpipe/archive:dev migrate
"""


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = args.settings
    conn = connect(settings.warehouse_owner_dsn, "adpipe-migrate", settings, "WAREHOUSE_OWNER_DSN")
    try:
        applied = apply(conn)
    except Exception as exc:
        if conn.closed:
            raise service_error(exc, settings, "nothing was applied; rerun") from None
        raise
    finally:
        conn.close()
    return {"applied": applied}


COMMAND = Command(
    "migrate",
    "migrate",
    MIGRATE_DOC,
    main,
    env_file="migrate",
)
