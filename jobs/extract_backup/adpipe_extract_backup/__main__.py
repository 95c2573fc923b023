"""The extract_backup image's command line: ``python3 -m adpipe_extract_backup``."""

from adpipe import check
from adpipe.job import cli

from adpipe_extract_backup.extract_backup import RUN, RUN_DOC

if __name__ == "__main__":
    cli("extract_backup", RUN_DOC.splitlines()[0], [RUN, check.command("extract_backup")])
