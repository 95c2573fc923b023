"""`job_task`: one DockerOperator task running one adpipe job image.

The job gets its window on the command line and its connection settings as environment
variables. Secrets go through ``private_environment``, filled from Airflow connections when the
task runs (never at parse time), so they never show among the rendered fields in the UI:

- ``warehouse`` (postgres): WAREHOUSE_DSN
- ``ad_s3`` (aws; extra ``endpoint_url``, ``region_name``, ``bucket``): AWS_ACCESS_KEY_ID,
  AWS_SECRET_ACCESS_KEY, S3_ENDPOINT_URL, AWS_DEFAULT_REGION, S3_BUCKET
- ``ad_api`` (http): AD_API_URL
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import Asset, BaseHook

from adpipe_dags.notify import FailureNotifier

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "adpipe",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": FailureNotifier(),
}

# Lineage, as the UI shows it: api-load writes the backup, then the table; archive reads the
# table and writes the archive.
BACKUP = Asset(name="ad_impressions_backup", uri="s3://ad-data/backup/impressions/")
TABLE = Asset(name="ad_impressions", uri="postgres://warehouse/warehouse/public/ad_impressions")
ARCHIVE = Asset(name="ad_impressions_archive", uri="s3://ad-data/archive/ad_impressions/")


def _connection_env(conn_id: str) -> dict[str, str]:
    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    if conn_id == "warehouse":
        auth = f"{quote(conn.login or '', safe='')}:{quote(conn.password or '', safe='')}@"
        address = f"{conn.host}:{conn.port or 5432}/{conn.schema}"
        return {"WAREHOUSE_DSN": f"postgresql://{auth}{address}"}
    if conn_id == "ad_s3":
        env = {
            "AWS_ACCESS_KEY_ID": conn.login or "",
            "AWS_SECRET_ACCESS_KEY": conn.password or "",
            "AWS_DEFAULT_REGION": extra.get("region_name", "us-east-1"),
            "S3_BUCKET": extra.get("bucket", "ad-data"),
        }
        if extra.get("endpoint_url"):
            env["S3_ENDPOINT_URL"] = extra["endpoint_url"]
        return env
    if conn_id == "ad_api":
        scheme = conn.schema or "http"
        return {"AD_API_URL": f"{scheme}://{conn.host}{f':{conn.port}' if conn.port else ''}"}
    raise ValueError(f"no environment mapping for connection {conn_id!r}")


class JobOperator(DockerOperator):
    """DockerOperator for adpipe job images: connection settings resolved at run time."""

    def __init__(self, *, connections: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connections = connections

    def execute(self, context: Any) -> Any:
        for conn_id in self.connections:
            self._private_environment.update(_connection_env(conn_id))
        return super().execute(context)


def settings_env(*names: str) -> dict[str, str]:
    """Job settings the stack sets as ``ADPIPE_<NAME>`` (compose, from .env), as the job reads
    them (``NAME``); unset ones are left to the job's defaults."""
    return {
        name: os.environ[f"ADPIPE_{name}"] for name in names if os.environ.get(f"ADPIPE_{name}")
    }


def job_task(
    *,
    task_id: str,
    job: str,
    command: list[str],
    connections: tuple[str, ...],
    environment: dict[str, str] | None = None,
    **kwargs: Any,
) -> JobOperator:
    """A task running ``adpipe/<job>:<JOB_IMAGE_TAG>`` with ``command`` as its arguments."""
    return JobOperator(
        task_id=task_id,
        image=f"adpipe/{job}:{os.environ.get('ADPIPE_JOB_IMAGE_TAG', 'dev')}",
        command=command,
        # every job that touches PostgreSQL bounds its waits by these
        environment={
            **settings_env("WAREHOUSE_LOCK_TIMEOUT", "WAREHOUSE_STATEMENT_TIMEOUT"),
            **(environment or {}),
        },
        connections=connections,
        docker_url=os.environ.get("ADPIPE_DOCKER_URL", "unix://var/run/docker.sock"),
        network_mode=os.environ.get("ADPIPE_JOB_NETWORK_MODE", "host"),
        mount_tmp_dir=False,
        auto_remove="success",
        tty=False,
        **kwargs,
    )
