"""Airflow connections become the job environment they stand for, keeping all they say."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from adpipe_dags.jobs import connection_env, job_task, summary
from airflow.sdk.definitions.connection import Connection


def test_an_https_api_with_a_path_keeps_its_scheme_port_and_path() -> None:
    conn = Connection.from_uri("https://ads.example.com:8443/v2", conn_id="ad_api")
    assert connection_env(conn) == {"AD_API_URL": "https://ads.example.com:8443/v2"}
    plain = Connection.from_uri("http://127.0.0.1:8081", conn_id="ad_api")
    assert connection_env(plain) == {"AD_API_URL": "http://127.0.0.1:8081"}


def test_the_http_providers_form_with_the_scheme_in_schema() -> None:
    conn = Connection(conn_id="ad_api", conn_type="http", host="ads.example.com", schema="https")
    assert connection_env(conn) == {"AD_API_URL": "https://ads.example.com"}


def test_a_dsn_keeps_every_option_and_its_password() -> None:
    password = "p#/@%w0rd"  # noqa: S105 - made up for the test
    uri = (
        "postgresql://loader:p%23%2F%40%25w0rd@db.internal:5433/warehouse"
        "?sslmode=require&connect_timeout=5"
    )
    dsn = connection_env(Connection.from_uri(uri, conn_id="warehouse"))["WAREHOUSE_DSN"]
    import psycopg2.extensions

    parsed = psycopg2.extensions.parse_dsn(dsn)
    assert parsed["password"] == password and parsed["user"] == "loader"
    assert (parsed["host"], parsed["port"], parsed["dbname"]) == (
        "db.internal",
        "5433",
        "warehouse",
    )
    assert (parsed["sslmode"], parsed["connect_timeout"]) == ("require", "5")
    assert urlsplit(dsn).scheme == "postgresql"


def test_an_unknown_connection_id_fails_at_parse_time() -> None:
    with pytest.raises(ValueError, match="unknown connections"):
        job_task(task_id="t", job="load", command=[], connections=("warehouse", "ad_s3"))


@pytest.mark.parametrize(
    "output",
    [
        b'SUMMARY {"job": "load", "image_version": "0.1.0+abc", "rows_written": 2990}',
        'SUMMARY {"job": "load", "image_version": "0.1.0+abc", "rows_written": 2990}',
        [
            "a log line",
            'SUMMARY {"job": "load", "image_version": "0.1.0+abc", "rows_written": 2990}',
        ],
    ],
)
def test_a_job_tasks_xcom_is_its_summary_as_a_dict(output: object) -> None:
    assert summary(output) == {"job": "load", "image_version": "0.1.0+abc", "rows_written": 2990}


@pytest.mark.parametrize("output", [None, b"", "no summary here", "SUMMARY {not json", "SUMMARY 3"])
def test_output_without_a_summary_gives_no_xcom_rather_than_an_error(output: object) -> None:
    assert summary(output) is None


def _aws(conn_id: str) -> Connection:
    return Connection(conn_id=conn_id, conn_type="aws", login="key", extra='{"endpoint_url": "x"}')


@pytest.mark.parametrize(
    ("conn", "env_file"),
    [
        (_aws("s3_extract"), "extract_backup"),
        (_aws("s3_load"), "load"),
        (Connection.from_uri("postgresql://u:p@h:5/w", conn_id="warehouse_load"), "load"),
        (_aws("s3_archive"), "archive"),
        (Connection.from_uri("postgresql://u:p@h:5/w", conn_id="warehouse_archive"), "archive"),
        (_aws("s3_reconcile"), "reconcile"),
        (Connection.from_uri("postgresql://u:p@h:5/w", conn_id="warehouse"), "reconcile"),
    ],
)
def test_a_task_hands_a_job_its_identity_under_the_names_its_env_file_holds(
    conn: Connection, env_file: str
) -> None:
    from adpipe.settings import ENV_FILES

    env = ENV_FILES[env_file]
    read_as = {env.settings().name(name) for name in env.names}
    assert set(connection_env(conn)) <= read_as, (connection_env(conn), read_as)
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(connection_env(conn))


def test_a_task_fails_at_once_on_exactly_the_exit_codes_the_jobs_call_final() -> None:
    from adpipe import errors
    from adpipe_dags.jobs import FINAL_EXIT_CODES

    failures = (errors.JobError, errors.ConfigError, errors.DataError, errors.UpstreamError)
    assert {f.exit_code for f in failures if not f.retried} == FINAL_EXIT_CODES
