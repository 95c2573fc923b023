"""### adpipe-smoke

Runs ``check`` in each job image with the DockerOperator: proves the Airflow containers
reach the Docker engine and every job image reaches PostgreSQL and S3 with its own identity,
from the connections Airflow hands it. Manual only.

- **Owner**: adpipe
- **Connections**: ``s3_extract``, ``warehouse_load``, ``s3_load``, ``warehouse_archive``,
  ``s3_archive``
"""

from datetime import UTC, datetime

from adpipe_dags.jobs import DEFAULT_ARGS, job_task
from airflow.sdk import DAG

with DAG(
    dag_id="adpipe-smoke",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=True,
    default_args=DEFAULT_ARGS,
    tags=["adpipe", "smoke"],
):
    for job, connections in (
        ("extract_backup", ("s3_extract",)),
        ("load", ("warehouse_load", "s3_load")),
        ("archive", ("warehouse_archive", "s3_archive")),
    ):
        job_task(task_id=f"check_{job}", job=job, command=["check"], connections=connections)
