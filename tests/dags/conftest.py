"""Airflow for the DAG tier: a throwaway AIRFLOW_HOME over the project's dags folder (which
pytest's pythonpath puts on the path, as Airflow does)."""

import os
import tempfile
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="adpipe-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "false"
os.environ.setdefault(
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{os.environ['AIRFLOW_HOME']}/airflow.db"
)

# what .env.airflow gives the stack's Airflow: each identity's settings, from the table itself
from adpipe.settings import airflow_env  # noqa: E402 - after Airflow's environment

os.environ.setdefault("ADPIPE_JOB_SETTINGS", airflow_env({})["ADPIPE_JOB_SETTINGS"])
