"""archive: Move old days to the S3 archive, bring them back, and check where every row is.

The archive image's commands. run moves whole days older than the retention cutoff from
ad_impressions to s3://ad-data/archive/ (arguments that start with an option go to run);
restore brings archived days back; adopt and set-aside resolve an archive object the archive
refuses to touch; retire stops counting a window off the grid or overlapping another;
reconcile checks that every record the API sent has exactly one place; health serves
reconcile's days and the metrics to the Data health page and Prometheus; migrate applies the
warehouse's migrations as its owner; check proves the image reaches its services.

    docker run --rm --network host --env-file .env.archive adpipe/archive:dev run --date 2026-11-27
    docker run --rm --network host --env-file .env.archive adpipe/archive:dev restore \\
        --from 2026-10-01 --to 2026-10-03
    docker run --rm --network host --env-file .env.reconcile adpipe/archive:dev reconcile \\
        --from 2026-11-01 --to 2026-11-27
"""

from adpipe import check, migrate
from adpipe.job import cli

from adpipe_archive.archive import RUN
from adpipe_archive.health import HEALTH
from adpipe_archive.reconcile import RECONCILE
from adpipe_archive.repair import ADOPT, SET_ASIDE
from adpipe_archive.restore import RESTORE
from adpipe_archive.retire import RETIRE_WINDOW

if __name__ == "__main__":
    cli(
        "archive",
        __doc__ or "",
        [
            RUN,
            RESTORE,
            ADOPT,
            SET_ASIDE,
            RETIRE_WINDOW,
            RECONCILE,
            HEALTH,
            migrate.COMMAND,
            check.command("archive"),
        ],
    )
