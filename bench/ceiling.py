"""The load's ceiling, run by ``make bench`` inside the load's image as the load's identity:
the valid rows adpipe's load wrote, already encoded as PostgreSQL binary COPY, streamed from
a file into the same partitioned table with its primary key, in one transaction. It parses
and checks nothing: the physical limit of the schema.

    python3 /bench/ceiling.py ROWS.copy   # LOAD_WAREHOUSE_DSN from the environment

Prints one JSON line: ``{"seconds": ..., "rows": ...}`` (the COPY and its commit alone).
"""

from __future__ import annotations

import json
import os
import sys
import time

import psycopg2
from adpipe.table import TABLE, TABLE_COLUMNS
from psycopg2 import sql

CHUNK = 1 << 20  # bytes a read from the file, and a message to the server


def main() -> None:
    copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
        sql.Identifier(TABLE), sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS))
    )
    conn = psycopg2.connect(os.environ["LOAD_WAREHOUSE_DSN"])
    try:
        with open(sys.argv[1], "rb") as rows:
            began = time.monotonic()
            with conn, conn.cursor() as cur:
                cur.copy_expert(copy, rows, size=CHUNK)
                written = cur.rowcount
            seconds = time.monotonic() - began
    finally:
        conn.close()
    print(json.dumps({"seconds": seconds, "rows": written}))


if __name__ == "__main__":
    main()
