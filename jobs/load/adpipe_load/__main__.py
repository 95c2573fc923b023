"""The load image's command line: ``python3 -m adpipe_load``."""

from adpipe import check
from adpipe.job import cli

from adpipe_load.load_impressions import RUN, RUN_DOC

if __name__ == "__main__":
    cli("load", RUN_DOC.splitlines()[0], [RUN, check.command("load")])
