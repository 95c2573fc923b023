"""The warehouse on a managed PostgreSQL service, where nobody is a superuser: a throwaway
server of the stack's image is given only what such a service gives (an owner role with LOGIN
and CREATEROLE that owns a fresh database); as that owner, platform/postgres/roles.sql makes
the jobs' roles and migrate the schema, and a window of the stack's ad API loads into it as
the loader, which may still not change the schema."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import days
import helpers
import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql

pytestmark = pytest.mark.usefixtures("stack")

IMAGE = "adpipe/postgres:dev"
MIGRATE = ("adpipe/archive:dev", "migrate")
ROLES_SQL = helpers.ROOT / "platform" / "postgres" / "roles.sql"
OWNER, DATABASE = "warehouse_owner", "managed_warehouse"
JOB_ROLES = ("adpipe_loader", "adpipe_archiver", "adpipe_reader")
PASSWORD_SETTINGS = {
    "adpipe_loader": "WAREHOUSE_LOADER_PASSWORD",
    "adpipe_archiver": "WAREHOUSE_ARCHIVER_PASSWORD",
    "adpipe_reader": "WAREHOUSE_READER_PASSWORD",
}
START = days.moment("test_managed_postgres", hour=10)
END = START + timedelta(hours=1)


@dataclass
class Server:
    """The throwaway server: its port, and the passwords in force."""

    port: int
    superuser_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    owner_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    passwords: dict[str, str] = field(default_factory=dict)

    def connect(
        self, user: str, password: str, dbname: str = DATABASE
    ) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=5,
        )

    def dsn(self, user: str) -> str:
        return f"postgresql://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/{DATABASE}"

    def roles_sql(
        self, user: str, password: str, passwords: dict[str, str]
    ) -> subprocess.CompletedProcess:
        """roles.sql of this checkout, by psql in the image, as ``user``; every password
        reaches psql through the environment (``-e NAME``), never its arguments."""
        env = {"PGPASSWORD": password}
        env |= {PASSWORD_SETTINGS[role]: value for role, value in passwords.items()}
        argv = ["docker", "run", "--rm", "-i", "--network", "host"]
        for name in env:
            argv += ["-e", name]
        argv += [IMAGE, "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user]
        argv += ["-d", DATABASE, "-q", "-f", "-"]
        return subprocess.run(
            argv,
            input=ROLES_SQL.read_text(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, **env},
        )

    def apply_roles(self, passwords: dict[str, str]) -> None:
        """roles.sql as the owner; ``passwords`` are the ones in force after it."""
        done = self.roles_sql(OWNER, self.owner_password, passwords)
        assert done.returncode == 0, done.stderr
        self.passwords = dict(passwords)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _new_passwords() -> dict[str, str]:
    return {role: secrets.token_urlsafe(18) for role in JOB_ROLES}


def _wait_ready(server: Server, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.connect("postgres", server.superuser_password, "postgres").close()
            return
        except psycopg2.OperationalError as exc:
            running = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Running}}", name],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            if running != "true" or time.monotonic() > deadline:
                logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
                raise AssertionError(f"{name} took no connection: {exc}\n{logs.stderr}") from None
            time.sleep(0.3)


def _bootstrap(server: Server) -> None:
    """What the provider's console gives, and nothing more: the owner (no superuser, no
    CREATEDB, CREATEROLE) and the warehouse database it owns."""
    conn = server.connect("postgres", server.superuser_password, "postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB CREATEROLE PASSWORD %s"
                ).format(sql.Identifier(OWNER)),
                (server.owner_password,),
            )
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(OWNER)
                )
            )
    finally:
        conn.close()


@contextlib.contextmanager
def _throwaway(found: Server, stack_init: dict[str, str] | None = None) -> Iterator[None]:
    """A PostgreSQL server of the stack's image on ``found.port`` of 127.0.0.1, with the
    host's network as the stack runs it; with the stack's init scripts and ``stack_init``'s
    settings for them, else none. Removed at the end, whatever happened."""
    name = f"adpipe-test-managed-pg-{uuid.uuid4().hex[:8]}"
    env = {"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": found.superuser_password}
    env |= stack_init or {}
    argv = ["docker", "run", "-d", "--name", name, "--network", "host"]
    if stack_init is None:
        argv += ["--tmpfs", "/docker-entrypoint-initdb.d"]
    for setting in env:
        argv += ["-e", setting]
    argv += [IMAGE, "postgres", "-c", "listen_addresses=127.0.0.1", "-c", f"port={found.port}"]
    try:
        subprocess.run(argv, capture_output=True, timeout=60, check=True, env={**os.environ, **env})
        _wait_ready(found, name)
        yield
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A server with only what a managed service gives; roles.sql and the migrations applied
    as its owner."""
    found = Server(port=_free_port())
    with _throwaway(found):
        _bootstrap(found)
        found.apply_roles(_new_passwords())
        migrate = subprocess.run(
            ["docker", "run", "--rm", "--network", "host", "-e", "WAREHOUSE_OWNER_DSN", *MIGRATE],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={
                **os.environ,
                "WAREHOUSE_OWNER_DSN": f"postgresql://{OWNER}:{found.owner_password}"
                f"@127.0.0.1:{found.port}/{DATABASE}",
            },
        )
        assert helpers.summary(migrate)["exit_code"] == 0, migrate.stdout + migrate.stderr
        yield found


def test_no_role_of_the_managed_warehouse_is_a_superuser(server: Server) -> None:
    conn = server.connect(OWNER, server.owner_password)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolcanlogin"
                " FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
                ([OWNER, *JOB_ROLES],),
            )
            roles = {name: flags for name, *flags in cur.fetchall()}
    finally:
        conn.close()
    assert roles[OWNER][0] is False  # the owner did everything above without it
    for role in JOB_ROLES:  # no superuser, CREATEROLE, CREATEDB; NOINHERIT; may log in
        assert roles[role] == [False, False, False, False, True], role


def test_a_window_loads_into_it_as_the_loader_who_may_not_change_the_schema(
    server: Server,
) -> None:
    window = ("--start", START.isoformat(), "--end", END.isoformat())
    extract = helpers.docker_run("adpipe/extract_backup:dev", *window)
    assert extract.returncode == 0, extract.stderr
    load = helpers.docker_run(
        "adpipe/load:dev", *window, env={"LOAD_WAREHOUSE_DSN": server.dsn("adpipe_loader")}
    )
    written = helpers.summary(load)
    assert written["exit_code"] == 0, load.stdout + load.stderr

    conn = server.connect("adpipe_loader", server.passwords["adpipe_loader"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s",
                (START, END),
            )
            (rows,) = cur.fetchone()
            cur.execute(
                "SELECT rows_written FROM load_runs WHERE window_start = %s AND window_end = %s",
                (START, END),
            )
            runs = cur.fetchall()
        conn.rollback()
        for statement in ("CREATE TABLE scratch (x int)", "DROP TABLE ad_impressions"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
                cur.execute(statement)
            conn.rollback()
    finally:
        conn.close()
    assert rows == written["rows_written"] > 0
    assert runs[-1] == (rows,)
    # and it went to this server, not to the stack's warehouse
    assert helpers.query(
        "SELECT count(*) FROM ad_impressions WHERE shown_at >= %s AND shown_at < %s", (START, END)
    ) == [(0,)]


def test_roles_sql_applied_again_puts_the_new_passwords_in_force(server: Server) -> None:
    before = dict(server.passwords)
    server.apply_roles(_new_passwords())
    for role in JOB_ROLES:
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            server.connect(role, before[role]).close()
        conn = server.connect(role, server.passwords[role])
        try:
            with conn.cursor() as cur:  # the grants of migration 0003 are still theirs
                cur.execute("SELECT count(*) FROM schema_migrations")
                assert cur.fetchone()[0] > 0
        finally:
            conn.close()


def test_roles_sql_run_by_a_role_that_does_not_own_the_database_names_who_must(
    server: Server,
) -> None:
    reader = "adpipe_reader"
    done = server.roles_sql(reader, server.passwords[reader], _new_passwords())
    assert done.returncode == 3, done.stderr  # psql's: the script stopped at an error
    assert f"roles.sql runs as the owner of database {DATABASE}" in done.stderr, done.stderr
    server.connect(reader, server.passwords[reader]).close()  # its password unchanged


def test_a_stack_made_before_keeps_starting_and_its_owner_keeps_no_createrole() -> None:
    """The stack's own path (docker-compose.yml's warehouse-init) on a volume made before
    roles.sql ran as the owner: the jobs' roles were the superuser's, the owner had no
    CREATEROLE. warehouse-init.sql of this checkout, as compose runs it, twice."""
    found = Server(port=_free_port())
    settings = {
        "WAREHOUSE_USER": OWNER,
        "WAREHOUSE_PASSWORD": found.owner_password,
        "WAREHOUSE_DB": DATABASE,
        "POSTGRES_DB": "airflow_meta",
    }
    with _throwaway(found, stack_init=settings):
        conn = found.connect("postgres", found.superuser_password)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:  # as the superuser's roles.sql made them
                for role in JOB_ROLES:
                    cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        finally:
            conn.close()
        for _ in range(2):
            passwords = _new_passwords()
            env = {
                **settings,
                "PGPASSWORD": found.superuser_password,
                "AIRFLOW_DB_USER": "airflow_meta_owner",
                "AIRFLOW_DB_PASSWORD": secrets.token_urlsafe(18),
            }
            env |= {PASSWORD_SETTINGS[role]: value for role, value in passwords.items()}
            argv = ["docker", "run", "--rm", "--network", "host"]
            argv += ["-v", f"{ROLES_SQL.parent}:/opt/adpipe:ro"]  # this checkout's scripts
            for setting in env:
                argv += ["-e", setting]
            argv += [IMAGE, "psql", "-h", "127.0.0.1", "-p", str(found.port), "-U", "postgres"]
            argv += ["-d", DATABASE, "-q", "-f", "/opt/adpipe/warehouse-init.sql"]
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, **env},
            )
            assert done.returncode == 0, done.stderr
            for role in JOB_ROLES:
                found.connect(role, passwords[role]).close()
        conn = found.connect(OWNER, found.owner_password)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT rolname, rolcreaterole, rolinherit FROM pg_roles"
                    " WHERE rolname = ANY(%s)",
                    ([OWNER, *JOB_ROLES],),
                )
                roles = {name: flags for name, *flags in cur.fetchall()}
        finally:
            conn.close()
        assert roles.pop(OWNER) == [False, True]  # lent CREATEROLE for the step, taken back
        assert roles == {role: [False, False] for role in JOB_ROLES}
