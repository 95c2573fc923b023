"""### archive

Daily at 02:00 UTC: moves every whole day older than the cutoff (the run's date, that is
``data_interval_end``'s date, minus ``ARCHIVE_RETENTION_DAYS``, default 30) from
``ad_impressions`` to Parquet in ``s3://ad-data/archive/ad_impressions/shown_date=.../``, and
deletes those rows in the same transaction that records the verified object in
``archive_manifest``. The cutoff never depends on the clock: a re-run archives the same days
(and, having moved them, nothing new). Late rows of an archived day go to a second file.

- **Owner**: adpipe
- **Connections**: ``warehouse_archive`` and ``warehouse`` (PostgreSQL: the archiver's and
  the read-only role), ``s3_archive`` and ``s3_reconcile`` (each job's own S3 identity)
- **Concurrency**: one run at a time (``max_active_runs=1``), and a database lock keeps a
  second archiver (a ``docker run`` by hand, a restore) out.
- **Catchup**: off; every run sweeps all days older than its cutoff, so a missed day is
  caught by the next run.
- **Reconcile**: the run ends with ``reconcile_days`` over the whole days before its date
  (not its own, still loading; as many as reconcile checks by default), so an imbalance (a
  row lost or counted twice anywhere) fails the run where operators look.
- **Restore**: ``make restore FROM=YYYY-MM-DD TO=YYYY-MM-DD``.
- **Paused?** No: it runs nightly once the stack is up (``DAGS_PAUSED=true`` in .env keeps it
  paused when it first appears).
- **Gaps**: reconcile fails on an hour with no load of a day that holds any load (and of
  every day from ``RECONCILE_EXPECT_FROM``), on windows that overlap or lie off the grid, and
  on a backup whose bytes no longer match their recorded sha256.
"""

from datetime import UTC, datetime, timedelta

from adpipe_dags.jobs import (
    ARCHIVE,
    DEFAULT_ARGS,
    RECONCILED,
    TABLE,
    deadline,
    job_task,
    paused,
)
from airflow.sdk import DAG, CronDataIntervalTimetable

with DAG(
    dag_id="archive",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=paused(),
    default_args=DEFAULT_ARGS,
    deadline=deadline("ARCHIVE_DEADLINE_MINUTES", 120),
    tags=["adpipe", "archive"],
):
    archive_days = job_task(
        task_id="archive_days",
        job="archive",
        command=["run", "--date", "{{ data_interval_end.strftime('%Y-%m-%d') }}"],
        connections=("s3_archive", "warehouse_archive"),
        inlets=[TABLE],
        outlets=[ARCHIVE],
    )
    reconcile_days = job_task(
        task_id="reconcile_days",
        job="archive",
        command=[
            "reconcile",  # its default span of days, ending on --to
            "--to",
            # the whole days before the run's date: its own day is still loading (an hourly
            # window caught between its backup and its load would read as an imbalance)
            "{{ (data_interval_end - macros.timedelta(days=1)).strftime('%Y-%m-%d') }}",
        ],
        connections=("s3_reconcile", "warehouse"),
        outlets=[RECONCILED],
        identity="reconcile",
        retries=1,  # a second look after a service failed (exit 4); an imbalance fails at once
        retry_delay=timedelta(seconds=30),
    )
    archive_days >> reconcile_days
