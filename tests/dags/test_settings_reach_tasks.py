"""Every setting a job identity reads reaches each DAG task of that identity: the plain ones
as its environment (``ADPIPE_<NAME>``, from .env.airflow), the rest through its connections
(`connection_env`). Set to a value of its own, each must arrive as that value, under the
name the job reads it; one missing fails here, before any run goes out on a default."""

from __future__ import annotations

import json
from typing import Any

import pytest
from adpipe import check
from adpipe.job import Command
from adpipe.settings import ENV_FILES, SETTINGS, airflow_env, listed
from adpipe_dags.jobs import JobOperator, connection_env
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.connection import Connection
from conftest import DAGS
from helpers import marked

# the connections a stack gives Airflow, each saying everything a job may read from one
CONNECTIONS = {
    "warehouse": "postgresql://reader:pw@db:5432/warehouse",
    "warehouse_load": "postgresql://loader:pw@db:5432/warehouse",
    "warehouse_archive": "postgresql://archiver:pw@db:5432/warehouse",
    "ad_api": json.dumps(
        {
            "conn_type": "https",
            "host": "ads.example.com",
            "password": "the-token",
            "extra": {"auth": "header:X-Api-Key"},
        }
    ),
}


def connection(conn_id: str) -> Any:
    if conn_id.startswith("s3_"):
        extra = {"endpoint_url": "https://s3.example.com", "region_name": "eu-west-1"}
        return Connection(
            conn_id=conn_id,
            conn_type="aws",
            login="key",
            password="secret",  # noqa: S106 - made up for the test
            extra=json.dumps({**extra, "bucket": "ad-data"}),
        )
    found = CONNECTIONS[conn_id]
    if found.startswith("{"):
        fields = json.loads(found)
        return Connection(conn_id=conn_id, **{**fields, "extra": json.dumps(fields["extra"])})
    return Connection.from_uri(found, conn_id=conn_id)


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> list[JobOperator]:
    """Every job task of the product's DAGs, parsed with each setting at its marked value."""
    values = {name: marked(name) for name in SETTINGS if not SETTINGS[name].seam}
    for name, value in airflow_env(values).items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(DAGS), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    found = [
        task for dag in bag.dags.values() for task in dag.tasks if isinstance(task, JobOperator)
    ]
    assert {task.identity for task in found} >= {"extract_backup", "load", "archive", "reconcile"}
    return found


def commands() -> dict[tuple[str, str], Command]:
    """Each image's commands, by (image, command): what a task's job reads is its command's."""
    from adpipe_archive.archive import RUN as ARCHIVE
    from adpipe_archive.reconcile import RECONCILE
    from adpipe_extract_backup.extract_backup import RUN as EXTRACT
    from adpipe_load.load_impressions import RUN as LOAD

    found = {
        ("extract_backup", "run"): EXTRACT,
        ("load", "run"): LOAD,
        ("archive", "run"): ARCHIVE,
        ("archive", "reconcile"): RECONCILE,
    }
    for job in ("extract_backup", "load", "archive"):
        found[(job, "check")] = check.command(job)
    return found


def test_every_setting_a_tasks_command_reads_reaches_it(tasks: list[JobOperator]) -> None:
    known = commands()
    for task in tasks:
        image = task.image.rpartition("/")[2].partition(":")[0]
        command = known[(image, task.command[0])]
        assert command.env_file == task.identity, task.task_id
        reads = command.reads()
        given = dict(task.environment)
        for conn_id in task.connections:
            given.update(connection_env(connection(conn_id)))
        for name in listed(reads.names or ()):
            read_as = reads.name(name)
            assert read_as in given, f"{task.dag_id}.{task.task_id} never passes {read_as}"
            if name in ENV_FILES[task.identity].passed:
                assert given[read_as] == marked(name), (task.task_id, read_as)


def test_no_task_passes_what_its_identity_does_not_read(tasks: list[JobOperator]) -> None:
    for task in tasks:
        reader = ENV_FILES[task.identity].settings()
        reads = {reader.name(name) for name in ENV_FILES[task.identity].written}
        assert set(task.environment) <= reads, (task.task_id, set(task.environment) - reads)
