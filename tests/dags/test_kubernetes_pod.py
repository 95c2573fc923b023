"""The README's KubernetesPodOperator task definition runs as written and renders the window
and arguments the job images take: the images run unchanged on Kubernetes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    found = re.search(r"<!-- kubernetes-pod-example -->\s*```python\n(.*?)```", text, re.S)
    assert found, "README lost its KubernetesPodOperator example"
    return found.group(1)


def test_the_readmes_kubernetes_pod_tasks_render_the_jobs_arguments() -> None:
    namespace: dict[str, object] = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)  # noqa: S102 - our README
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
