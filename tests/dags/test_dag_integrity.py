"""Every DAG file parses with the network blocked and follows the house DAG policy."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS.rglob("*_dag.py"))
EXPECTED = {"api-load", "archive", "adpipe-smoke"}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access at parse time")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def _bag(path: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(path), safe_mode=False)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_without_network(path: Path, no_network: None) -> None:
    bag = _bag(path)
    assert bag.import_errors == {}, bag.import_errors
    assert bag.dags, f"{path.name} defines no DAG"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_policy(path: Path) -> None:
    for dag in _bag(path).dags.values():
        assert dag.doc_md and dag.doc_md.strip().startswith("###"), f"{dag.dag_id}: doc_md"
        assert dag.timetable is not None and dag.start_date is not None
        assert dag.tags and "adpipe" in dag.tags
        # the policy the DAG docs state: a fresh stack does not replay every interval since
        # start_date; gaps are filled by `make backfill`
        assert dag.catchup is False, f"{dag.dag_id}: catchup must be off"
        for task in dag.tasks:
            where = f"{dag.dag_id}.{task.task_id}"
            assert task.retries >= 1, f"{where}: retries"
            assert task.retry_exponential_backoff, f"{where}: exponential backoff"
            assert task.execution_timeout is not None, f"{where}: execution_timeout"
            assert task.on_failure_callback, f"{where}: on_failure_callback"
            # each image's CLI takes a subcommand; no entrypoint tricks
            assert getattr(task, "entrypoint", None) is None, f"{where}: entrypoint"


def test_expected_dags_exist() -> None:
    bag = _bag(DAGS)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= EXPECTED


def test_api_load_runs_over_real_hourly_intervals() -> None:
    """A CronTriggerTimetable would give zero-length windows in Airflow 3."""
    dag = _bag(DAGS).dags["api-load"]
    assert [t.task_id for t in dag.topological_sort()] == ["extract_backup", "load_impressions"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "0 * * * *"


def test_secrets_never_in_rendered_fields() -> None:
    dag = _bag(DAGS).dags["api-load"]
    for task in dag.tasks:
        assert "private_environment" not in task.template_fields
        assert not any("PASSWORD" in k or "SECRET" in k or "DSN" in k for k in task.environment)


def test_lineage_backup_then_table_then_archive() -> None:
    dags = _bag(DAGS).dags
    names = {
        t.task_id: ([a.name for a in t.inlets], [a.name for a in t.outlets])
        for dag_id in ("api-load", "archive")
        for t in dags[dag_id].tasks
    }
    assert names["extract_backup"][1] == ["ad_impressions_backup"]
    assert names["load_impressions"] == (["ad_impressions_backup"], ["ad_impressions"])
    assert names["archive_days"] == (["ad_impressions"], ["ad_impressions_archive"])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_dag_passes_the_loads_shrink_override(path: Path) -> None:
    for dag in _bag(path).dags.values():
        for task in dag.tasks:
            assert "--allow-shrink" not in (getattr(task, "command", None) or []), task


def test_product_dags_run_once_the_stack_is_up_and_a_setting_keeps_them_paused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def paused_at_creation() -> dict[str, bool]:
        return {
            dag.dag_id: dag.is_paused_upon_creation
            for path in DAG_FILES
            for dag in _bag(path).dags.values()
        }

    assert paused_at_creation() == {"api-load": False, "archive": False, "adpipe-smoke": True}
    monkeypatch.setenv("ADPIPE_DAGS_PAUSED", "true")
    assert paused_at_creation() == {"api-load": True, "archive": True, "adpipe-smoke": True}


@pytest.mark.parametrize(("dag_id", "minutes"), [("api-load", 20), ("archive", 120)])
def test_each_product_dag_alerts_once_when_a_run_is_late(dag_id: str, minutes: int) -> None:
    """The deadline counts from when the run was queued (a backfill of an old hour is late
    only if it is slow, never for being old) and calls the notifier's deadline callback."""
    dag = _bag(DAGS).dags[dag_id]
    deadlines = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    (alert,) = deadlines
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert alert.interval.total_seconds() == minutes * 60
    assert alert.callback.path == "adpipe_dags.notify.deadline_missed"
