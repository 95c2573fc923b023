"""Adding a field, as docs/operations.md ("Add a field") tells a maintainer to: one entry in
the record contract, one migration, new images; then the windows whose backups hold the field
are reloaded. Taken here on a scratch database of its own (migrated like the warehouse) and
the bench's bucket, with the job images grown by that one entry and that one migration:

- the backups kept every field the API sent, so a window reloaded from its existing backup
  fills the new column;
- an archive object written before the change (schema version 1 in archive_manifest) still
  answers make query's view (the new column NULL) beside one written after it (version 2),
  and still restores, its rows' new column NULL.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import helpers
import pytest
import query
from adpipe import table
from adpipe.record import CONTRACT, Field
from adpipe.windows import (
    QUARANTINE_TABLE_PREFIX,
    archive_day_prefix,
    backup_day_prefix,
)
from psycopg2 import sql

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "jobs" / "adpipe" / "adpipe"
DB = "adpipe_evolution"
BUCKET = os.environ.get("BENCH_S3_BUCKET", f"{os.environ.get('S3_BUCKET', 'ad-data')}-bench")
ADDED = Field("creative_id", "integer", nullable=True, minimum=0, since=2)
MIGRATION = "0100_creative_id.sql"  # past any migration the repository will hold for long
# the two days: the first archived before the change, the second loaded before it, reloaded
# and archived after it (July: no other test and no bench size writes these days)
BEFORE, AFTER = date(2026, 7, 10), date(2026, 7, 11)
GROWN = "evolution"  # the images' tag with the grown contract


def scratch(name: str) -> str:
    """A DSN of .env, naming the scratch database instead of the warehouse."""
    base, _, rest = os.environ[name].rpartition("/")
    options = rest.partition("?")[2]
    return f"{base}/{DB}" + (f"?{options}" if options else "")


ENV = {
    name: scratch(name)
    for name in (
        "WAREHOUSE_DSN",
        "LOAD_WAREHOUSE_DSN",
        "ARCHIVE_WAREHOUSE_DSN",
        "WAREHOUSE_OWNER_DSN",
    )
} | {"S3_BUCKET": BUCKET}


def grown_contract() -> str:
    """record.py with the added field as its contract's last entry."""
    text = (SHARED / "record.py").read_text()
    opening = text.index("CONTRACT: tuple[Field, ...] = (")
    closing = text.index("\n)\n", opening)
    entry = '\n    Field("creative_id", "integer", nullable=True, minimum=0, since=2),'
    return text[:closing] + entry + text[closing:]


def build_grown(job: str, context: Path) -> None:
    dockerfile = (
        f"FROM adpipe/{job}:dev\n"
        "COPY record.py /opt/adpipe/adpipe/record.py\n"
        f"COPY {MIGRATION} /opt/adpipe/adpipe/migrations/{MIGRATION}\n"
    )
    (context / "Dockerfile").write_text(dockerfile)
    done = subprocess.run(
        ["docker", "build", "-q", "-t", f"adpipe/{job}:{GROWN}", str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def run(job: str, *args: str, tag: str = "dev") -> dict:
    done = helpers.docker_run(f"adpipe/{job}:{tag}", *args, env=ENV, claim=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return helpers.summary(done)


def owner(sql: str, params: tuple = ()) -> list[tuple]:
    return helpers.query(sql, params, dsn=ENV["WAREHOUSE_OWNER_DSN"])


def window(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    return start, start + timedelta(hours=1)


def empty_days() -> None:
    """This test's days' objects out of the bench's bucket, the scratch database dropped."""
    client = helpers.s3()
    for day in (BEFORE, AFTER):
        prefixes = (backup_day_prefix(day), archive_day_prefix(day), QUARANTINE_TABLE_PREFIX)
        for key in (k for prefix in prefixes for k in helpers.keys(prefix)):
            if key.startswith(QUARANTINE_TABLE_PREFIX) and f"date={day}" not in key:
                continue
            client.delete_object(Bucket=BUCKET, Key=key)
    superuser("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def superuser(statement: str) -> None:
    """A statement about the scratch database (named into it), as the superuser."""
    admin = helpers.superuser()
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            owner = sql.Identifier(os.environ["WAREHOUSE_USER"])
            cur.execute(sql.SQL(statement).format(sql.Identifier(DB), owner))
    finally:
        admin.close()


@pytest.fixture
def scratch_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The scratch database, migrated by today's images, and the bench's bucket as this test's
    (for put_backup and make query's view); both emptied of this test's days before and after
    (the bench's own days lie in August)."""
    monkeypatch.setenv("S3_BUCKET", BUCKET)
    empty_days()
    superuser("CREATE DATABASE {} OWNER {}")
    run("archive", "migrate")
    try:
        yield
    finally:
        empty_days()


def test_a_field_added_fills_from_the_backups_and_older_archive_objects_still_answer(
    scratch_stack: None,
) -> None:
    # before the change: the API already sends creative_id; the backups keep it, the load
    # (whose contract does not know it) stores every other field
    sent = {}
    for day in (BEFORE, AFTER):
        start, end = window(day)
        records = [
            helpers.impression(start + timedelta(seconds=n), creative_id=1000 + n)
            for n in range(40)
        ]
        sent[day] = {r["impression_id"]: r["creative_id"] for r in records}
        helpers.put_backup(start, end, [records[:25], records[25:]])
        assert (
            run("load", "--start", start.isoformat(), "--end", end.isoformat())["rows_written"]
            == 40
        )
    assert b'"creative_id": 1039' in b"".join(helpers.backup_pages(*window(AFTER)))
    archived = run("archive", "run", "--date", f"{BEFORE + timedelta(days=31)}")
    assert archived["days_archived"] == 1, archived

    # the change: one entry in the contract, one migration rendered from it, new images
    with tempfile.TemporaryDirectory(prefix="adpipe-evolution-") as tmp:
        context = Path(tmp)
        (context / "record.py").write_text(grown_contract())
        (context / MIGRATION).write_text(
            f"ALTER TABLE ad_impressions ADD COLUMN {ADDED.column_sql()};\n"
        )
        for job in ("load", "archive"):
            build_grown(job, context)
    assert run("archive", "migrate", tag=GROWN)["applied"] == [MIGRATION]

    # the window of the day still in the table is reloaded from its backup: the column fills
    start, end = window(AFTER)
    reloaded = run("load", "--start", start.isoformat(), "--end", end.isoformat(), tag=GROWN)
    assert (reloaded["rows_written"], reloaded["rejected"]) == (40, 0), reloaded
    stored = dict(owner("SELECT impression_id::text, creative_id FROM ad_impressions"))
    assert stored == sent[AFTER]
    archived = run("archive", "run", "--date", f"{AFTER + timedelta(days=31)}", tag=GROWN)
    assert archived["days_archived"] == 1, archived
    versions = owner("SELECT shown_date, schema_version FROM archive_manifest ORDER BY 1")
    assert versions == [(BEFORE, 1), (AFTER, 2)]

    # make query's view of the grown table: the old object's column NULL, the new one's filled
    added = table.Column(ADDED.name, ADDED.postgres_type, ADDED.arrow, nullable=True, since=2)
    grown = (*table.COLUMNS[: len(CONTRACT)], added, *table.COLUMNS[len(CONTRACT) :])
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WAREHOUSE_DSN", ENV["WAREHOUSE_DSN"])
        db = query.connect(None)
        query.define_view(db, grown)
        seen = db.execute(
            "SELECT shown_date, source, count(*), count(creative_id), sum(creative_id) "
            "FROM impressions GROUP BY ALL ORDER BY 1"
        ).fetchall()
        db.close()
    total = sum(sent[AFTER].values())
    assert seen == [(BEFORE, "archive", 40, 0, None), (AFTER, "archive", 40, 40, total)]

    # both objects restore: the old one's rows with the new column NULL
    restored = run("archive", "restore", "--from", f"{BEFORE}", "--to", f"{AFTER}", tag=GROWN)
    assert restored["rows_restored"] == 80, restored
    back = owner(
        "SELECT shown_at::date, count(*), count(creative_id) FROM ad_impressions "
        "GROUP BY 1 ORDER BY 1"
    )
    assert back == [(BEFORE, 40, 0), (AFTER, 40, 40)]
