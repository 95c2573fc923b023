"""Data health: one page in Airflow's UI (an external view in its navigation) over the
warehouse's days, served by a FastAPI app the API server mounts at /data-health.

Each day's numbers and each hour's mark are reconcile's own: the page's API asks the stack's
`health` service (the archive image's `health` command, which runs `Reconciliation`, the
class `reconcile --json` prints, as the read-only role) and adds only what Airflow knows: the
api-load run of each hour (its link, and whether it is in flight) and the nightly
reconcile_days task's last verdict. A FastAPI plugin is not behind Airflow's login by
default: every route here depends on Airflow's own auth (no session: 401; the page's data
needs read access to DAG runs, which a viewer has).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag, requires_authenticated
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import FileResponse
from sqlalchemy import select

PAGE = Path(__file__).with_name("data_health_page")
ASSETS = {"page.js": "text/javascript", "page.css": "text/css"}
IN_FLIGHT = ("queued", "running")
HEALTH_TIMEOUT = 300  # seconds: reconcile of a long range reads every archive object in it

app = FastAPI(title="Data health", docs_url=None, redoc_url=None, openapi_url=None)
signed_in = [Depends(requires_authenticated())]
reads_runs = [Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN))]


@app.get("/", dependencies=signed_in)
def page() -> FileResponse:
    return FileResponse(PAGE / "index.html", media_type="text/html")


@app.get("/assets/{name}", dependencies=signed_in)
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, f"no asset {name}")
    return FileResponse(PAGE / name, media_type=ASSETS[name])


@app.get("/api/days", dependencies=reads_runs)
def days(
    session: SessionDep,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Reconcile's days from ``from`` to ``to`` (default: its 45 days up to yesterday), each
    hour's mark with its api-load run, and the nightly verdict."""
    query = {k: v.isoformat() for k, v in (("from", first), ("to", last)) if v is not None}
    found = ask_health("/days?" + urlencode(query))
    low = datetime.fromisoformat(found["from"]).replace(tzinfo=UTC)
    high = datetime.fromisoformat(found["to"]).replace(tzinfo=UTC) + timedelta(days=1)
    found["runs"] = hour_runs(session, low, high)
    found["nightly"] = nightly_verdict(session)
    return found


def ask_health(path: str) -> dict[str, Any]:
    """GET one path of the health service with its token; 502 naming what to do when it fails."""
    url = os.environ.get("ADPIPE_HEALTH_URL", "http://127.0.0.1:8082")
    request = urllib.request.Request(  # noqa: S310 - the stack's own service, from its settings
        url + path, headers={"Authorization": f"Bearer {os.environ.get('ADPIPE_HEALTH_TOKEN', '')}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT) as answer:  # noqa: S310
            return json.load(answer)
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace").strip()
        status = 400 if exc.code == 400 else 502
        raise HTTPException(status, f"health service: {text}") from None
    except OSError as exc:
        raise HTTPException(
            502, f"health service at {url} does not answer ({exc}): `make start` starts it"
        ) from None


def hour_runs(session: Any, low: datetime, high: datetime) -> dict[str, dict[str, str]]:
    """The latest api-load run of each hour from ``low`` to ``high``: its id and state."""
    rows = session.execute(
        select(DagRun.run_id, DagRun.state, DagRun.data_interval_start)
        .where(DagRun.dag_id == "api-load")
        .where(DagRun.data_interval_start >= low, DagRun.data_interval_start < high)
        .order_by(DagRun.id)
    ).all()
    runs = {}
    for run_id, state, start in rows:
        hour = start.astimezone(UTC).strftime("%Y-%m-%dT%H")
        runs[hour] = {"run_id": run_id, "state": str(state), "in_flight": str(state) in IN_FLIGHT}
    return runs


def nightly_verdict(session: Any) -> dict[str, Any] | None:
    """The archive DAG's latest finished reconcile_days: its run, state and end."""
    row = session.execute(
        select(TaskInstance.run_id, TaskInstance.state, TaskInstance.end_date)
        .where(TaskInstance.dag_id == "archive", TaskInstance.task_id == "reconcile_days")
        .where(TaskInstance.state.in_(("success", "failed")))
        .order_by(TaskInstance.end_date.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    run_id, state, ended = row
    return {"run_id": run_id, "state": str(state), "ended": ended.isoformat() if ended else None}


class DataHealthPlugin(AirflowPlugin):
    name = "data_health"
    # AirflowPlugin's own class attributes, read by Airflow's plugin manager
    fastapi_apps = [  # noqa: RUF012
        {"app": app, "url_prefix": "/data-health", "name": "Data health"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Data health",
            "href": "data-health/",
            "url_route": "data-health",
            "destination": "nav",
        }
    ]
