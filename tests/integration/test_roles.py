"""Each job's PostgreSQL role is refused what it must not do; only the owner changes the
schema. (That each job still does its work under its role, the rest of the suite shows: every
job container runs with the role .env gives it.)"""

from __future__ import annotations

import os

import helpers
import psycopg2
import psycopg2.errors
import pytest

pytestmark = pytest.mark.usefixtures("stack")

REFUSED = (psycopg2.errors.InsufficientPrivilege,)


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        ("LOAD_WAREHOUSE_DSN", "DROP TABLE ad_impressions"),
        ("LOAD_WAREHOUSE_DSN", "TRUNCATE ad_impressions"),
        ("LOAD_WAREHOUSE_DSN", "TRUNCATE load_runs"),
        ("LOAD_WAREHOUSE_DSN", "DELETE FROM archive_manifest"),
        ("LOAD_WAREHOUSE_DSN", "UPDATE archive_manifest SET restored_at = now()"),
        ("LOAD_WAREHOUSE_DSN", "DELETE FROM load_runs"),
        # history is insert-only: a committed run keeps its window, manifest and counts
        ("LOAD_WAREHOUSE_DSN", "UPDATE load_runs SET window_start = window_start - interval '1d'"),
        ("LOAD_WAREHOUSE_DSN", "UPDATE load_runs SET manifest_sha256 = repeat('0', 64)"),
        ("LOAD_WAREHOUSE_DSN", "UPDATE load_runs SET rows_written = rows_written + 1"),
        ("ARCHIVE_WAREHOUSE_DSN", "UPDATE archive_manifest SET sha256 = repeat('0', 64)"),
        ("ARCHIVE_WAREHOUSE_DSN", "UPDATE archive_manifest SET rows = rows + 1"),
        ("ARCHIVE_WAREHOUSE_DSN", "UPDATE archive_manifest SET object_key = 'elsewhere'"),
        ("ARCHIVE_WAREHOUSE_DSN", "DELETE FROM load_runs"),
        ("LOAD_WAREHOUSE_DSN", "CREATE TABLE ad_impressions_29991231 (x int)"),
        ("LOAD_WAREHOUSE_DSN", "SELECT adpipe_drop_empty_partition('2999-12-31')"),
        ("LOAD_WAREHOUSE_DSN", "SELECT adpipe_hold_partition('2999-12-31')"),
        ("LOAD_WAREHOUSE_DSN", "SELECT adpipe_empty_partition('2999-12-31', 0)"),
        ("WAREHOUSE_DSN", "SELECT adpipe_empty_partition('2999-12-31', 0)"),
        (
            "ARCHIVE_WAREHOUSE_DSN",
            "INSERT INTO load_runs (window_start, window_end, manifest_key,"
            " manifest_sha256, pages, received, valid, rejected, duplicates, rows_written,"
            " rows_replaced, started_at) VALUES (now(), now() + interval '1 hour', 'k', 'x', 0, 0,"
            " 0, 0, 0, 0, 0, now())",
        ),
        ("ARCHIVE_WAREHOUSE_DSN", "DROP TABLE archive_manifest"),
        ("ARCHIVE_WAREHOUSE_DSN", "DELETE FROM archive_manifest"),
        ("ARCHIVE_WAREHOUSE_DSN", "ALTER TABLE ad_impressions ADD COLUMN x int"),
        ("WAREHOUSE_DSN", "INSERT INTO ad_impressions SELECT * FROM ad_impressions LIMIT 1"),
        ("WAREHOUSE_DSN", "DELETE FROM ad_impressions"),
        ("WAREHOUSE_DSN", "UPDATE load_runs SET rows_written = 0"),
        ("WAREHOUSE_DSN", "DELETE FROM schema_migrations"),
        ("WAREHOUSE_DSN", "CREATE TABLE scratch (x int)"),
        ("WAREHOUSE_DSN", "SELECT adpipe_ensure_partition('2999-12-31')"),
    ],
)
def test_a_jobs_role_is_refused_what_it_must_not_do(role: str, statement: str) -> None:
    assert helpers.attempt(role, statement) == "InsufficientPrivilege"


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        ("LOAD_WAREHOUSE_DSN", "SELECT count(*) FROM archive_manifest"),
        ("ARCHIVE_WAREHOUSE_DSN", "SELECT count(*) FROM ad_impressions"),
        ("WAREHOUSE_DSN", "SELECT count(*) FROM load_runs"),
    ],
)
def test_a_jobs_role_may_read_what_its_checks_need(role: str, statement: str) -> None:
    assert helpers.attempt(role, statement) == "ok"


@pytest.mark.parametrize(
    ("restored", "statement"),
    [
        # a restored object stays restored
        (True, "UPDATE archive_manifest SET restored_at = NULL WHERE object_key = 'archive/probe'"),
        # set aside only as it leaves the archive
        (
            False,
            "UPDATE archive_manifest SET set_aside_key = 'x' WHERE object_key = 'archive/probe'",
        ),
    ],
)
def test_the_archiver_changes_an_object_only_as_it_leaves_the_archive(
    restored: bool, statement: str
) -> None:
    import helpers

    (archive_id,) = helpers.query(
        "INSERT INTO archive_manifest (object_key, shown_date, rows, bytes, sha256, ids_sha256,"
        " min_shown_at, max_shown_at, run_date, restored_at) VALUES ('archive/probe', "
        "'2999-12-31', 1, 1, repeat('0', 64), repeat('0', 64), now(), now(), '2999-12-31', "
        "CASE WHEN %s THEN now() END) RETURNING archive_id",
        (restored,),
    )[0]
    try:
        assert helpers.attempt("ARCHIVE_WAREHOUSE_DSN", statement) == "InsufficientPrivilege"
    finally:
        helpers.query("DELETE FROM archive_manifest WHERE archive_id = %s", (archive_id,))


def test_the_archiver_empties_a_partition_only_while_holding_it_and_at_its_count() -> None:
    import helpers

    day = "2999-12-30"
    hold = f"SELECT adpipe_hold_partition('{day}'); "
    helpers.query(f"SELECT adpipe_ensure_partition('{day}')")
    helpers.query(
        "INSERT INTO ad_impressions VALUES (gen_random_uuid(), 1, 2, 3, 'feed', 'mobile', "
        "'DE', %s, 4, 'EUR', false, 0)",
        (f"{day} 10:00Z",),
    )
    try:
        empty = f"SELECT adpipe_empty_partition('{day}', %s)"
        # not held against writers: what it would empty may differ from what was read
        assert helpers.attempt("ARCHIVE_WAREHOUSE_DSN", empty % 1) == "ObjectNotInPrerequisiteState"
        # held, but the count is not the partition's
        assert helpers.attempt("ARCHIVE_WAREHOUSE_DSN", hold + empty % 2) == (
            "ObjectNotInPrerequisiteState"
        )
        assert helpers.attempt("ARCHIVE_WAREHOUSE_DSN", hold + empty % 1) == "ok"  # rolled back
        assert helpers.query(
            "SELECT count(*) FROM ad_impressions WHERE shown_at::date = %s", (day,)
        ) == [(1,)]
    finally:
        helpers.query(f"DROP TABLE ad_impressions_{day.replace('-', '')}")


def test_no_role_of_the_stack_but_the_superuser_is_one() -> None:
    conn = psycopg2.connect(os.environ["WAREHOUSE_DSN"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT rolname FROM pg_roles WHERE rolsuper OR rolcreaterole OR rolcreatedb"
            )
            powerful = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    assert powerful == {os.environ["POSTGRES_USER"]}


def test_airflow_talks_to_its_metadata_database_as_a_role_that_is_no_superuser() -> None:
    import helpers

    # the tests' own superuser sessions (other groups', side by side) are not Airflow's
    sessions = helpers.admin_query(
        "SELECT DISTINCT a.usename, r.rolsuper FROM pg_stat_activity a"
        " JOIN pg_roles r ON r.rolname = a.usename"
        " WHERE a.datname = %s AND a.pid <> pg_backend_pid() AND a.application_name <> %s",
        (os.environ["POSTGRES_DB"], helpers.SUPERUSER_APP),
    )
    assert sessions, "no session on Airflow's metadata database"
    assert {user for user, _ in sessions} == {os.environ["AIRFLOW_DB_USER"]}
    assert not any(is_super for _, is_super in sessions)
