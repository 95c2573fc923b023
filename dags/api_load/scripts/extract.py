"""The mocked ad API: the fixed contract that the rest of adpipe adapts to.

Served over HTTP by the ``ad-api`` service (``python3 extract.py``); standard library only,
so the same file runs in its image, in the host venv and in tests.

Endpoint
--------
``GET /v1/impressions?start=<t>&end=<t>[&cursor=<c>][&limit=<n>]``

Started with a token (``AD_API_SERVE_TOKEN``), it answers only requests carrying it as
``Authorization: Bearer <token>`` or ``X-Api-Key: <token>``: 401 without one, 403 with another.

- ``start``, ``end``: the window ``[start, end)``, RFC 3339 with an offset (``Z`` or
  ``+hh:mm``); ``end`` after ``start``; at most 31 days.
- ``cursor``: opaque, from the previous page's ``next_cursor``; absent on the first page. A
  cursor belongs to its window: using it with another window is a 400.
- ``limit``: records per page, 1 to 10,000, default 1,000.

``200`` with ``{"impressions": [...], "next_cursor": "<opaque>" | null}``; ``400`` with
``{"error": "..."}`` for a bad query. ``GET /health`` answers ``200 ok``.

Each impression::

    impression_id  UUID string
    ad_id, campaign_id, advertiser_id  integers
    placement      one of PLACEMENTS
    device         one of DEVICES
    country        ISO 3166-1 alpha-2
    shown_at       RFC 3339 timestamp inside the window
    cost_micros    non-negative integer, cost in millionths of the currency unit
    currency       ISO 4217 code, one of CURRENCIES
    clicked        boolean

The traffic model
-----------------
Every UTC hour holds ``AD_API_IMPRESSIONS_PER_HOUR`` slots (default 3,000), spread evenly;
a window serves, in slot order, the slots whose own time lies in it. Everything about a slot
derives from the seed, its hour and its index, so the same window and cursor always give
byte-identical pages, in any process.

Like a real ad server it is a little dirty, with fixed shares per slot:

- 0.4 % repeat an earlier record of the same hour (same impression_id and content, on the
  same or a later page);
- 0.3 % are invalid, evenly among: missing impression_id, malformed impression_id,
  unparsable shown_at, shown_at ten years outside the window, negative cost_micros, unknown
  currency (``XXQ``);
- every shown_at comes with one of five UTC offsets and in seconds, milliseconds or
  microseconds (the instant is exact at the precision given);
- 2 % send ad_id, campaign_id and cost_micros as numeric strings;
- 1 % carry extra fields nobody asked for (``bid_floor_micros``, ``debug``).

Faults, for tests
-----------------
Only when enabled (``AD_API_FAULTS=1``, or ``make_server(..., faults=True)``; the stack's API
has none): ``POST /_faults`` with ``{"plan": [...]}`` queues faults; each
``/v1/impressions`` request consumes the next one: ``"429:<s>"`` (Retry-After s, 0 for no
hint), ``"500"``, ``"slow:<s>"`` (answers after s seconds), ``"cut"`` (promises the full
body, sends half, closes), ``"drip:<s>"`` (sends the body one byte every s seconds),
``"garbage"`` (200 with a body that is not JSON), and answers whose headers lie about the
page they carry: ``"encoding:<coding>"`` (the plain body, labelled ``Content-Encoding:
<coding>``, gzip by default), ``"length:<+-n>"`` (a ``Content-Length`` n bytes more or less
than the body; the whole body is sent, then the connection closed), ``"type:<media type>"``
(the body labelled with that ``Content-Type``, text/html by default). ``GET /_faults``
shows what is left, ``DELETE /_faults`` clears it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PLACEMENTS = ("feed", "sidebar", "banner_top", "interstitial", "video_preroll")
DEVICES = ("mobile", "desktop", "tablet", "ctv")
COUNTRIES = ("US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "AU", "NL")
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "BRL")
OFFSETS = (
    ("Z", timedelta(0)),
    ("+00:00", timedelta(0)),
    ("+02:00", timedelta(hours=2)),
    ("-05:00", timedelta(hours=-5)),
    ("+05:30", timedelta(hours=5, minutes=30)),
)
PRECISIONS = (0, 3, 6)  # digits of the fraction of a second

SHARE_REPEATED = 0.004
SHARE_INVALID = 0.003
SHARE_STRING_INTS = 0.02
SHARE_EXTRA_FIELDS = 0.01
INVALID_KINDS = (
    "missing_id",
    "malformed_id",
    "unparsable_shown_at",
    "shown_at_outside",
    "negative_cost",
    "unknown_currency",
)

DEFAULT_LIMIT = 1_000
MAX_LIMIT = 10_000
MAX_WINDOW = timedelta(days=31)
BLOCK = 1_000  # slots generated together from one seeded generator
HOUR_US = 3_600_000_000


class BadRequest(ValueError):
    """A query the API answers with 400."""


def parse_time(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} is not an RFC 3339 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{name} needs a UTC offset: {value!r}")
    return parsed.astimezone(UTC)


def to_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def render_time(us: int, offset: tuple[str, timedelta], digits: int) -> str:
    """RFC 3339 text for an instant, at an offset, with 0, 3 or 6 digits of fraction."""
    suffix, delta = offset
    local = datetime(1970, 1, 1) + timedelta(microseconds=us) + delta
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += f".{local.microsecond:06d}"[: digits + 1]
    return text + suffix


class Traffic:
    """The deterministic impression stream: slot (hour, index) -> (slot time, record)."""

    def __init__(self, per_hour: int, seed: str) -> None:
        if per_hour < 1:
            raise ValueError("AD_API_IMPRESSIONS_PER_HOUR must be at least 1")
        self.per_hour = per_hour
        self.seed = seed
        # a page needs its own blocks and, for repeats, the one or two before: a few suffice,
        # and memory stays flat however many hours are served
        self._block = lru_cache(maxsize=16)(self._make_block)

    def slot_us(self, hour: int, index: int) -> int:
        return hour * HOUR_US + index * HOUR_US // self.per_hour

    def slot_before(self, us: int) -> tuple[int, int]:
        """The last slot that starts before ``us`` (its event may still fall at or after)."""
        hour, rest = divmod(us, HOUR_US)
        index = -(-rest * self.per_hour // HOUR_US) - 1  # ceiling, minus one
        if index < 0:
            return hour - 1, self.per_hour - 1
        return hour, index

    def slots(
        self, first: tuple[int, int], start_us: int, end_us: int
    ) -> Iterator[tuple[tuple[int, int], dict]]:
        """Slots from ``first`` on whose event time lies in ``[start_us, end_us)``."""
        hour, index = first
        while self.slot_us(hour, index) < end_us:
            event_us, record = self._block(hour, index // BLOCK)[index % BLOCK]
            if start_us <= event_us < end_us:
                yield (hour, index), record
            index += 1
            if index == self.per_hour:
                hour, index = hour + 1, 0

    def _make_block(self, hour: int, block: int) -> list[tuple[int, dict]]:
        rng = random.Random(f"{self.seed}:{hour}:{block}")  # noqa: S311 - test data, not crypto
        first = block * BLOCK
        slots: list[tuple[int, dict]] = []
        for index in range(first, min(first + BLOCK, self.per_hour)):
            roll = rng.random()
            if roll < SHARE_REPEATED and index > 0:
                source = index - 1 - rng.randrange(min(index, 1_500))
                earlier = (
                    slots[source - first]
                    if source >= first
                    else self._block(hour, source // BLOCK)[source % BLOCK]
                )
                slots.append((self.slot_us(hour, index), earlier[1]))
                continue
            slots.append(self._make_record(rng, hour, index, roll))
        return slots

    def _make_record(
        self, rng: random.Random, hour: int, index: int, roll: float
    ) -> tuple[int, dict]:
        slot_us = self.slot_us(hour, index)
        width = max(self.slot_us(hour, index + 1) - slot_us, 1)
        digits = PRECISIONS[rng.randrange(3)]
        unit = 10 ** (6 - digits)
        shown_us = (slot_us + rng.randrange(width)) // unit * unit
        if shown_us < slot_us:  # truncation left the slot: send this one exact
            shown_us, digits = slot_us + rng.randrange(width), 6
        ad_id = rng.randrange(1, 5_000)
        campaign_id = ad_id // 10 + 1
        record: dict = {
            "impression_id": str(_uuid4(rng.getrandbits(128))),
            "ad_id": ad_id,
            "campaign_id": campaign_id,
            "advertiser_id": campaign_id // 5 + 1,
            "placement": rng.choice(PLACEMENTS),
            "device": rng.choice(DEVICES),
            "country": rng.choice(COUNTRIES),
            "shown_at": render_time(shown_us, rng.choice(OFFSETS), digits),
            "cost_micros": rng.randrange(0, 50_000),
            "currency": rng.choice(CURRENCIES),
            "clicked": rng.random() < 0.02,
        }
        if rng.random() < SHARE_STRING_INTS:
            for name in ("ad_id", "campaign_id", "cost_micros"):
                record[name] = str(record[name])
        if rng.random() < SHARE_EXTRA_FIELDS:
            record["bid_floor_micros"] = rng.randrange(0, 10_000)
            record["debug"] = {"server": f"ad-{rng.randrange(1, 40)}", "trace": rng.getrandbits(32)}
        if roll >= 1 - SHARE_INVALID:
            _spoil(record, INVALID_KINDS[rng.randrange(len(INVALID_KINDS))], shown_us)
        return shown_us, record


def _uuid4(bits: int) -> str:
    bits &= ~(0xF000 << 64)
    bits |= 0x4000 << 64
    bits &= ~(0xC000 << 48)
    bits |= 0x8000 << 48
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _spoil(record: dict, kind: str, shown_us: int) -> None:
    if kind == "missing_id":
        del record["impression_id"]
    elif kind == "malformed_id":
        record["impression_id"] = record["impression_id"][:-3] + "zzz"
    elif kind == "unparsable_shown_at":
        record["shown_at"] = "yesterday-ish"
    elif kind == "shown_at_outside":
        record["shown_at"] = render_time(shown_us - 10 * 365 * 24 * HOUR_US, OFFSETS[0], 0)
    elif kind == "negative_cost":
        record["cost_micros"] = -abs(int(record["cost_micros"]) or 1)
    elif kind == "unknown_currency":
        record["currency"] = "XXQ"


def _window_tag(start_us: int, end_us: int) -> str:
    return hashlib.sha256(f"{start_us}:{end_us}".encode()).hexdigest()[:12]


def encode_cursor(slot: tuple[int, int], start_us: int, end_us: int) -> str:
    raw = json.dumps([slot[0], slot[1], _window_tag(start_us, end_us)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, start_us: int, end_us: int) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        hour, index, tag = json.loads(raw)
        hour, index = int(hour), int(index)
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("cursor is not one this API issued") from None
    if tag != _window_tag(start_us, end_us):
        raise BadRequest("cursor belongs to another window")
    return hour, index


class Late:
    """Records the API publishes late: ``share`` of the slots (the same ones every time) are
    left out of every page until `published` (POST /_late {"published": true}), as a vendor
    publishes some of a window's records after it ended."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.published = False

    def hides(self, slot: tuple[int, int]) -> bool:
        return not self.published and (slot[1] * 7919 + slot[0]) % 1000 < self.share * 1000


def page(traffic: Traffic, query: dict[str, list[str]], late: Late | None = None) -> bytes:
    """One page of the contract's JSON for a parsed query string; ``late``'s records left
    out until it publishes them."""

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    start_text, end_text = one("start"), one("end")
    if not start_text or not end_text:
        raise BadRequest("start and end are required")
    start, end = parse_time(start_text, "start"), parse_time(end_text, "end")
    if end <= start:
        raise BadRequest("end must be after start")
    if end - start > MAX_WINDOW:
        raise BadRequest("a window spans at most 31 days")
    limit_text = one("limit")
    try:
        limit = DEFAULT_LIMIT if limit_text is None else int(limit_text)
    except ValueError:
        raise BadRequest(f"limit is not an integer: {limit_text!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    start_us, end_us = to_us(start), to_us(end)
    cursor = one("cursor")
    first = decode_cursor(cursor, start_us, end_us) if cursor else traffic.slot_before(start_us)

    records = []
    next_cursor = None
    for slot, record in traffic.slots(first, start_us, end_us):
        if late and late.hides(slot):
            continue
        if len(records) == limit:
            next_cursor = encode_cursor(slot, start_us, end_us)
            break
        records.append(record)
    body = {"impressions": records, "next_cursor": next_cursor}
    return json.dumps(body, separators=(",", ":")).encode()


class Faults:
    """A queue of faults, one consumed by each impressions request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan: list[str] = []

    def set(self, plan: list[str]) -> None:
        with self._lock:
            self._plan = [str(step) for step in plan]

    def take(self) -> str | None:
        with self._lock:
            return self._plan.pop(0) if self._plan else None

    def left(self) -> list[str]:
        with self._lock:
            return list(self._plan)


class Handler(BaseHTTPRequestHandler):
    server_version = "ad-api/1"
    traffic: Traffic
    faults: Faults | None  # None: no fault endpoint at all
    token: str | None  # None: anyone may read; else a Bearer token or X-Api-Key header
    late: Late | None  # None: every record at once

    def log_message(self, format: str, *args: object) -> None:
        if os.environ.get("AD_API_ACCESS_LOG") == "1":
            super().log_message(format, *args)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps({"error": message}).encode(), headers=headers)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/health":
            self._send(200, b"ok", "text/plain")
        elif url.path == "/_faults" and self.faults:
            self._send(200, json.dumps({"plan": self.faults.left()}).encode())
        elif url.path == "/v1/impressions":
            self._impressions(parse_qs(url.query))
        else:
            self._error(404, f"no such endpoint: {url.path}")

    def do_POST(self) -> None:
        if urlsplit(self.path).path == "/_late" and self.late:
            length = int(self.headers.get("Content-Length") or 0)
            self.late.published = bool(
                json.loads(self.rfile.read(length) or b"{}").get("published")
            )
            self._send(200, json.dumps({"published": self.late.published}).encode())
            return
        if urlsplit(self.path).path != "/_faults" or not self.faults:
            self._error(404, "no such endpoint")
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            plan = json.loads(self.rfile.read(length) or b"{}").get("plan", [])
        except (ValueError, AttributeError):
            self._error(400, 'expected {"plan": [...]}')
            return
        self.faults.set(plan)
        self._send(200, json.dumps({"plan": self.faults.left()}).encode())

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path != "/_faults" or not self.faults:
            self._error(404, "no such endpoint")
            return
        self.faults.set([])
        self._send(200, b'{"plan":[]}')

    def _refused(self) -> bool:
        """Whether the request lacks the token (401) or carries another one (403), as a
        vendor's API answers; answered here."""
        if self.token is None:
            return False
        scheme, _, bearer = self.headers.get("Authorization", "").partition(" ")
        sent = bearer if scheme.lower() == "bearer" else self.headers.get("X-Api-Key")
        if not sent:
            self._error(401, "a token is required", {"WWW-Authenticate": "Bearer"})
            return True
        if not hmac.compare_digest(sent.encode(), self.token.encode()):
            self._error(403, "the token is not valid")
            return True
        return False

    def _impressions(self, query: dict[str, list[str]]) -> None:
        if self._refused():
            return
        fault = self.faults.take() if self.faults else None
        if fault and fault.startswith("429"):
            retry_after = fault.partition(":")[2] or "1"
            self._error(429, "slow down", {"Retry-After": retry_after})
            return
        if fault == "500":
            self._error(500, "internal error")
            return
        if fault and fault.startswith("slow"):
            time.sleep(float(fault.partition(":")[2] or "5"))
        try:
            body = page(self.traffic, query, self.late)
        except BadRequest as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        if fault == "garbage":
            self._send(200, b"<html>upstream proxy error</html>")
        elif fault and fault.startswith("drip"):
            # the whole body, one byte every <s> seconds: each read gets something, so only a
            # deadline over the whole page stops the client
            pause = float(fault.partition(":")[2] or "2")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for index in range(len(body)):
                    self.wfile.write(body[index : index + 1])
                    self.wfile.flush()
                    time.sleep(pause)
            except OSError:  # the client gave up: what a deadline is for
                pass
            self.close_connection = True
        elif fault and fault.startswith("encoding"):
            self._send(200, body, headers={"Content-Encoding": fault.partition(":")[2] or "gzip"})
        elif fault and fault.startswith("type"):
            self._send(200, body, fault.partition(":")[2] or "text/html")
        elif fault and fault.startswith("length"):
            promised = len(body) + int(fault.partition(":")[2] or "-100")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(max(promised, 0)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
        elif fault == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self._send(200, body)


def make_server(
    host: str,
    port: int,
    per_hour: int,
    seed: str,
    faults: bool = False,
    token: str | None = None,
    late_share: float = 0.0,
) -> ThreadingHTTPServer:
    """An HTTP server for the API; call ``serve_forever()`` on it. ``faults`` adds the fault
    queue endpoint, for tests; ``token``: impressions only for requests that carry it;
    ``late_share``: that share of the records published late (`Late`)."""
    handler = type(
        "BoundHandler",
        (Handler,),
        {
            "traffic": Traffic(per_hour, seed),
            "faults": Faults() if faults else None,
            "token": token or None,
            "late": Late(late_share) if late_share else None,
        },
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main() -> None:
    host = os.environ.get("AD_API_HOST", "127.0.0.1")
    port = int(os.environ.get("AD_API_PORT", "8081"))
    per_hour = int(os.environ.get("AD_API_IMPRESSIONS_PER_HOUR", "3000"))
    seed = os.environ.get("AD_API_SEED", "adpipe")
    faults = os.environ.get("AD_API_FAULTS") == "1"
    token = os.environ.get("AD_API_SERVE_TOKEN") or None
    server = make_server(host, port, per_hour, seed, faults, token)
    print(
        f"ad-api: serving {per_hour} impressions per hour on http://{host}:{port}"
        + (" (fault endpoint /_faults enabled)" if faults else "")
        + (" (a token required)" if token else ""),
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
