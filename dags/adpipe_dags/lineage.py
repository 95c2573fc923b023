"""OpenLineage for the job tasks: what each job read and wrote, taken from its SUMMARY.

Airflow's OpenLineage provider asks `JobOperator` for a task's lineage when the task ends
(``get_openlineage_facets_on_complete`` / ``_on_failure``); this module answers from the
job's SUMMARY and the environment the task handed the job. Datasets are named as the
OpenLineage naming spec names them:

- S3: namespace ``s3://<bucket>``, name the key or prefix (``backup/impressions/date=D/window=W``)
- PostgreSQL: namespace ``postgres://<host>:<port>``, name ``<database>.<schema>.<table>``
- the ad API: namespace ``http://<host>:<port>``, name the endpoint's path

Outputs carry output statistics (rows, bytes, files); every run carries its image and the
image's version as run tags. Where the events go is Airflow's ``[openlineage] transport``
(OPENLINEAGE_TRANSPORT in .env: a file under the logs volume unless set otherwise).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.generated.input_statistics_input_dataset import (
    InputStatisticsInputDatasetFacet,
)
from openlineage.client.generated.output_statistics_output_dataset import (
    OutputStatisticsOutputDatasetFacet,
)
from openlineage.client.generated.tags_run import TagsRunFacet, TagsRunFacetFields

# The table and the bucket's areas, as the jobs write them: DAGs import no job code, so these
# mirror adpipe.windows, and tests/unit/test_one_home.py fails when the two differ
TABLE = "public.ad_impressions"
BACKUP = "backup/impressions"
ARCHIVE = "archive/ad_impressions"
QUARANTINE = "quarantine/impressions"


def job_lineage(
    image: str, command: str, summary: dict[str, Any] | None, env: dict[str, str]
) -> OperatorLineage:
    """The datasets a job read and wrote, with the counts of its SUMMARY (none after a
    failure: a failed job wrote nothing that counts), and its image as run tags."""
    summary = summary or {}
    ok = summary.get("status") == "ok"
    job = summary.get("job") or image.rpartition("/")[2].partition(":")[0]
    found = DATASETS.get((job, command))
    inputs, outputs = found(summary, env, ok) if found else ([], [])
    tags = {"image": image, "image_version": summary.get("image_version")}
    tags["exit_code"] = summary.get("exit_code")
    return OperatorLineage(
        inputs=inputs,
        outputs=outputs,
        run_facets={
            "tags": TagsRunFacet(
                tags=[
                    TagsRunFacetFields(key=key, value=str(value), source="adpipe")
                    for key, value in tags.items()
                    if value is not None
                ]
            )
        },
    )


def _extract(
    summary: dict[str, Any], env: dict[str, str], ok: bool
) -> tuple[list[InputDataset], list[OutputDataset]]:
    source = summary.get("source") or env.get("AD_API_URL", "") + "/v1/impressions"
    api = urlsplit(source)
    # the host and port alone: a URL's userinfo may hold a credential
    where = f"{api.hostname}:{api.port}" if api.port else f"{api.hostname}"
    inputs = [InputDataset(namespace=f"{api.scheme}://{where}", name=api.path)]
    if not ok:
        return inputs, []
    stats = OutputStatisticsOutputDatasetFacet(
        rowCount=summary["records"],
        size=summary["bytes_stored"],
        fileCount=summary["pages_written"],
    )
    window = _s3(summary["manifest"], parent=True)
    return inputs, [_output(window, stats)]


def _load(
    summary: dict[str, Any], env: dict[str, str], ok: bool
) -> tuple[list[InputDataset], list[OutputDataset]]:
    if not ok:
        return [InputDataset(namespace=_bucket(env), name=BACKUP)], []
    window = _s3(summary["manifest"], parent=True)
    if summary.get("unchanged"):  # a lookback's reload of a version already loaded: read only
        return [InputDataset(namespace=window[0], name=window[1])], []
    read = InputStatisticsInputDatasetFacet(
        rowCount=summary["received"], fileCount=summary["pages"]
    )
    outputs = [
        _output(_table(env), OutputStatisticsOutputDatasetFacet(rowCount=summary["rows_written"]))
    ]
    if summary.get("quarantine"):
        rejected = OutputStatisticsOutputDatasetFacet(rowCount=summary["rejected"], fileCount=1)
        outputs.append(_output(_s3(summary["quarantine"]), rejected))
    return [_input(window, read)], outputs


def _archive(
    summary: dict[str, Any], env: dict[str, str], ok: bool
) -> tuple[list[InputDataset], list[OutputDataset]]:
    table = _table(env)
    if not ok:
        return [InputDataset(namespace=table[0], name=table[1])], []
    rows = summary["rows_archived"]
    written = OutputStatisticsOutputDatasetFacet(
        rowCount=rows, fileCount=summary["objects_written"]
    )
    read = InputStatisticsInputDatasetFacet(rowCount=rows)
    return [_input(table, read)], [_output((_bucket(env), ARCHIVE), written)]


def _reconcile(
    summary: dict[str, Any], env: dict[str, str], ok: bool
) -> tuple[list[InputDataset], list[OutputDataset]]:
    table = _table(env)
    inputs = [InputDataset(namespace=table[0], name=table[1])] + [
        InputDataset(namespace=_bucket(env), name=prefix)
        for prefix in (BACKUP, ARCHIVE, QUARANTINE)
    ]
    return inputs, []


DATASETS = {
    ("extract_backup", "run"): _extract,
    ("load", "run"): _load,
    ("archive", "run"): _archive,
    ("archive", "reconcile"): _reconcile,
}


def _s3(uri: str, parent: bool = False) -> tuple[str, str]:
    """(namespace, name) of ``s3://bucket/key``; ``parent``: of the key's folder."""
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    return f"s3://{parts.netloc}", key.rpartition("/")[0] if parent else key


def _bucket(env: dict[str, str]) -> str:
    return f"s3://{env.get('S3_BUCKET', 'ad-data')}"


def _table(env: dict[str, str]) -> tuple[str, str]:
    """(namespace, name) of ad_impressions in the warehouse the task's DSN names."""
    dsn = next(
        (
            env[name]
            for name in ("LOAD_WAREHOUSE_DSN", "ARCHIVE_WAREHOUSE_DSN", "WAREHOUSE_DSN")
            if env.get(name)
        ),
        "postgresql://localhost:5432/warehouse",
    )
    parts = urlsplit(dsn)
    database = unquote(parts.path.lstrip("/"))
    return f"postgres://{parts.hostname}:{parts.port or 5432}", f"{database}.{TABLE}"


def _input(dataset: tuple[str, str], stats: InputStatisticsInputDatasetFacet) -> InputDataset:
    return InputDataset(
        namespace=dataset[0], name=dataset[1], inputFacets={"inputStatistics": stats}
    )


def _output(dataset: tuple[str, str], stats: OutputStatisticsOutputDatasetFacet) -> OutputDataset:
    return OutputDataset(
        namespace=dataset[0], name=dataset[1], outputFacets={"outputStatistics": stats}
    )
