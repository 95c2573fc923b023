"""Serve a local S3 endpoint with moto and keep its objects across restarts.

moto keeps objects in memory. Its request recorder appends every request (bodies included)
to a log on the data volume; at start this script replays that log into the fresh server
before it reports healthy, then records again. Limits, said plainly in the README: the log
grows with every write, and multipart uploads do not survive a replay (moto gives new upload
ids), so the jobs write single-part objects only.
"""

import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

DATA_DIR = Path(os.environ.get("S3_DATA_DIR", "/data"))
RECORDING = DATA_DIR / "recording.jsonl"
READY = Path("/tmp/s3-ready")  # noqa: S108 - a marker inside the container, read by the healthcheck
os.environ["MOTO_RECORDER_FILEPATH"] = str(RECORDING)
os.environ.pop("MOTO_ENABLE_RECORDING", None)

from moto.moto_api import recorder  # noqa: E402 - reads MOTO_RECORDER_FILEPATH at import
from moto.server import ThreadedMotoServer  # noqa: E402

_write_lock = threading.Lock()
_record_request = recorder._record_request


def _record_durably(request: object, body: bytes | None = None) -> None:
    """moto's recorder appends from every server thread at once: one at a time here, so lines
    never interleave, and synced to disk before the request is served."""
    with _write_lock:
        _record_request(request, body)
        if RECORDING.exists():
            fd = os.open(RECORDING, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


recorder._record_request = _record_durably  # type: ignore[method-assign]


def _check_recording() -> int:
    """Count the recorded requests; drop a torn last line (a crash mid-write), refuse to start
    on damage anywhere else rather than replay a partial history."""
    lines = RECORDING.read_bytes().splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        try:
            json.loads(line)
        except ValueError:
            if number < len(lines):
                sys.exit(f"s3: {RECORDING} is damaged at line {number}; refusing to start")
            print(f"s3: dropping a torn last line ({len(line)} bytes)", flush=True)
            RECORDING.write_bytes(b"".join(lines[:-1]))
            return number - 1
    return len(lines)


def _request(method: str, url: str) -> int:
    req = urllib.request.Request(url, method=method)  # noqa: S310 - our own loopback endpoint
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def main() -> int:
    host = os.environ.get("S3_HOST", "127.0.0.1")
    port = int(os.environ.get("S3_PORT", "9000"))
    buckets = [b for b in os.environ.get("S3_BUCKETS", "ad-data").split(",") if b]
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    READY.unlink(missing_ok=True)

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    base = f"http://{host}:{port}"
    if RECORDING.exists():
        lines = _check_recording()
        print(f"s3: replaying {lines} recorded requests from {RECORDING}", flush=True)
        recorder.replay_recording(target_host=base)
    recorder.start_recording()
    for bucket in buckets:
        if _request("HEAD", f"{base}/{bucket}") == 404:
            _request("PUT", f"{base}/{bucket}")
            print(f"s3: created bucket {bucket}", flush=True)
    READY.touch()
    print(f"s3: serving on {base}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
