"""`job_task`: one DockerOperator task running one adpipe job image.

The job gets its window on the command line and its connection settings as environment
variables. Secrets go through ``private_environment``, filled from Airflow connections when the
task runs (never at parse time), so they never show among the rendered fields in the UI. Each
connection maps by its type, keeping everything it says:

- ``warehouse_load``, ``warehouse_archive`` and ``warehouse`` (postgres; the loader's, the
  archiver's and the read-only role): LOAD_WAREHOUSE_DSN, ARCHIVE_WAREHOUSE_DSN and
  WAREHOUSE_DSN, with every option the connection holds (sslmode, ...)
- ``s3_extract``, ``s3_load``, ``s3_archive``, ``s3_reconcile`` (aws; extra ``endpoint_url``,
  ``region_name``, ``bucket``): each job's own S3 identity, as <JOB>_AWS_ACCESS_KEY_ID and
  <JOB>_AWS_SECRET_ACCESS_KEY, and S3_ENDPOINT_URL, AWS_DEFAULT_REGION, S3_BUCKET
- ``ad_api`` (http or https): AD_API_URL, scheme, port and path kept; its password, the
  API's token, as EXTRACT_AD_API_TOKEN, sent as its extra's ``auth`` says (AD_API_AUTH:
  ``bearer``, the default with a password, or ``header:<Name>``, e.g. ``header:X-Api-Key``)

With TLS (``make start TLS=1``) each job container also gets the CA of ``make certs``,
read-only, where its settings name it (``ADPIPE_TLS_CA_FILE`` on the host, mounted at
``ADPIPE_S3_CA_BUNDLE``, the path the DSNs' sslrootcert name too): `ca_mounts`.

The credential names are the ones the job reads and the ones its env file (``make env``)
holds, so a task and ``docker run --env-file .env.<job>`` hand a job the same identity.

A task naming any other connection fails when the DAG is parsed.

Every other setting a task's identity reads (``adpipe.settings``: ``EnvFile.passed``) reaches
it from ``ADPIPE_<NAME>`` in Airflow's environment; ``ADPIPE_JOB_SETTINGS`` names each
identity's. `make env` writes both to .env.airflow from the settings table and .env, and
compose hands that file to Airflow, so what a task passes is what its job reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import Asset, AsyncCallback, BaseHook, DeadlineAlert, DeadlineReference
from airflow.sdk.exceptions import AirflowFailException
from docker.types import Mount

from adpipe_dags import lineage
from adpipe_dags.lineage import job_lineage
from adpipe_dags.notify import FailureNotifier, deadline_missed

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "adpipe",
    "retries": 3,
    # the first retry waits this long (doubling after, with jitter); JOB_RETRY_DELAY_SECONDS
    "retry_delay": timedelta(seconds=int(os.environ.get("ADPIPE_JOB_RETRY_DELAY_SECONDS", "60"))),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": FailureNotifier(),
}

# Lineage, as the UI shows it: api-load writes the backup, then the table; archive reads the
# table and writes the archive.
BACKUP = Asset(name="ad_impressions_backup", uri=f"s3://ad-data/{lineage.BACKUP}/")
TABLE = Asset(name="ad_impressions", uri="postgres://warehouse/warehouse/public/ad_impressions")
ARCHIVE = Asset(name="ad_impressions_archive", uri=f"s3://ad-data/{lineage.ARCHIVE}/")
# reconcile's nightly verdict on the days it checked, each day's counts in the event's extra
RECONCILED = Asset(name="ad_impressions_reconciled", uri="adpipe://reconcile/ad_impressions")


def deadline(setting: str, default_minutes: float) -> DeadlineAlert:
    """A run still not done ``ADPIPE_<setting>`` minutes after it was queued (an hourly or
    nightly run is queued as its window or day ends; a backfill's as it is triggered) makes
    the triggerer call ``deadline_missed`` once, naming the window or day."""
    minutes = float(os.environ.get(f"ADPIPE_{setting}") or default_minutes)
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(deadline_missed),
    )


def window_cron() -> str:
    """The api-load schedule whose data intervals are the jobs' window grid (WINDOW_MINUTES,
    60 by default: whole hours): the cron of `adpipe.grid.cron`, which tests/dags holds this
    to (the scheduler's image does not carry the jobs' package)."""
    minutes = dag_setting("WINDOW_MINUTES", 60, 1440)
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = minutes // 60
    return {1: "0 * * * *", 24: "0 0 * * *"}.get(hours, f"0 */{hours} * * *")


def paused() -> bool:
    """Whether the product's DAGs start paused: no, they run once the stack is up, unless
    DAGS_PAUSED=true (.env). Read at parse time from the environment only."""
    return os.environ.get("ADPIPE_DAGS_PAUSED", "false").strip().lower() in ("1", "true", "yes")


CONNECTIONS = frozenset(
    {
        "warehouse",
        "warehouse_load",
        "warehouse_archive",
        "ad_api",
        "s3_extract",
        "s3_load",
        "s3_archive",
        "s3_reconcile",
    }
)


def connection_env(conn: Any) -> dict[str, str]:
    """The job environment a connection stands for, chosen by the connection's type; the
    credentials under the name of the identity the connection's id ends in (``s3_load``:
    LOAD_AWS_ACCESS_KEY_ID)."""
    extra = conn.extra_dejson
    identity = conn.conn_id.partition("_")[2].upper()
    own = f"{identity}_" if identity else ""
    if conn.conn_type in ("postgres", "postgresql"):
        auth = f"{quote(conn.login or '', safe='')}:{quote(conn.password or '', safe='')}@"
        address = f"{conn.host}:{conn.port or 5432}/{quote(conn.schema or '', safe='')}"
        options = f"?{urlencode(extra)}" if extra else ""
        return {f"{own}WAREHOUSE_DSN": f"postgresql://{auth}{address}{options}"}
    if conn.conn_type == "aws":
        env = {
            f"{own}AWS_ACCESS_KEY_ID": conn.login or "",
            f"{own}AWS_SECRET_ACCESS_KEY": conn.password or "",
        }
        # the rest only where the connection says: the job's defaults are its own
        for setting, field in SETTING_OF_EXTRA.items():
            if extra.get(field):
                env[setting] = extra[field]
        return env
    if conn.conn_type in ("http", "https"):
        # a URI connection keeps its scheme in the type and its path in ``schema``; the HTTP
        # provider's form keeps the scheme in ``schema`` instead
        scheme, path = conn.conn_type, conn.schema or ""
        if path in ("http", "https"):
            scheme, path = path, ""
        port = f":{conn.port}" if conn.port else ""
        env = {"AD_API_URL": f"{scheme}://{conn.host}{port}{'/' + path if path else ''}"}
        # the API's credential is the extract's: the one identity that calls the API
        if conn.password:
            env["EXTRACT_AD_API_TOKEN"] = conn.password
            env["AD_API_AUTH"] = extra.get("auth") or "bearer"
        elif extra.get("auth"):
            env["AD_API_AUTH"] = extra["auth"]
        return env
    raise ValueError(f"connection {conn.conn_id!r} has a type no job reads: {conn.conn_type!r}")


# A job's exit codes that no retry can change: 2, a wrong argument or setting; 3, data that
# breaks the contract (the FAILED line names the command that resolves it). 1 and 4 (an
# unexpected error, a service down) keep the task's retries.
FINAL_EXIT_CODES = frozenset({2, 3})

# What an asset event says of its run, taken from the job's SUMMARY: the window (api-load) or
# day (archive), the rows, and the backup manifest or archive objects it wrote or read. The
# UI's asset view and GET /api/v2/assets/events show them.
EVENT_FIELDS = (
    "window",
    "date",
    "records",
    "rows_written",
    "rows_replaced",
    "rows_archived",
    "days_archived",
    "load_run_id",
    "manifest",
    "quarantine",
    "keys",
    "from",
    "to",
    "days",
    "balanced",
    "day_results",
)


class JobOperator(DockerOperator):
    """DockerOperator for adpipe job images: connection settings resolved at run time; a job
    that exits 2 or 3 fails its task at once, without retries; a failed task's error is the
    job's FAILED line; its OpenLineage facets come from the job's SUMMARY (`lineage`)."""

    def __init__(self, *, connections: tuple[str, ...], identity: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connections = connections
        self.identity = identity  # whose settings its environment holds (settings.ENV_FILES)
        self._summary: dict[str, Any] | None = None

    def execute(self, context: Any) -> Any:
        for conn_id in self.connections:
            self._private_environment.update(connection_env(BaseHook.get_connection(conn_id)))
        try:
            result = self._summary = summary(super().execute(context))
        except DockerContainerFailedException as exc:
            failed = self._summary = summary(exc.logs or [])
            line = failed_line(exc.logs or []) or str(exc)
            code = (failed or {}).get("exit_code")
            if code in FINAL_EXIT_CODES:
                raise AirflowFailException(
                    f"{self.task_id}: the job exited {code}, which a retry cannot change: {line}"
                ) from exc
            raise DockerContainerFailedException(
                f"{self.task_id}: the job exited {code}: {line}", logs=exc.logs
            ) from exc
        if result:
            extra = {field: result[field] for field in EVENT_FIELDS if field in result}
            for outlet in self.outlets:
                context["outlet_events"][outlet].extra = extra
        return result

    def _lineage(self) -> Any:
        command = self.command[0] if isinstance(self.command, list) and self.command else "run"
        env = {**self.environment, **self._private_environment}
        return job_lineage(self.image, command, self._summary, env)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return self._lineage()

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self._lineage()


def summary(output: Any) -> dict[str, Any] | None:
    """The job's SUMMARY line as a dict (the task's XCom), from what DockerOperator returns:
    the log's last line, or all its lines; bytes or text."""
    for part in _lines_backwards(output):
        if part.startswith("SUMMARY "):
            try:
                found = json.loads(part.removeprefix("SUMMARY "))
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def failed_line(output: Any) -> str | None:
    """The job's FAILED line (what failed and the command that resolves it), if it printed one."""
    return next((part for part in _lines_backwards(output) if part.startswith("FAILED ")), None)


def _lines_backwards(output: Any) -> Iterator[str]:
    """The text lines of a job's output (one line, or a list of them; bytes or text), last first."""
    for line in reversed(output if isinstance(output, list) else [output]):
        text = line.decode(errors="replace") if isinstance(line, bytes) else str(line or "")
        yield from reversed(text.splitlines())


# an AWS connection's extra field for each S3 setting a job reads
SETTING_OF_EXTRA = {
    "AWS_DEFAULT_REGION": "region_name",
    "S3_BUCKET": "bucket",
    "S3_ENDPOINT_URL": "endpoint_url",
}


def settings_env(*names: str) -> dict[str, str]:
    """Job settings the stack sets as ``ADPIPE_<NAME>`` (.env.airflow, from .env), as the job
    reads them (``NAME``); unset ones are left to the job's defaults."""
    return {
        name: os.environ[f"ADPIPE_{name}"] for name in names if os.environ.get(f"ADPIPE_{name}")
    }


def dag_setting(name: str, default: int, highest: int) -> int:
    """A whole-number setting a DAG reads itself (``ADPIPE_<NAME>``, .env.airflow; `make env`
    checked it against the settings table), from 0 to ``highest``."""
    text = os.environ.get(f"ADPIPE_{name}") or str(default)
    if not text.isdigit() or int(text) > highest:
        raise ValueError(f"{name} must be a whole number from 0 to {highest}, not {text!r}")
    return int(text)


def ca_mounts() -> list[Mount]:
    """The CA every job verifies PostgreSQL and S3 against when the stack runs with TLS=1,
    as one read-only file: `make env` writes its host path (``ADPIPE_TLS_CA_FILE``) and the
    path the jobs read it at (``ADPIPE_S3_CA_BUNDLE``) to .env.airflow; none without TLS."""
    source = os.environ.get("ADPIPE_TLS_CA_FILE")
    target = settings_env("S3_CA_BUNDLE").get("S3_CA_BUNDLE")
    if not source or not target:
        return []
    return [Mount(target=target, source=source, type="bind", read_only=True)]


def identity_settings(identity: str) -> tuple[str, ...]:
    """The settings a task of ``identity`` (a job identity's env file: extract_backup, load,
    archive, reconcile) passes: ``ADPIPE_JOB_SETTINGS``, which `make env` writes from the
    settings table. Without it a task would pass nothing and run on defaults: the DAG fails
    to parse instead, naming the command that writes it."""
    try:
        names = json.loads(os.environ["ADPIPE_JOB_SETTINGS"])[identity]
    except (KeyError, ValueError) as exc:
        raise RuntimeError(
            f"ADPIPE_JOB_SETTINGS names no settings for {identity!r} ({exc!r}): run `make env` "
            "(it writes .env.airflow from the settings table), then `make start`"
        ) from None
    return tuple(names)


def job_task(
    *,
    task_id: str,
    job: str,
    command: list[str],
    connections: tuple[str, ...],
    identity: str = "",
    environment: dict[str, str] | None = None,
    **kwargs: Any,
) -> JobOperator:
    """A task running ``adpipe/<job>:<JOB_IMAGE_TAG>`` with ``command`` as its arguments,
    passing every setting its ``identity`` reads (`identity_settings`; the job's by default)
    and ``environment``."""
    unknown = sorted(set(connections) - CONNECTIONS)
    if unknown:
        raise ValueError(f"task {task_id!r} names unknown connections {unknown}")
    return JobOperator(
        task_id=task_id,
        image=f"adpipe/{job}:{os.environ.get('ADPIPE_JOB_IMAGE_TAG', 'dev')}",
        command=command,
        environment={
            **settings_env(*identity_settings(identity or job)),
            **(environment or {}),
        },
        connections=connections,
        identity=identity or job,
        docker_url=os.environ.get("ADPIPE_DOCKER_URL", "unix://var/run/docker.sock"),
        network_mode=os.environ.get("ADPIPE_JOB_NETWORK_MODE", "host"),
        mounts=ca_mounts(),
        mount_tmp_dir=False,
        auto_remove="success",
        tty=False,
        **kwargs,
    )
