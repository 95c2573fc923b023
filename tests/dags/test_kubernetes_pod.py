"""The KubernetesPodOperator task definition in docs/scale-out.md runs as written and renders
the window and arguments the job images take: the images run unchanged on Kubernetes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

SCALE_OUT = Path(__file__).resolve().parents[2] / "docs" / "scale-out.md"


def documented_example() -> str:
    text = SCALE_OUT.read_text()
    found = re.search(r"<!-- kubernetes-pod-example -->\s*```python\n(.*?)```", text, re.S)
    assert found, "docs/scale-out.md lost its KubernetesPodOperator example"
    return found.group(1)


def test_the_documented_kubernetes_pod_tasks_render_the_jobs_arguments() -> None:
    namespace: dict[str, object] = {}
    exec(compile(documented_example(), "docs/scale-out.md", "exec"), namespace)  # noqa: S102 - ours
    tasks = {
        name: task
        for name, task in namespace.items()
        if type(task).__name__ == "KubernetesPodOperator"
    }
    assert set(tasks) == {"extract_backup", "load_impressions"}
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    end = datetime(2026, 11, 20, 11, tzinfo=UTC)
    for name, task in tasks.items():
        task.render_template_fields({"data_interval_start": start, "data_interval_end": end})
        assert task.arguments == [
            "run",
            "--start",
            "2026-11-20T10:00:00+00:00",
            "--end",
            "2026-11-20T11:00:00+00:00",
        ], name
        job = "extract_backup" if name == "extract_backup" else "load"
        assert re.fullmatch(rf".+/adpipe/{job}:[0-9a-f]{{12}}", task.image), task.image
        assert task.cmds == [], "the image's own entrypoint, unchanged"
        assert task.security_context["runAsNonRoot"] is True
        assert [s.secret for s in task.secrets] == [f"adpipe-{name.split('_')[0]}"]
    assert tasks["extract_backup"].downstream_task_ids == {"load_impressions"}
