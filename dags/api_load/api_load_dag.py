"""### api-load

Every window of the grid (``WINDOW_MINUTES``, 60: hourly): pages every impression of
``[data_interval_start, data_interval_end)`` from
the ad API into ``s3://ad-data/backup/`` (`extract_backup`), then loads that backup into
``ad_impressions`` in PostgreSQL (`load_impressions`). Both run as job images
(``adpipe/extract_backup``, ``adpipe/load``) with the DockerOperator; re-running a run
writes nothing new when the API sends the same bytes (backups are immutable: other bytes
become a new backup version beside the old one) and replaces the same rows; a reload that
would shrink the window beyond ``LOAD_MAX_SHRINK_SHARE`` fails instead (the DAG never
passes the load's ``--allow-shrink``).

- **Owner**: adpipe
- **Connections**: ``ad_api`` (the API's URL), ``s3_extract`` and ``s3_load`` (each job's own
  S3 identity), ``warehouse_load`` (PostgreSQL, the loader's role)
- **Catchup**: off, on purpose: a fresh environment does not replay every hour since
  ``start_date``. A gap (the scheduler was down) is filled with ``make backfill DAG=api-load
  FROM=... TO=...`` (Airflow's backfill API); every window is idempotent, and the archive's
  reconcile names hours with no load.
- **Paused?** No: hourly loads start once the stack is up (``DAGS_PAUSED=true`` in .env keeps
  it paused when it first appears).
- **Windows**: a run whose data interval is off the grid or spans two days (a REST trigger
  may give any) fails at once: both jobs refuse it with exit 2, which is never retried.
- **Late records**: with ``API_LATENESS_MINUTES``, a run first waits (deferred, no worker
  slot held) until that long after its window ended (`wait_for_late_records`); with
  ``API_LOOKBACK_WINDOWS`` = N, after its own window it extracts the N windows before it
  again (`lookback_extract_<k>`, k windows back: same bytes, no new version) and loads each
  whose backup changed (`lookback_load_<k>`, the load's ``--if-changed``). A record later
  than both is the README's "Late records".
- **XCom**: each task returns its job's SUMMARY (counts, version) as a dict.
- **Concurrency**: up to 4 windows at once; a window's load holds a lock, so two runs of the
  same window never interleave.
"""

import math
from datetime import UTC, datetime

from adpipe_dags.jobs import (
    BACKUP,
    DEFAULT_ARGS,
    TABLE,
    dag_setting,
    deadline,
    job_task,
    paused,
    window_cron,
)
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG, CronDataIntervalTimetable

WINDOW = [
    "run",
    "--start",
    "{{ data_interval_start.isoformat() }}",
    "--end",
    "{{ data_interval_end.isoformat() }}",
]
STEP = dag_setting("WINDOW_MINUTES", 60, 1440)
LATENESS = dag_setting("API_LATENESS_MINUTES", 0, 1440)
LOOKBACK = dag_setting("API_LOOKBACK_WINDOWS", 0, 48)


def earlier_window(back: int) -> list[str]:
    """The arguments of the window ``back`` windows before the run's own."""
    shift = f"macros.timedelta(seconds={back} * (data_interval_end - data_interval_start)"
    shift += ".total_seconds())"
    return [
        "run",
        "--start",
        f"{{{{ (data_interval_start - {shift}).isoformat() }}}}",
        "--end",
        f"{{{{ (data_interval_end - {shift}).isoformat() }}}}",
    ]


with DAG(
    dag_id="api-load",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(window_cron(), timezone="UTC"),  # WINDOW_MINUTES
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    # runs waiting for late records count too: room for those waiting, and 4 more
    max_active_runs=4 + math.ceil(LATENESS / STEP),
    is_paused_upon_creation=paused(),
    default_args=DEFAULT_ARGS,
    deadline=deadline("API_LOAD_DEADLINE_MINUTES", 20),
    tags=["adpipe", "api-load"],
):
    extract_backup = job_task(
        task_id="extract_backup",
        job="extract_backup",
        command=WINDOW,
        connections=("ad_api", "s3_extract"),
        outlets=[BACKUP],
    )
    load_impressions = job_task(
        task_id="load_impressions",
        job="load",
        command=WINDOW,
        connections=("s3_load", "warehouse_load"),
        inlets=[BACKUP],
        outlets=[TABLE],
    )
    if LATENESS:
        wait_for_late_records = DateTimeSensorAsync(
            task_id="wait_for_late_records",
            target_time=f"{{{{ data_interval_end + macros.timedelta(minutes={LATENESS}) }}}}",
        )
        wait_for_late_records >> extract_backup
    extract_backup >> load_impressions
    for back in range(1, LOOKBACK + 1):
        again = job_task(
            task_id=f"lookback_extract_{back}",
            job="extract_backup",
            command=earlier_window(back),
            connections=("ad_api", "s3_extract"),
            outlets=[BACKUP],
        )
        reload = job_task(
            task_id=f"lookback_load_{back}",
            job="load",
            command=[*earlier_window(back), "--if-changed"],
            connections=("s3_load", "warehouse_load"),
            inlets=[BACKUP],
            outlets=[TABLE],
        )
        load_impressions >> again >> reload
