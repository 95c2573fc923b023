"""migrate: Apply the warehouse's migrations as its owner.

The only program that changes the
schema: the stack runs it once at start (warehouse-migrate), an operator with make migrate.

    docker run --rm --network host --env-file .env.migrate adpipe/archive:dev migrate
"""

from __future__ import annotations

import argparse
from typing import Any

from adpipe.job import Command
from adpipe.migrations import apply
from adpipe.warehouse import connect, service_error


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = args.settings
    conn = connect(settings.warehouse_owner_dsn, "adpipe-migrate", settings)
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
    __doc__ or "",
    main,
    env_file="migrate",
)
