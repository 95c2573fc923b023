"""Nothing an API sends stops a window or crashes a job: pages built byte by byte
(tests/hostile.py: bytes that are not UTF-8, integers no parser reads, floats where integers
go, NUL, byte order marks, keys given twice, nesting of any depth, NaN, lone surrogates,
records that are not JSON between their commas), served by an API in this process to the
real extract_backup image and loaded by the real load image: every record is stored as the
rules make it or quarantined, its bytes exactly as sent, with its reason; the counts balance;
no job exits 1. And an API whose headers lie about its bodies (encoding, length, type) ends
each extract in its documented code with a FAILED line naming the API and the window.

Days: its own in tests/days.py only (hourly windows, within a day)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import days
import helpers
import hostile
import pytest
from adpipe.windows import rfc3339
from adpipe_load.impression_rules import Rejected, normalise, parse_record
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("stack")

OWNER = "test_hostile_source"
FIRST_DAY, LAST_DAY = (day.isoformat() for day in days.of(OWNER)[0])
# the hours the byte-level examples take their windows from: the first four days
HOURS = [days.moment(OWNER) + timedelta(hours=n) for n in range(4 * 24)]
EVERY_DAMAGE_HOUR = days.moment(OWNER, n=4, hour=10)  # the example that covers each
LIE_HOUR = days.moment(OWNER, n=4, hour=20)  # the lying API's windows


@pytest.fixture(scope="module", autouse=True)
def unarchived() -> None:
    """These windows may have been archived by an earlier run of the suite: a reload of an
    archived day is refused, so they are restored first (only then: a restore takes the
    archive lock; `restore_days` runs nothing otherwise)."""
    helpers.restore_days(FIRST_DAY, LAST_DAY)


class PagedApi(BaseHTTPRequestHandler):
    """An ad API serving the server's ``pages`` as they are: the first without a cursor,
    page i+1 for the cursor ``p<i>`` that page i names."""

    def do_GET(self) -> None:
        cursor = parse_qs(urlsplit(self.path).query).get("cursor", ["p0"])[-1]
        body = self.server.pages[int(cursor[1:])]  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def paged_api() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PagedApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()


def run(job: str, start: datetime, end: datetime, *more: str, **env: str) -> dict:
    args = ("--start", start.isoformat(), "--end", end.isoformat(), *more)
    return helpers.summary(helpers.docker_run(f"adpipe/{job}:dev", *args, env=env))


@st.composite
def windows(draw: Any) -> tuple[datetime, list[list[bytes]], list[bytes]]:
    """An hour, and its records as pages of bytes: (start, records by page, page bodies)."""
    start = draw(st.sampled_from(HOURS))
    records = draw(st.lists(hostile.records(start, damage=0.4), min_size=1, max_size=60))
    cuts = sorted(
        draw(st.sets(st.integers(1, len(records) - 1), max_size=4)) if records[1:] else []
    )
    chunks = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    bodies = [
        draw(hostile.page(chunk, f"p{n + 1}" if n + 1 < len(chunks) else None))
        for n, chunk in enumerate(chunks)
    ]
    return start, chunks, bodies


def every_damage() -> tuple[datetime, list[list[bytes]], list[bytes]]:
    """Every variant of every damage (`hostile.DAMAGES`), between good records, in pages of
    25: the example each run covers, whatever hypothesis draws."""
    records = hostile.every_damage(EVERY_DAMAGE_HOUR)
    chunks = [records[at : at + 25] for at in range(0, len(records), 25)]
    bodies = [
        b'{"impressions":['
        + b",".join(chunk)
        + b'],"next_cursor":'
        + (f'"p{n + 1}"'.encode() if n + 1 < len(chunks) else b"null")
        + b"}"
        for n, chunk in enumerate(chunks)
    ]
    return EVERY_DAMAGE_HOUR, chunks, bodies


def expected(
    chunks: list[list[bytes]], start: datetime, end: datetime
) -> tuple[dict[str, tuple], list[tuple[int, int, str, bytes]], int]:
    """What the rules make of the window's records, in order: the first row of each id, the
    rejected (page, position, reason, bytes), and how many rows were valid."""
    rows: dict[str, tuple] = {}
    rejected, valid = [], 0
    for page, chunk in enumerate(chunks, start=1):
        for position, raw in enumerate(chunk):
            try:
                row = normalise(parse_record(raw), start, end)
            except Rejected as exc:
                rejected.append((page, position, str(exc), raw))
                continue
            valid += 1
            rows.setdefault(row[0], row)  # the first of an id wins
    return rows, rejected, valid


def stored(start: datetime, end: datetime) -> list[tuple]:
    found = helpers.query(
        f"SELECT {helpers.ROWS} FROM ad_impressions "  # noqa: S608 - the table's own columns
        "WHERE shown_at >= %s AND shown_at < %s",
        (start, end),
    )
    return sorted(helpers.comparable(r) for r in found)


def quarantined(address: str) -> list[tuple[int, int, str, bytes]]:
    """Each quarantine line as (page, position, reason, the record's bytes as kept)."""
    lines = helpers.gunzip(helpers.get(address.split("/", 3)[3])).splitlines()
    entries = []
    for line in lines:
        entry = json.loads(line)
        kept = (
            entry["record"].encode()
            if "record" in entry
            else base64.b64decode(entry["record_base64"], validate=True)
        )
        entries.append((entry["page"], entry["position"], entry["reason"], kept))
    return entries


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(windows())
@example(every_damage())
def test_any_bytes_a_source_sends_are_stored_or_quarantined_and_the_window_loads(
    paged_api: ThreadingHTTPServer, window: tuple[datetime, list[list[bytes]], list[bytes]]
) -> None:
    start, chunks, bodies = window
    end = start + timedelta(hours=1)
    paged_api.pages = bodies  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{paged_api.server_address[1]}"
    received = sum(map(len, chunks))

    extracted = run("extract_backup", start, end, AD_API_URL=url)
    assert extracted["exit_code"] == 0, extracted["stderr"]
    assert (extracted["pages"], extracted["records"]) == (len(bodies), received)
    assert helpers.backup_pages(start, end) == bodies  # byte for byte, as sent

    # every record may be hostile: the reject gate is not what this test is about, and a
    # window drawn again may shrink
    loaded = run("load", start, end, "--allow-shrink", LOAD_MAX_REJECTED_SHARE="1")
    assert loaded["exit_code"] == 0, loaded["stderr"]

    rows, rejected, valid = expected(chunks, start, end)
    assert loaded["received"] == received
    assert (loaded["valid"], loaded["rejected"]) == (valid, len(rejected))
    assert loaded["rows_written"] == len(rows)
    assert received == loaded["rows_written"] + loaded["rejected"] + loaded["duplicates"]
    assert stored(start, end) == sorted(rows.values())
    if rejected:
        assert quarantined(loaded["quarantine"]) == rejected  # one line a record, its bytes
    else:
        assert loaded["quarantine"] is None


# (fault, times queued, exit code, what the FAILED line says of it)
LIES = [
    ("encoding:gzip", 2, 4, "content-encoding: gzip, but failed to decode it"),
    ("encoding:x-unknown", 2, 4, "Content-Encoding not decoded here: 'x-unknown'"),
    ("type:text/html", 2, 4, "the body is sent as 'text/html', not JSON"),
    ("type:", 2, 4, "the body is sent as 'text/html', not JSON"),
    ("length:+100", 2, 4, "IncompleteRead"),
    ("length:-100", 1, 3, "page 1 is cut short"),
]


@pytest.mark.parametrize(("fault", "times", "code", "said"), LIES, ids=[lie[0] for lie in LIES])
def test_a_body_that_does_not_match_its_headers_ends_in_its_code_naming_api_and_window(
    fault_api: str, fault: str, times: int, code: int, said: str
) -> None:
    start, end = LIE_HOUR, LIE_HOUR + timedelta(hours=1)
    versions = helpers.backup_manifests(start, end)
    helpers.faults(fault_api, *[fault] * times)
    try:
        failed = run("extract_backup", start, end, AD_API_URL=fault_api, EXTRACT_MAX_ATTEMPTS="2")
    finally:
        helpers.faults(fault_api)
    assert failed["exit_code"] == code, failed["stderr"]
    line = next(x for x in failed["stderr"].splitlines() if x.startswith("FAILED extract_backup:"))
    assert said in line
    window = f"[{rfc3339(LIE_HOUR)}, {rfc3339(LIE_HOUR + timedelta(hours=1))})"
    assert f"ad API {fault_api}, window {window}" in line
    assert "Traceback" not in failed["stderr"]
    assert helpers.backup_manifests(start, end) == versions  # nothing claims to be complete


def test_a_window_refused_for_a_page_that_is_not_json_loads_after_a_re_extract(
    fault_api: str,
) -> None:
    start, end = LIE_HOUR + timedelta(hours=1), LIE_HOUR + timedelta(hours=2)
    helpers.faults(fault_api, "garbage")
    try:
        refused = run("extract_backup", start, end, AD_API_URL=fault_api)
    finally:
        helpers.faults(fault_api)
    assert refused["exit_code"] == 3, refused["stderr"]
    assert "page 1 is not a JSON object" in refused["stderr"] and fault_api in refused["stderr"]
    again = run("extract_backup", start, end, AD_API_URL=fault_api)
    assert again["exit_code"] == 0, again["stderr"]
    loaded = run("load", start, end, "--allow-shrink")
    assert loaded["exit_code"] == 0, loaded["stderr"]
    assert loaded["received"] == again["records"] > 0
