"""The Kubernetes path in docs/scale-out.md runs as written and gives every job, as a pod,
what its DockerOperator task gives it: the same image and command (rendered, the same
arguments), the task's environment as the pod's, and a Secret per job identity holding
exactly what the task's connections become at run time. So the jobs read the same names
(adpipe.settings' env files) on Kubernetes as under Docker."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from adpipe.settings import ENV_FILES
from adpipe_dags.jobs import connection_env
from adpipe_dags.kubernetes import pod_dag, secret_manifest
from airflow.sdk.definitions.connection import Connection

ROOT = Path(__file__).resolve().parents[2]
SCALE_OUT = ROOT / "docs" / "scale-out.md"
DAG_FILES = {"api-load": "api_load/api_load_dag.py", "archive": "archive/archive_dag.py"}
# the job identity's env file (`make env`), whose names are all a job reads
ENV_FILE_OF = {"extract": "extract_backup", "load": "load", "archive": "archive"}
ENV_FILE_OF["reconcile"] = "reconcile"
# settings the stack hands the DAGs (compose: ADPIPE_<name>), so the tasks carry some
STACK_SETTINGS = {
    "ADPIPE_WINDOW_MINUTES": "30",
    "ADPIPE_WAREHOUSE_LOCK_TIMEOUT": "10s",
    "ADPIPE_LOAD_MAX_REJECTED_SHARE": "0.02",
    "ADPIPE_ARCHIVE_RETENTION_DAYS": "40",
    "ADPIPE_JOB_IMAGE_TAG": "0123456789ab",
}
# made-up connections, every field the jobs read set (the S3 extras too)
CONNECTIONS = {
    "ad_api": Connection.from_uri("https://ads.example.com:8443/v2", conn_id="ad_api"),
    **{
        f"warehouse{role}": Connection.from_uri(
            f"postgresql://user{role}:pw%40{role}@db.internal:5432/warehouse?sslmode=require",
            conn_id=f"warehouse{role}",
        )
        for role in ("", "_load", "_archive")
    },
    **{
        f"s3_{job}": Connection(
            conn_id=f"s3_{job}",
            conn_type="aws",
            login=f"key-{job}",
            password=f"secret-{job}",
            extra=json.dumps(
                {"endpoint_url": "https://s3.example.com", "region_name": "eu-west-1"}
                | {"bucket": "ad-data"}
            ),
        )
        for job in ENV_FILE_OF
    },
}


def documented_example() -> str:
    text = SCALE_OUT.read_text()
    found = re.search(r"<!-- kubernetes-pod-example -->\s*```python\n(.*?)```", text, re.S)
    assert found, "docs/scale-out.md lost its KubernetesPodOperator example"
    return found.group(1)


def pod_env(pod: Any) -> dict[str, str]:
    """The environment the pod's container is created with (no cluster needed)."""
    container = pod.build_pod_request_obj(dry_run=True).spec.containers[0]
    return {variable.name: variable.value for variable in container.env}


@pytest.fixture
def dags(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Any, Any]]:
    """Per DAG id: the DAG as the stack parses it (DockerOperator tasks) and the one the
    documented block defines (pods), both parsed with the same settings."""
    from airflow.dag_processing.dagbag import DagBag

    for name, value in STACK_SETTINGS.items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {}
    exec(compile(documented_example(), "docs/scale-out.md", "exec"), namespace)  # noqa: S102 - ours
    pods = {dag.dag_id: dag for dag in namespace.values() if type(dag).__name__ == "DAG"}
    assert set(pods) == set(DAG_FILES)
    docker = {}
    for dag_id, path in DAG_FILES.items():
        bag = DagBag(dag_folder=str(ROOT / "dags" / path), safe_mode=False)
        assert bag.import_errors == {}, bag.import_errors
        docker[dag_id] = bag.dags[dag_id]
    return {dag_id: (docker[dag_id], pods[dag_id]) for dag_id in DAG_FILES}


def test_every_job_task_becomes_a_pod_with_its_environment_and_image(
    dags: dict[str, tuple[Any, Any]],
) -> None:
    for docker, pods in dags.values():
        assert {t.task_id for t in pods.tasks} == {t.task_id for t in docker.tasks}
        assert pods.timetable == docker.timetable, "the same schedule"
        assert (pods.start_date, pods.catchup, pods.max_active_runs) == (
            docker.start_date,
            docker.catchup,
            docker.max_active_runs,
        )
        for task in docker.tasks:
            pod = pods.get_task(task.task_id)
            assert type(pod).__name__ == "KubernetesPodOperator"
            assert task.environment, f"{task.task_id}: the test's settings reach no task"
            assert pod_env(pod) == task.environment
            assert pod.image == f"registry.example.com/{task.image}"
            assert task.image.endswith(":0123456789ab")
            assert pod.cmds == [], "the image's own entrypoint, unchanged"
            assert pod.arguments == task.command
            assert pod.downstream_task_ids == task.downstream_task_ids
            assert (pod.retries, pod.execution_timeout) == (task.retries, task.execution_timeout)
            spec = pod.build_pod_request_obj(dry_run=True).spec
            assert spec.security_context.run_as_non_root is True
            container = spec.containers[0]
            assert container.security_context.allow_privilege_escalation is False
            assert [e.secret_ref.name for e in container.env_from] == [pod.secrets[0].secret]


def test_each_identitys_secret_holds_exactly_what_its_connections_become(
    dags: dict[str, tuple[Any, Any]],
) -> None:
    seen = set()
    for docker, pods in dags.values():
        for task in docker.tasks:
            manifest = secret_manifest(task, CONNECTIONS, "adpipe")
            name = manifest["metadata"]["name"]
            assert [s.secret for s in pods.get_task(task.task_id).secrets] == [name]
            expected: dict[str, str] = {}
            for conn_id in task.connections:
                expected |= connection_env(CONNECTIONS[conn_id])
            assert manifest["stringData"] == expected
            # every name the Secret holds is one its job identity's env file holds
            identity = name.removeprefix("adpipe-")
            env_file = ENV_FILES[ENV_FILE_OF[identity]]
            reads = {env_file.settings().name(setting) for setting in env_file.written}
            assert set(expected) <= reads, task.task_id
            assert f"{identity.upper()}_AWS_SECRET_ACCESS_KEY" in expected
            seen.add(name)
    assert seen == {f"adpipe-{identity}" for identity in ENV_FILE_OF}


def test_pods_and_docker_tasks_render_the_same_arguments(
    dags: dict[str, tuple[Any, Any]],
) -> None:
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    context = {
        "data_interval_start": start,
        "data_interval_end": start + timedelta(minutes=30),
        "ds": "2026-11-20",
        "macros": SimpleNamespace(timedelta=timedelta),
    }
    rendered = {}
    for docker, pods in dags.values():
        for task in docker.tasks:
            pod = pods.get_task(task.task_id)
            task.render_template_fields(dict(context))
            pod.render_template_fields(dict(context))
            assert pod.arguments == task.command
            assert pod_env(pod) == task.environment
            rendered[task.task_id] = pod.arguments
    window = ["--start", "2026-11-20T10:00:00+00:00", "--end", "2026-11-20T10:30:00+00:00"]
    assert rendered == {
        "extract_backup": ["run", *window],
        "load_impressions": ["run", *window],
        "archive_days": ["run", "--date", "2026-11-20"],
        "reconcile_days": ["reconcile", "--to", "2026-11-19"],
    }


def test_a_deployment_parses_the_documented_file_as_the_two_dags_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Airflow parses it (DAGs made while a file is parsed are registered to it), the
    documented file defines api-load and archive as pods, and not their Docker versions."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("ADPIPE_JOB_IMAGE_TAG", "0123456789ab")
    (tmp_path / "kubernetes_dags.py").write_text(documented_example())
    bag = DagBag(dag_folder=str(tmp_path), safe_mode=False)
    assert bag.import_errors == {}, bag.import_errors
    assert set(bag.dags) == set(DAG_FILES)
    kinds = {type(task).__name__ for dag in bag.dags.values() for task in dag.tasks}
    assert kinds == {"KubernetesPodOperator"}


def test_a_task_that_is_not_a_job_is_carried_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """api-load with API_LATENESS_MINUTES: its wait for late records stays a sensor, upstream
    of the extract's pod."""
    from adpipe_dags.kubernetes import job_dag

    monkeypatch.setenv("ADPIPE_API_LATENESS_MINUTES", "7")
    source = job_dag(Path("api_load/api_load_dag.py"))
    dag = pod_dag(source, registry="registry.example.com", namespace="adpipe")
    wait = dag.get_task("wait_for_late_records")
    assert type(wait).__name__ == "DateTimeSensorAsync" and wait.dag_id == "api-load"
    assert wait.downstream_task_ids == {"extract_backup"}
    assert type(dag.get_task("extract_backup")).__name__ == "KubernetesPodOperator"
