"""Alerts: every task's ``on_failure_callback``, and each DAG's deadline.

By default an alert is logged (a failure lands in the task log and the scheduler's, a missed
deadline in the triggerer's). With ``ADPIPE_ALERT_WEBHOOK`` set (a URL, from the environment
of the Airflow containers), it is also POSTed there as JSON: for a failure, dag, task, run,
try and the task log's address; for a deadline, dag, run, the window (or day) and when it
was due.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger("adpipe.alerts")


class FailureNotifier(BaseNotifier):
    """Say which task of which run failed, where operators look."""

    def notify(self, context: Any) -> None:
        ti = context["ti"]
        alert = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "try_number": ti.try_number,
            "log_url": getattr(ti, "log_url", None),
            "error": str(context.get("exception") or "")[:500],
        }
        log.error("adpipe task failed: %s", json.dumps(alert))
        send(alert)


def send(alert: dict[str, Any]) -> None:
    """POST one alert to ADPIPE_ALERT_WEBHOOK when it is set (bounded: 10 s)."""
    url = os.environ.get("ADPIPE_ALERT_WEBHOOK")
    if not url:
        return
    req = urllib.request.Request(  # noqa: S310 - the operator's own webhook
        url,
        data=json.dumps(alert).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 - operator's hook
    except OSError as exc:
        log.error("alert webhook failed: %s", exc)


async def deadline_missed(context: dict[str, Any] | None = None, **_: Any) -> None:
    """A DAG run still not done at its deadline (Airflow's deadline alert, run once per run
    in the triggerer): say which window or day is late."""
    run = (context or {}).get("dag_run") or {}
    alert = {
        "alert": "deadline",
        "dag_id": run.get("dag_id"),
        "run_id": run.get("dag_run_id"),
        "window": [run.get("data_interval_start"), run.get("data_interval_end")],
        "deadline": str((context or {}).get("deadline", {}).get("deadline_time")),
    }
    log.error("adpipe run late: %s", json.dumps(alert))
    await asyncio.to_thread(send, alert)
