"""The stack's S3 server: SeaweedFS (``weed server -s3``) in a network namespace of its own.

SeaweedFS's master, volume and filer servers, their gRPC ports and its S3 gateway's gRPC port
take requests without credentials (a DELETE on the filer removes an object). So every port of
SeaweedFS listens on the container's loopback, where nothing outside the container reaches,
and one relay (socat) carries the S3 port alone to the container's network, where compose
publishes it on the host's 127.0.0.1. The S3 port checks every request's signature.

At start it writes the S3 identities from the environment (one per job, each limited to what
that job needs, and the operator's, as access.py's table grants them) to a file only this
user can read, starts SeaweedFS with telemetry off, waits until its master knows every
volume on disk (before that an object stored before the start cannot be read), creates the
bucket when it is missing, opens the relay and marks itself ready.
Objects live in SeaweedFS's own on-disk format under /data: nothing is replayed at start.

With S3_TLS_CERT and S3_TLS_KEY (PEM files; the stack's TLS=1) the relay speaks HTTPS with
that certificate, and a plain HTTP request to the S3 port gets no answer: the gateway behind
it stays on the container's loopback, in plain HTTP.

Environment: S3_PORT, S3_BUCKET, for each identity the pair <PREFIX>AWS_ACCESS_KEY_ID /
<PREFIX>AWS_SECRET_ACCESS_KEY, and S3_TLS_CERT / S3_TLS_KEY.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from access import GRANTS, environment_prefix, seaweedfs_actions

DATA = Path("/data")
CONFIG = Path("/run/s3/identities.json")
READY = Path("/tmp/s3-ready")  # noqa: S108 - inside the container, for the health check
START_TIMEOUT = 120.0
# A stop's bound: weed's filer waits on its own metadata streams and never finishes a
# graceful stop, so what has not exited by then is killed (docker would, after 10 s)
STOP_SECONDS = 3.0
LOOPBACK = "127.0.0.1"  # the container's own: nothing outside the container reaches it
# SeaweedFS's ports inside the container; each one's gRPC port is 10000 higher
MASTER_PORT, VOLUME_PORT, FILER_PORT, GATEWAY_PORT = 9333, 9480, 9888, 8333
VOLUME_MB = 1024  # one SeaweedFS volume; objects span several
# SeaweedFS stops writing (every volume read-only, no new one) while less than this is free on
# the disk it shares with PostgreSQL: a write that met a full disk would leave a volume with
# half a record. It looks once a minute; what is left is room for the warehouse's WAL
# (max_wal_size, 4GB in docker-compose.yml) to finish a load, and `make status` and the
# capacity alarm say how many days the disk lasts before that.
MIN_FREE = "4GiB"


def identities(buckets: list[str]) -> list[dict]:
    """Each identity of .env with its grants (`access.GRANTS`) in every bucket (the data's,
    and the bench's, where `make bench` runs the same jobs with the same identities). A
    ``Write`` action also allows DELETE inside its scope; SeaweedFS has no finer grant."""
    found = []
    for name in GRANTS:
        prefix = environment_prefix(name)
        key = os.environ.get(f"{prefix}AWS_ACCESS_KEY_ID", "")
        secret = os.environ.get(f"{prefix}AWS_SECRET_ACCESS_KEY", "")
        if not key or not secret or secret == "generate":  # noqa: S105 - the placeholder
            sys.exit(f"s3: {prefix}AWS_ACCESS_KEY_ID and {prefix}AWS_SECRET_ACCESS_KEY must be set")
        found.append(
            {
                "name": name,
                "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": seaweedfs_actions(name, buckets),
            }
        )
    return found


def wait_port(server: subprocess.Popen, host: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"s3: {server.args[0]} exited with {server.returncode} before it listened")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"s3: {server.args[0]} did not listen on {host}:{port} within {START_TIMEOUT:.0f} s")


def shell(master: str, command: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed arguments
        ["weed", "shell", f"-master={master}"],  # noqa: S607
        input=command,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout + done.stderr


def ensure_bucket(master: str, bucket: str, deadline: float) -> None:
    """Create the bucket unless it exists; the filer may answer a few seconds after S3."""
    while time.monotonic() < deadline:
        listed = shell(master, "s3.bucket.list")
        if "error" not in listed:
            if not any(line.split() and line.split()[0] == bucket for line in listed.splitlines()):
                created = shell(master, f"s3.bucket.create -name {bucket}")
                if "error" in created:
                    sys.exit(f"s3: creating bucket {bucket} failed: {created.strip()}")
                print(f"s3: created bucket {bucket}", flush=True)
            return
        time.sleep(1)
    sys.exit(f"s3: the filer did not answer within {START_TIMEOUT:.0f} s")


def served_volumes(master: str) -> int | None:
    """How many volumes the master knows a volume server for; None until a volume server has
    joined (from the master's own status page, on the container's loopback)."""
    url = f"http://{master}/dir/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            topology = json.load(answer)["Topology"]
    except (OSError, ValueError, KeyError):
        return None
    nodes = [
        node
        for centre in topology.get("DataCenters") or []
        for rack in centre.get("Racks") or []
        for node in rack.get("DataNodes") or []
    ]
    return sum(node.get("Volumes", 0) for node in nodes) if nodes else None


def wait_volumes(master: str, deadline: float) -> None:
    """Until the master knows every volume on disk. The gateway answers, and the filer lists
    the objects, before the volume server has loaded its volumes and told the master: a read
    then finds no volume to read from (500 InternalError)."""
    on_disk = len(list(DATA.glob("*.dat")))
    began, served = time.monotonic(), None
    while time.monotonic() < deadline:
        served = served_volumes(master)
        if served is not None and served >= on_disk:
            waited = time.monotonic() - began
            print(f"s3: {served} volumes served, {waited:.1f} s after S3 answered", flush=True)
            return
        time.sleep(0.2)
    sys.exit(
        f"s3: the master knows {served or 0} of the {on_disk} volumes in {DATA} after "
        f"{START_TIMEOUT:.0f} s; what the volume server says: make logs SERVICE=s3"
    )


def relay(port: int, tls: tuple[str, str] | None = None) -> subprocess.Popen:
    """The S3 port on every address of the container (compose publishes it on the host's
    127.0.0.1), relayed to the gateway on loopback; nothing else leaves the container. With
    ``tls`` (certificate and key files) the port speaks TLS only; clients are not asked for a
    certificate of their own (every request is signed)."""
    listen = f"TCP-LISTEN:{port},reuseaddr,fork,backlog=256"
    if tls:
        cert, key = tls
        listen = f"OPENSSL-LISTEN:{port},reuseaddr,fork,backlog=256,cert={cert},key={key},verify=0"
    return subprocess.Popen(  # noqa: S603 - fixed arguments
        [  # noqa: S607
            "socat",
            "-b262144",  # 256 KiB reads: backups and archive objects are megabytes
            listen,
            f"TCP:{LOOPBACK}:{GATEWAY_PORT},nodelay",
        ]
    )


def tls_files() -> tuple[str, str] | None:
    """S3_TLS_CERT and S3_TLS_KEY, both readable, or None when neither is set."""
    cert, key = os.environ.get("S3_TLS_CERT", ""), os.environ.get("S3_TLS_KEY", "")
    if not cert and not key:
        return None
    for name, path in (("S3_TLS_CERT", cert), ("S3_TLS_KEY", key)):
        if not path or not os.access(path, os.R_OK):
            sys.exit(
                f"s3: {name} ({path or 'unset'}) is not a file this user (uid {os.getuid()}) can "
                "read; `make certs` writes them, the stack's tls-keys step hands them over"
            )
    return cert, key


def main() -> None:
    port = int(os.environ.get("S3_PORT", "9000"))
    tls = tls_files()
    bucket = os.environ.get("S3_BUCKET", "ad-data")
    # the bench's own bucket: `make bench` never writes where the data lives
    buckets = [bucket, os.environ.get("BENCH_S3_BUCKET", f"{bucket}-bench")]
    CONFIG.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(CONFIG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"identities": identities(buckets)}, out)
    READY.unlink(missing_ok=True)
    server = subprocess.Popen(  # noqa: S603 - fixed arguments
        [  # noqa: S607
            "weed",
            "server",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-dir={DATA}",
            f"-master.port={MASTER_PORT}",
            f"-volume.port={VOLUME_PORT}",
            f"-filer.port={FILER_PORT}",
            "-master.telemetry=false",
            f"-master.volumeSizeLimitMB={VOLUME_MB}",
            # the one master elects itself after this long at a start (the default, 10 s, is
            # most of a restart's wait); it has no peer whose heartbeat it could miss
            "-master.electionTimeout=1s",
            # as many 1 GiB volumes as the disk holds: the volume server counts its slots again
            # at every heartbeat, the volumes it has plus what fits in the free space they do
            # not claim yet, so the store grows with the disk (a fixed count made it full at
            # that many GiB whatever the disk held). Before the master has told it the size
            # limit it has no slots, and the volumes on disk load all the same (wait_volumes)
            "-volume.max=0",
            f"-volume.minFreeSpace={MIN_FREE}",
            # stop in about a second, not the default ten
            "-volume.preStopSeconds=1",
            "-s3",
            f"-s3.port={GATEWAY_PORT}",
            f"-s3.config={CONFIG}",
            # the gateway's Iceberg and Lance catalogs: unauthenticated, and unused here
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # the gateway's read buffers and its chunk cache, 64 MB each at most
            "-s3.readerCacheSizeMB=64",
            "-s3.cacheCapacityMB=64",
        ]
    )
    children = [server]
    signal.signal(signal.SIGTERM, lambda *_: [child.terminate() for child in children])
    deadline = time.monotonic() + START_TIMEOUT
    wait_port(server, LOOPBACK, GATEWAY_PORT, deadline)
    wait_volumes(f"{LOOPBACK}:{MASTER_PORT}", deadline)
    for name in buckets:
        ensure_bucket(f"{LOOPBACK}:{MASTER_PORT}", name, deadline)
    children.append(relay(port, tls))
    wait_port(children[-1], LOOPBACK, port, deadline)
    READY.touch()
    scheme = "HTTPS" if tls else "HTTP"
    print(
        f"s3: SeaweedFS serving s3://{bucket} on port {port} ({scheme}), its other ports closed",
        flush=True,
    )
    while all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        child.terminate()
    sys.exit(max(stopped(child, time.monotonic() + STOP_SECONDS) for child in children))


def stopped(child: subprocess.Popen, deadline: float) -> int:
    """The child's exit code once it has exited, killed if it is still running at ``deadline``."""
    try:
        return child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


if __name__ == "__main__":
    main()
