"""The job tasks as Kubernetes pods: `pod_dag` turns a DAG of `JobOperator` tasks into the same
DAG whose every task runs its job image with the KubernetesPodOperator.

A pod gets what the DockerOperator's container gets, read from the task itself, whatever
decided it: the image, the command as its arguments (the image's own entrypoint), the task's
``environment`` (its settings, no secret) as ``env_vars``, and, in place of the connections
the task resolves at run time, one Kubernetes Secret per job identity (``adpipe-<identity>``,
the identity its S3 connection names) exposed whole as environment (``envFrom``).
`secret_manifest` renders that Secret from the same Airflow connections with
`connection_env`, so it holds exactly the names the job reads. The pod runs as the images'
non-root user with no privilege escalation.

What the DockerOperator adds and a pod does not: the job's SUMMARY as XCom and asset-event
extra, its OpenLineage facets, and exit codes 2 and 3 failing the task without retries (the
pod's log keeps the SUMMARY and FAILED lines).
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk import DAG, BaseOperator
from kubernetes.client import models as k8s

from adpipe_dags.jobs import JobOperator, connection_env

DAGS = Path(__file__).resolve().parents[1]
JOB_USER = 10001  # the job images' user (USER in jobs/*/Dockerfile)
# what a job task carries over to its pod besides image, command, environment and secret
TASK_ARGUMENTS = (
    "owner",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "execution_timeout",
    "inlets",
    "outlets",
)


def job_dag(path: str) -> DAG:
    """The DAG that the DAG file at ``path`` (under dags/) defines, built by that file itself,
    so its tasks are the DockerOperator's, and left unregistered: the file asking for it
    defines the pods' DAG under the same id."""
    from airflow.sdk.definitions._internal.contextmanager import DagContext

    file = DAGS / path
    spec = importlib.util.spec_from_file_location(f"adpipe_job_dag_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ValueError(f"no DAG file at {file}")
    module = importlib.util.module_from_spec(spec)
    # while a DAG file is parsed, Airflow registers every DAG made in it, ours included
    asking, DagContext.current_autoregister_module_name = (
        DagContext.current_autoregister_module_name,
        None,
    )
    try:
        spec.loader.exec_module(module)
    finally:
        DagContext.current_autoregister_module_name = asking
    dags = {id(t.dag): t.dag for t in vars(module).values() if isinstance(t, BaseOperator)}
    if len(dags) != 1:
        raise ValueError(f"{path} defines {len(dags)} DAGs with tasks, not one")
    return next(iter(dags.values()))


def secret_name(task: JobOperator) -> str:
    """The Kubernetes Secret of the task's job identity: the one its S3 connection names
    (``s3_load``: ``adpipe-load``)."""
    identities = [c.removeprefix("s3_") for c in task.connections if c.startswith("s3_")]
    if len(identities) != 1:
        raise ValueError(f"task {task.task_id!r} names {len(identities)} S3 identities, not one")
    return f"adpipe-{identities[0]}"


def secret_manifest(task: JobOperator, connections: dict[str, Any], namespace: str) -> dict:
    """The Secret the task's pod reads (``kubectl apply -f``), from the Airflow connections the
    DockerOperator would read (``connections``: conn id to connection): each one's
    `connection_env`, so the same names as the job's env file."""
    data: dict[str, str] = {}
    for conn_id in task.connections:
        data.update(connection_env(connections[conn_id]))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(task), "namespace": namespace},
        "type": "Opaque",
        "stringData": data,
    }


def pod_task(task: JobOperator, *, registry: str, namespace: str, **pod: Any) -> Any:
    """The KubernetesPodOperator running what ``task`` runs, with the image from ``registry``
    (the tag the task names: ``JOB_IMAGE_TAG``); ``pod``: more of its arguments."""
    return KubernetesPodOperator(
        task_id=task.task_id,
        namespace=namespace,
        image=f"{registry}/{task.image}",
        cmds=[],  # the image's entrypoint, as under Docker
        arguments=list(task.command),
        env_vars=dict(task.environment),
        secrets=[Secret("env", None, secret_name(task))],
        security_context=k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=JOB_USER),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False, capabilities=k8s.V1Capabilities(drop=["ALL"])
        ),
        # the job prints its SUMMARY to the log; it writes no XCom file for a sidecar
        do_xcom_push=False,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
        **{name: getattr(task, name) for name in TASK_ARGUMENTS},
        **pod,
    )


def pod_dag(source: DAG, *, registry: str, namespace: str, **pod: Any) -> DAG:
    """``source`` again, same id, schedule and policy, every job task a pod (`pod_task`), any
    other task (api-load's wait for late records) a copy of itself; two tasks of one identity
    with different connections (one Secret cannot hold both) are refused."""
    secrets: dict[str, tuple[str, ...]] = {}
    for task in source.tasks:
        if not isinstance(task, JobOperator):
            continue
        if secrets.setdefault(secret_name(task), task.connections) != task.connections:
            raise ValueError(f"{source.dag_id}: {secret_name(task)} would need two contents")
    with DAG(
        dag_id=source.dag_id,
        doc_md=source.doc_md,
        schedule=source.timetable,
        start_date=source.start_date,
        catchup=source.catchup,
        max_active_runs=source.max_active_runs,
        is_paused_upon_creation=source.is_paused_upon_creation,
        default_args=source.default_args,
        deadline=source.deadline,
        tags=[*source.tags, "kubernetes"],
    ) as dag:
        pods = {
            task.task_id: pod_task(task, registry=registry, namespace=namespace, **pod)
            for task in source.tasks
            if isinstance(task, JobOperator)
        }
    for task in source.tasks:
        if not isinstance(task, JobOperator):
            carried = copy.deepcopy(task)
            carried._dag = None
            dag.add_task(carried)
            pods[task.task_id] = carried
    for task in source.tasks:
        for downstream in task.downstream_task_ids:
            pods[task.task_id] >> pods[downstream]
    return dag
