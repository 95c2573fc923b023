"""`make psql` and `make accept-gap`: psql in the stack's postgres container, on the
warehouse, as the read-only role or (``owner``) as its owner; any further arguments go to psql.

    python3 platform/psql.py reader|owner [PSQL ARGUMENTS...]

A DSN holds its role's password, and every user of the host can read every process's
arguments (``ps``, /proc/<pid>/cmdline). So the DSN is taken apart here into libpq's
environment variables (PGHOST, PGUSER, PGPASSWORD, ...), and ``docker compose exec -e NAME``,
a name without a value, passes each on: Compose v2 takes the value from its own environment,
which only this user and root can read. No password is in the arguments of docker, of the
compose plugin or of psql. Standard library only: `make psql` needs no venv.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from pathlib import Path

from stack_client import load_env

ROOT = Path(__file__).resolve().parent.parent
DSN_SETTING = {"reader": "WAREHOUSE_DSN", "": "WAREHOUSE_DSN", "owner": "WAREHOUSE_OWNER_DSN"}
# libpq's connection keywords and the variable that sets each (libpq's "Environment Variables")
ENVIRONMENT = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "requirepeer": "PGREQUIREPEER",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "gssencmode": "PGGSSENCMODE",
}


class DsnError(Exception):
    """A DSN this script cannot take apart; the message never quotes it."""


def keywords(dsn: str) -> dict[str, str]:
    """libpq's keywords of ``dsn``, a URI (``postgresql://user:password@host:port/db?k=v``,
    percent-encoded) or ``key=value`` pairs (values in single quotes may hold spaces)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        return _uri(dsn)
    return _pairs(dsn)


def _uri(dsn: str) -> dict[str, str]:
    rest = dsn.split("://", 1)[1]
    rest, _, query = rest.partition("?")
    authority, _, path = rest.partition("/")
    found: dict[str, str] = {}
    userinfo, at, hostlist = authority.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            found["user"] = urllib.parse.unquote(user)
        if colon:
            found["password"] = urllib.parse.unquote(password)
    hosts, ports = [], []
    for entry in hostlist.split(",") if hostlist else []:
        if entry.startswith("["):  # an IPv6 address
            host, _, port = entry[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = entry.partition(":")
        hosts.append(urllib.parse.unquote(host))
        ports.append(port)
    if any(hosts):
        found["host"] = ",".join(hosts)
    if any(ports):
        found["port"] = ",".join(ports)
    if path:
        found["dbname"] = urllib.parse.unquote(path)
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")  # percent-encoded; a + is a +, not a space
        found[urllib.parse.unquote(key)] = urllib.parse.unquote(value)
    return found


def _pairs(dsn: str) -> dict[str, str]:
    found: dict[str, str] = {}
    i, n = 0, len(dsn)
    while i < n:
        while i < n and dsn[i].isspace():
            i += 1
        if i == n:
            break
        start = i
        while i < n and dsn[i] != "=" and not dsn[i].isspace():
            i += 1
        key = dsn[start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i == n or dsn[i] != "=" or not key:
            raise DsnError("it is neither a postgresql:// URI nor key=value pairs")
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        value = []
        if i < n and dsn[i] == "'":
            i += 1
            while i < n and dsn[i] != "'":
                if dsn[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(dsn[i])
                i += 1
            if i == n:
                raise DsnError(f"the value of {key} has no closing quote")
            i += 1
        else:
            while i < n and not dsn[i].isspace():
                if dsn[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(dsn[i])
                i += 1
        found[key] = "".join(value)
    return found


def environment(dsn: str) -> dict[str, str]:
    """The PG* variables that connect as ``dsn`` does."""
    found = keywords(dsn)
    unknown = sorted(set(found) - set(ENVIRONMENT))
    if unknown:
        raise DsnError(f"libpq has no environment variable for {', '.join(unknown)}")
    return {ENVIRONMENT[key]: value for key, value in found.items()}


def main(argv: list[str]) -> int:
    role = argv[0] if argv else ""
    if role not in DSN_SETTING:
        print(f"psql: ROLE is owner, or empty for the reader role, not {role!r}", file=sys.stderr)
        return 2
    load_env()
    setting = DSN_SETTING[role]
    try:
        variables = environment(os.environ[setting])
    except KeyError:
        print(f"psql: {setting} is not set: run `make env`", file=sys.stderr)
        return 2
    except DsnError as exc:
        print(f"psql: cannot read {setting}: {exc}", file=sys.stderr)
        return 2
    os.environ.update(variables)
    command = ["bash", str(ROOT / "platform" / "compose.sh"), "exec"]
    if not sys.stdin.isatty():
        command.append("-T")
    for name in sorted(variables):
        command += ["-e", name]  # the value from this process's environment, not argv
    command += ["postgres", "psql", *argv[1:]]
    os.execvp(command[0], command)  # noqa: S606 - compose, with fixed options


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
