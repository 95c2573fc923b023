"""api-load's late-record settings shape its runs: API_LATENESS_MINUTES puts a deferred wait
until that long after the window ended before the extract; API_LOOKBACK_WINDOWS = N adds, after
the run's own load, an extract and a load (``--if-changed``) of each of the N windows before
it. With both 0 (the defaults) a run is the extract and the load alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.dag_processing.dagbag import DagBag
from conftest import DAGS

START = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
END = START + timedelta(minutes=30)


def api_load(monkeypatch: pytest.MonkeyPatch, **settings: str) -> object:
    for name, value in {"ADPIPE_WINDOW_MINUTES": "30", **settings}.items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(DAGS / "api_load"), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return bag.dags["api-load"]


def rendered(task: object, field: str) -> object:
    from airflow.sdk.execution_time import macros

    context = {"data_interval_start": START, "data_interval_end": END, "macros": macros}
    task.render_template_fields(context)  # type: ignore[attr-defined]
    return getattr(task, field)


def test_by_default_a_run_is_its_extract_and_its_load(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = api_load(monkeypatch)
    assert {t.task_id for t in dag.tasks} == {"extract_backup", "load_impressions"}


def test_the_lateness_waits_and_the_lookback_loads_earlier_windows_if_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dag = api_load(monkeypatch, ADPIPE_API_LATENESS_MINUTES="7", ADPIPE_API_LOOKBACK_WINDOWS="2")
    tasks = {t.task_id: t for t in dag.tasks}
    wait = tasks["wait_for_late_records"]
    assert wait.downstream_task_ids == {"extract_backup"}
    assert str(rendered(wait, "target_time")).startswith("2026-11-20 11:07:00")
    for back in (1, 2):
        extract, load = tasks[f"lookback_extract_{back}"], tasks[f"lookback_load_{back}"]
        low, high = START - back * (END - START), END - back * (END - START)
        window = ["run", "--start", low.isoformat(), "--end", high.isoformat()]
        assert rendered(extract, "command") == window
        assert rendered(load, "command") == [*window, "--if-changed"]
        assert extract.upstream_task_ids == {"load_impressions"}
        assert load.upstream_task_ids == {f"lookback_extract_{back}"}


def test_a_typo_fails_the_parse_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADPIPE_API_LOOKBACK_WINDOWS", "two")
    bag = DagBag(dag_folder=str(DAGS / "api_load"), safe_mode=False)
    assert "API_LOOKBACK_WINDOWS must be a whole number" in str(bag.import_errors)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"API_LATENESS_MINUTES": "20"}, "is not less than API_LOAD_DEADLINE_MINUTES"),
        (
            {"API_LOOKBACK_WINDOWS": "48", "ARCHIVE_RETENTION_DAYS": "2"},
            "past the 1440 the archive keeps",
        ),
    ],
)
def test_make_env_refuses_late_record_settings_the_others_cannot_keep(
    settings: dict[str, str], named: str
) -> None:
    from adpipe.errors import ConfigError
    from adpipe.settings import airflow_env

    with pytest.raises(ConfigError, match=named):
        airflow_env(settings)
    assert airflow_env(
        {**settings, "API_LOAD_DEADLINE_MINUTES": "45", "ARCHIVE_RETENTION_DAYS": "3"}
    )
