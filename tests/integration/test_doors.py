"""Every door of the stack authenticates: the S3 server's other ports are out of reach, every
listener is in docs/security.md's table, and a job run by hand holds its own identity and
nothing more."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import uuid
from pathlib import Path

import days
import helpers
import pytest
from helpers import ROOT, compose, docker_run

pytestmark = pytest.mark.usefixtures("stack")

# SeaweedFS's ports inside its container (platform/s3/serve.py) and the requests that, with
# no credentials, would list, store or delete objects there
MASTER, VOLUME, FILER = 9333, 9480, 9888

# Run with python3 wherever it stands (the host, a job container, the S3 container): each
# unauthenticated request to SeaweedFS's other ports, and what came back (a status, or the
# error that kept it from being sent).
PROBE = r"""
import json, sys, urllib.request
host, key = sys.argv[1], sys.argv[2]
def call(method, url, data=None):
    request = urllib.request.Request(url, method=method, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__
found = {
    "filer_get": call("GET", f"http://{host}:9888/buckets/ad-data/?limit=5"),
    "filer_delete": call("DELETE", f"http://{host}:9888/buckets/ad-data/{key}"),
    "master_assign": call("GET", f"http://{host}:9333/dir/assign"),
    "volume_post": call("POST", f"http://{host}:9480/1,01637037d6", b"blob"),
    "master_col_delete": call("GET", f"http://{host}:9333/col/delete?collection=ad-data"),
}
print(json.dumps(found))
"""


def _s3_container() -> str:
    found = compose("ps", "-q", "s3").stdout.strip()
    assert found, "the s3 service does not run"
    return found


def _s3_address() -> str:
    """The S3 container's address on its own network: reachable from the host."""
    return subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            _s3_container(),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _probe_here(host: str, key: str) -> dict[str, object]:
    done = subprocess.run(
        ["python3", "-c", PROBE, host, key], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def _probe_in_job_container(host: str, key: str) -> dict[str, object]:
    done = docker_run("adpipe/load:dev", "-c", PROBE, host, key, entrypoint="python3", timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _refused(found: dict[str, object]) -> bool:
    """Nothing was sent: every request found no listener."""
    return all(isinstance(result, str) for result in found.values())


@pytest.fixture
def probe_object() -> str:
    key = f"probe/doors-{uuid.uuid4().hex}.bin"
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=key, Body=b"still here")
    return key


def test_inside_its_container_seaweedfs_would_answer_the_probes(probe_object: str) -> None:
    # the control: the probes reach SeaweedFS where it listens, so their refusal elsewhere
    # is the namespace's doing, not a probe that cannot work (a GET lists; no DELETE here)
    done = subprocess.run(
        [
            "docker",
            "exec",
            _s3_container(),
            "python3",
            "-c",
            PROBE.split("found = {")[0]
            + "print(call('GET', f'http://{host}:9888/buckets/ad-data/?limit=5'))",
            "127.0.0.1",
            probe_object,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "200", done.stdout + done.stderr


@pytest.mark.parametrize("where", ["host", "job container"])
def test_no_request_without_credentials_reaches_seaweedfs_other_ports(
    where: str, probe_object: str
) -> None:
    probe = _probe_here if where == "host" else _probe_in_job_container
    for host in ("127.0.0.1", _s3_address()):
        found = probe(host, probe_object)
        assert _refused(found), f"{where} -> {host}: {found}"
    body = helpers.get(probe_object)
    assert body == b"still here"


def _weed_shell(where: list[str], master: str) -> subprocess.CompletedProcess:
    """``s3.bucket.list`` through ``weed shell`` run by ``where`` (bounded: the shell waits
    for a master forever)."""
    return subprocess.run(
        [*where, "timeout", "6", "weed", "shell", f"-master={master}"],
        input="s3.bucket.list\n",
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_weed_shell_lists_buckets_only_inside_the_s3_container() -> None:
    listed = re.compile(r"^\s*ad-data\s+size:", re.M)
    # the control: inside its network namespace the shell reaches the master
    inside = _weed_shell(["docker", "exec", "-i", _s3_container()], f"127.0.0.1:{MASTER}")
    assert listed.search(inside.stdout), inside
    # outside it, on the host's network, nothing answers: not on loopback, not on the
    # container's own address
    outside = ["docker", "run", "--rm", "-i", "--network", "host", "--entrypoint", "env"]
    for host in ("127.0.0.1", _s3_address()):
        done = _weed_shell([*outside, "adpipe/s3:dev"], f"{host}:{MASTER}")
        assert done.returncode != 0 and not listed.search(done.stdout), done


def test_a_signed_request_still_works_through_the_one_published_port() -> None:
    key = f"probe/doors-{uuid.uuid4().hex}.bin"
    helpers.s3().put_object(Bucket=helpers.bucket(), Key=key, Body=b"x" * 100)
    assert helpers.get(key) == b"x" * 100


# ---- every listener of the stack is in docs/security.md's table, on 127.0.0.1 ----


def _documented_listeners() -> dict[int, str]:
    """Port -> service, from docs/security.md's table of listeners (a port named by its setting
    takes that setting's value from .env; rows of the celery profile only under Celery)."""
    section = (ROOT / "docs" / "security.md").read_text().split("\n## Every listener\n")[1]
    section = section.split("\n#")[0]
    celery = os.environ.get("EXECUTOR", "local") == "celery"
    found = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        match = re.fullmatch(r"`127\.0\.0\.1:(\d+)`(?: \(`([A-Z0-9_]+)`\))?", cells[0])
        if not match:
            continue
        if "celery profile" in row and not celery:
            continue
        port = int(os.environ[match[2]]) if match[2] else int(match[1])
        found[port] = cells[1]
    assert found, "docs/security.md has no listener table"
    return found


def _container_ids() -> set[str]:
    listed = compose("ps", "-q").stdout.split()
    full = subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", *listed], capture_output=True, text=True, check=True
    )
    return set(full.stdout.split())


def _owner(pid: int, ids: set[str], s3_address: str) -> str | None:
    """'stack' when the process runs in one of the stack's containers, or is the engine's
    proxy for a port the stack published; None for anything else on the machine."""
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if any(container in cgroup for container in ids):
        return "stack"
    if cmdline and cmdline[0].endswith(b"docker-proxy") and s3_address.encode() in cmdline:
        return "stack"
    return None


def _host_ss(network: str, *args: str) -> list[str]:
    """The host's own `ss` with ``args``, run as root in a container on the network
    ``network`` (``host``, or ``container:<id>``) that also sees the host's processes. Only root
    may name the process behind another user's socket, or enter a container's network; a user
    in the docker group may do both this way, as the tests run."""
    command = [
        *("docker", "run", "--rm", "--network", network, "--pid", "host"),
        *("--cap-add", "SYS_PTRACE", "--user", "0", "-v", "/:/host:ro"),
        *("--entrypoint", "chroot", "adpipe/ad-api:dev", "/host", "ss", *args),
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()


@pytest.mark.alone
def test_every_listener_of_the_stack_is_documented_and_on_loopback() -> None:
    ids, s3_address = _container_ids(), _s3_address()
    lines = _host_ss("host", "-ltnpH")
    opened: dict[int, str] = {}
    for line in lines:
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
        if any(_owner(pid, ids, s3_address) for pid in pids):
            opened[int(port)] = address
    expected = _documented_listeners()
    assert set(opened) == set(expected), (opened, expected)
    assert set(opened.values()) == {"127.0.0.1"}, opened


def test_inside_the_s3_container_only_the_published_port_faces_its_network() -> None:
    lines = _host_ss(f"container:{_s3_container()}", "-ltnH")
    facing = {line.split()[3] for line in lines if not line.split()[3].startswith("127.")}
    assert facing in ({f"0.0.0.0:{os.environ['S3_PORT']}"}, {f"*:{os.environ['S3_PORT']}"}), lines
    inside = {int(line.split()[3].rpartition(":")[2]) for line in lines}
    assert {MASTER, VOLUME, FILER} <= inside, "SeaweedFS's ports moved: update this test"


# ---- a job run by hand holds its own identity, and nothing more ----

JOB_FILES = ("extract_backup", "load", "archive", "reconcile", "migrate")


def _env_file(name: str) -> dict[str, str]:
    path = ROOT / f".env.{name}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if line and line[0] != "#"
    )


# the only secrets each identity's file may hold: its own S3 secret and its role's password
OWN_SECRETS = {
    "extract_backup": {"EXTRACT_AWS_SECRET_ACCESS_KEY"},
    "load": {"LOAD_AWS_SECRET_ACCESS_KEY", "WAREHOUSE_LOADER_PASSWORD"},
    "archive": {"ARCHIVE_AWS_SECRET_ACCESS_KEY", "WAREHOUSE_ARCHIVER_PASSWORD"},
    "reconcile": {"RECONCILE_AWS_SECRET_ACCESS_KEY", "WAREHOUSE_READER_PASSWORD"},
    "migrate": {"WAREHOUSE_PASSWORD"},
}


@pytest.mark.parametrize("name", JOB_FILES)
def test_a_jobs_env_file_holds_its_own_secrets_and_no_other(name: str) -> None:
    held = _env_file(name)
    secrets = {
        key: value
        for key, value in os.environ.items()
        if key.endswith(("_PASSWORD", "SECRET_ACCESS_KEY", "SECRET_KEY", "FERNET_KEY"))
        and key != "AIRFLOW_PASSWORD"  # the UI's login, airflow/airflow by the assignment
    }
    holding = {key for key, value in secrets.items() if any(value in v for v in held.values())}
    assert holding == OWN_SECRETS[name], holding
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "POSTGRES_PASSWORD"} & set(held)


@pytest.mark.parametrize(
    ("name", "image", "commands"),
    [
        ("extract_backup", "extract_backup", ("run", "check")),
        ("load", "load", ("run", "check")),
        ("archive", "archive", ("run", "restore", "adopt", "set-aside", "retire", "check")),
        ("reconcile", "archive", ("reconcile",)),
        ("migrate", "archive", ("migrate",)),
    ],
)
def test_a_jobs_env_file_holds_exactly_the_settings_its_commands_help_lists(
    name: str, image: str, commands: tuple[str, ...]
) -> None:
    listed = set()
    for command in commands:
        done = subprocess.run(
            ["docker", "run", "--rm", f"adpipe/{image}:dev", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        listed |= set(re.findall(r"^  ([A-Z][A-Z0-9_]+)$", done.stdout, re.M))
    optional = {"ADPIPE_LOG_LEVEL", "ADPIPE_DEBUG"}
    assert set(_env_file(name)) == listed - optional, listed


def test_a_load_run_by_hand_with_its_env_file_loads_and_without_its_key_refuses() -> None:
    start = days.moment("test_doors", hour=7)
    end = start + helpers.timedelta(hours=1)
    window = ("run", "--start", start.isoformat(), "--end", end.isoformat())
    extracted = docker_run("adpipe/extract_backup:dev", *window)
    assert extracted.returncode == 0, extracted.stderr
    loaded = helpers.summary(docker_run("adpipe/load:dev", *window))
    assert loaded["exit_code"] == 0 and loaded["rows_written"] > 0, loaded
    assert helpers.window_checksum(start, end)[0] == loaded["rows_written"]

    held = _env_file("load")
    for missing in ("LOAD_AWS_ACCESS_KEY_ID", "LOAD_WAREHOUSE_DSN"):
        partial = ROOT / ".state" / f"env-load-without-{missing}"
        partial.write_text("".join(f"{k}={v}\n" for k, v in held.items() if k != missing))
        partial.chmod(0o600)
        try:
            # the operator's key in the environment too: a fallback to it would run
            done = subprocess.run(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--network",
                    "host",
                    "--env-file",
                    str(partial),
                    # the names only: docker takes their values from this environment
                    *("-e", "AWS_ACCESS_KEY_ID", "-e", "AWS_SECRET_ACCESS_KEY"),
                    *("-e", "WAREHOUSE_DSN"),
                    "adpipe/load:dev",
                    *window,
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env=os.environ,
            )
        finally:
            partial.unlink()
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"FAILED load: setting {missing} is missing" in done.stderr, done.stderr


def test_make_reconcile_runs_the_image_with_the_reconcile_identitys_env_file() -> None:
    # a day nothing loads: no day to report, and exit 0 (run without .env.reconcile's
    # settings, the image exits 2 naming the first one missing)
    done = subprocess.run(
        ["make", "--no-print-directory", "reconcile", "FROM=2018-01-01", "TO=2018-01-01", "JSON=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = helpers.summary(done)
    assert result["exit_code"] == 0 and result["job"] == "reconcile", result
    assert (result["from"], result["to"], result["days"]) == ("2018-01-01", "2018-01-01", 0)
