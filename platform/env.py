"""Create .env from .env.example, or add the settings .env.example gained since; then write
each job identity's own env file from it.

Values ``generate`` become fresh random secrets, ``generate-name`` a compose project name
(``adpipe-<6 hex>``), ``next-hour`` the first full hour after now (UTC); ``{NAME}`` in a
value is filled with the value of the setting NAME (so a DSN carries the password generated
for it). Existing values in .env are never changed.

``.env.<identity>`` (``adpipe.settings.ENV_FILES``: extract_backup, load, archive, reconcile,
migrate) holds only what that identity's commands read, under the names they read: a job run
by hand with ``docker run --env-file .env.load`` gets what the DAG gives it, nothing more.
Fault-test seams (``Setting.seam``) are never written, even when an older .env holds one.
Each is rewritten from .env every time, mode 0600. So is ``.env.airflow``, what compose
hands Airflow's containers: each DAG task's settings and the ad API's connection.

``TLS=1`` or ``TLS=0`` in the environment (`make env TLS=1`, `make start TLS=1`) switches
.env's TLS mode, the one change made to values already there (`switch_tls`): TLS, every
``*_DSN``'s ``sslmode=verify-full`` and ``sslrootcert``, the local S3 endpoint's scheme and
S3_CA_BUNDLE. Without it .env's mode stays as it is.

It runs with the system python3, before the venv exists: ``make env`` puts the shared package
on ``PYTHONPATH`` (``jobs/adpipe``), whose settings table needs only the standard library.
"""

import base64
import json
import os
import re
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from adpipe.errors import ConfigError
from adpipe.settings import ENV_FILES, airflow_env  # the jobs' own table, standard library only

ROOT = Path(__file__).resolve().parent.parent
# Where the CA of `make certs` is in every container that connects to PostgreSQL or S3 with
# TLS=1: the job containers (DAG tasks, `docker run`), migrate, health and psql. Written to
# .env (sslrootcert, S3_CA_BUNDLE), which everything else reads it from.
CA_IN_CONTAINERS = "/etc/adpipe/tls/ca.crt"
CA_ON_HOST = Path(".state") / "tls" / "ca.crt"  # `make certs` (platform/tls.sh), under ROOT
TLS_DSN_OPTIONS = {"sslmode": "verify-full", "sslrootcert": CA_IN_CONTAINERS}


def value(raw: str, known: dict[str, str]) -> str:
    if raw == "generate":
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    if raw == "next-hour":  # the first full hour after now, in UTC
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return hour.strftime("%Y-%m-%dT%H:%M:%SZ")
    if raw == "generate-name":
        # a checkout that named its project before .env did keeps that name (and its volumes)
        earlier = ROOT / ".state" / "compose-project"
        if earlier.exists() and earlier.read_text().strip():
            return earlier.read_text().strip()
        return f"adpipe-{secrets.token_hex(3)}"
    return re.sub(r"\{([A-Z0-9_]+)\}", lambda m: known[m.group(1)], raw)


def assignments(lines: list[str]) -> dict[str, str]:
    """The ``NAME=value`` lines of an env file as written (comments aside), by name."""
    return dict(
        line.partition("=")[::2] for line in lines if "=" in line and not line.startswith("#")
    )


def write_private(target: Path, text: str) -> None:
    """Write ``text`` to ``target``, readable by its owner only from its first byte."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    partial.replace(target)


def write_job_files(known: dict[str, str]) -> None:
    """Each identity's env file, its settings under the names its jobs read."""
    for env in ENV_FILES.values():
        lines = [f"# {env.name}: written by `make env` from .env; rewritten every time"]
        for name in env.written:
            read_as = env.settings().name(name)
            if read_as in known:
                lines.append(f"{read_as}={known[read_as]}")
        write_private(ROOT / f".env.{env.name}", "\n".join(lines) + "\n")


def write_airflow_file(known: dict[str, str]) -> None:
    """.env.airflow, which compose hands to Airflow's containers: every setting a DAG task
    passes to its job (`adpipe.settings.airflow_env`), and the ad API's connection with its
    credential, as the extract's identity holds it."""
    env = airflow_env(known)
    env["AIRFLOW_CONN_AD_API"] = api_connection(
        known["AD_API_URL"], known.get("AD_API_AUTH", ""), known.get("EXTRACT_AD_API_TOKEN", "")
    )
    if known.get("TLS") == "1":  # the CA the DAGs mount into each job container, from the host
        env["ADPIPE_TLS_CA_FILE"] = str(ROOT / CA_ON_HOST)
    lines = ["# .env.airflow: written by `make env` from .env; rewritten every time"]
    lines += [f"{name}={text}" for name, text in env.items()]
    write_private(ROOT / ".env.airflow", "\n".join(lines) + "\n")


def api_connection(address: str, auth: str, token: str) -> str:
    """The ``ad_api`` Airflow connection (JSON) for the API at ``address``: its token as the
    password, how to send it (``auth``) in its extra."""
    parts = urlsplit(address)
    connection: dict[str, object] = {
        "conn_type": parts.scheme,
        "host": parts.hostname or "",
        "schema": parts.path.strip("/"),
    }
    if parts.port:
        connection["port"] = parts.port
    if token:
        connection["password"] = token
    # always said, none too: with a password and no auth the DAG would assume bearer
    connection["extra"] = {"auth": auth or "none"}
    return json.dumps(connection, separators=(",", ":"))


def tls_dsn(dsn: str, on: bool) -> str:
    """``dsn`` with the server verified against the CA (``TLS_DSN_OPTIONS``), or without
    exactly those options; every other option kept byte for byte (the query is edited as
    text: a decode and re-encode would turn an option's %20 into +, which libpq reads
    literally)."""
    base, _, query = dsn.partition("?")
    ours = {f"{key}={found}" for key, found in TLS_DSN_OPTIONS.items()}
    options = [part for part in query.split("&") if part and part not in ours]
    if on:
        options += [f"{key}={found}" for key, found in TLS_DSN_OPTIONS.items()]
    return f"{base}?{'&'.join(options)}" if options else base


def local_dsn(dsn: str, port: str | None) -> bool:
    """Whether ``dsn`` names the stack's own PostgreSQL (127.0.0.1 or localhost, its port):
    the TLS switch changes no other server's options (a managed one's own sslmode stays)."""
    parts = urlsplit(dsn.partition("?")[0])
    return parts.hostname in ("127.0.0.1", "localhost") and str(parts.port or 5432) == str(port)


def switch_tls(on: bool) -> None:
    """.env in TLS mode or out of it: TLS, each libpq URI ``*_DSN`` (`tls_dsn`), the local S3
    endpoint's scheme (127.0.0.1:S3_PORT only: another endpoint is the operator's) and
    S3_CA_BUNDLE. Every other value, and the order, stays."""
    target = ROOT / ".env"
    lines = target.read_text().splitlines()
    known = assignments(lines)
    local_s3 = {f"{scheme}://127.0.0.1:{known.get('S3_PORT')}" for scheme in ("http", "https")}
    changed = {"TLS": "1" if on else "0"}
    for key, found in known.items():
        if (
            key.endswith("_DSN")
            and found.startswith(("postgresql://", "postgres://"))
            and local_dsn(found, known.get("POSTGRES_PORT"))
        ):
            changed[key] = tls_dsn(found, on)
    # the CA and the scheme only of the stack's own S3: another endpoint is the operator's
    if known.get("S3_ENDPOINT_URL", "").rstrip("/") in local_s3:
        changed["S3_ENDPOINT_URL"] = f"{'https' if on else 'http'}://127.0.0.1:{known['S3_PORT']}"
        changed["S3_CA_BUNDLE"] = CA_IN_CONTAINERS if on else ""
    rewritten = [
        f"{key}={changed.pop(key)}" if "=" in line and key in changed else line
        for line in lines
        for key in [line.partition("=")[0]]
    ]
    rewritten += [f"{key}={found}" for key, found in changed.items()]  # names .env lacked
    if rewritten != lines:
        write_private(target, "\n".join(rewritten) + "\n")
        print(f"env: TLS {'on' if on else 'off'} in .env", file=sys.stderr)


def main() -> int:
    written = ensure_env()
    if os.environ.get("TLS") in ("0", "1"):
        switch_tls(os.environ["TLS"] == "1")
    known = assignments((ROOT / ".env").read_text().splitlines())
    write_job_files(known)
    try:
        write_airflow_file(known)
    except ConfigError as exc:  # a typo in .env, named before any DAG runs on it
        print(f"env: {exc} ({exc.hint}); fix it in .env, then `make env`", file=sys.stderr)
        return 2
    return written


def ensure_env() -> int:
    example = (ROOT / ".env.example").read_text().splitlines()
    target = ROOT / ".env"
    settings = [
        line.partition("=")[::2] for line in example if "=" in line and not line.startswith("#")
    ]
    if not target.exists():
        known: dict[str, str] = {}
        for key, raw in settings:
            known[key] = value(raw, known)
        lines = [
            f"{k}={known[k]}" if "=" in line and not line.startswith("#") else line
            for line in example
            for k in [line.partition("=")[0]]
        ]
        # it holds every secret of the stack
        write_private(target, "\n".join(lines) + "\n")
        print("env: wrote .env from .env.example", file=sys.stderr)
        return 0
    target.chmod(0o600)
    known = assignments(target.read_text().splitlines())
    missing = [(key, raw) for key, raw in settings if key not in known]
    if missing:
        with target.open("a") as out:
            for key, raw in missing:
                known[key] = value(raw, known)
                out.write(f"{key}={known[key]}\n")
        print(f"env: added to .env: {', '.join(key for key, _ in missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
