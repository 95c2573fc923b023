"""The extract's ceiling, run by ``make bench`` inside the extract's image: a plain
keep-alive client reading every page of a window by its cursor, as bytes, and nothing else.
No page is parsed: the cursor is found in the body's tail (the API puts ``next_cursor``
after the records). The bench checks afterwards that it read the pages and bytes the
extract read.

    python3 /bench/fetch_ceiling.py START END   # AD_API_URL, EXTRACT_PAGE_SIZE from the env

Prints one JSON line: ``{"seconds": ..., "pages": ..., "bytes": ...}`` (the reading alone).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from urllib.parse import quote, urlencode, urlsplit

CURSOR = b'"next_cursor"'
TAIL = 512  # bytes at a page's end that hold its cursor


def next_cursor(body: bytes) -> bytes | None:
    """The cursor in a page's tail, as the bytes of its JSON string; None at the last page."""
    at = body.rfind(CURSOR, max(0, len(body) - TAIL))
    if at < 0:
        raise RuntimeError(f"no next_cursor in the page's last {TAIL} bytes")
    rest = body[at + len(CURSOR) :].lstrip(b" \t\r\n:")
    if rest.startswith(b"null"):
        return None
    if not rest.startswith(b'"'):
        raise RuntimeError(f"next_cursor is neither a string nor null: {rest[:40]!r}")
    return rest[1 : rest.index(b'"', 1)]


def main() -> None:
    start, end = sys.argv[1:3]
    api = urlsplit(os.environ["AD_API_URL"])
    window = urlencode({"start": start, "end": end, "limit": os.environ["EXTRACT_PAGE_SIZE"]})
    conn = http.client.HTTPConnection(api.hostname or "", api.port, timeout=60)
    pages = size = 0
    cursor: bytes | None = None
    began = time.monotonic()
    try:
        while True:
            query = window + (f"&cursor={quote(cursor)}" if cursor else "")
            conn.request("GET", f"/v1/impressions?{query}")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
            pages, size = pages + 1, size + len(body)
            cursor = next_cursor(body)
            if cursor is None:
                break
    finally:
        conn.close()
    seconds = time.monotonic() - began
    print(json.dumps({"seconds": seconds, "pages": pages, "bytes": size}))


if __name__ == "__main__":
    main()
