"""Failure notifications: every task's ``on_failure_callback``.

By default a failure is logged (it lands in the task log and the scheduler's). With
``ADPIPE_ALERT_WEBHOOK`` set (a URL, from the environment of the Airflow containers), it is also
POSTed there as JSON: dag, task, run, try and the task log's address.
"""

from __future__ import annotations

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
        url = os.environ.get("ADPIPE_ALERT_WEBHOOK")
        if url:
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
