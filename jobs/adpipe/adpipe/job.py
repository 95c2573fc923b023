"""The contract every job keeps: environment in, window on the command line, exit code and
one summary line out.

Each image is one CLI (`cli`) with subcommands (`Command`): ``run``, ``check`` in every image,
and the archive's ``restore``, ``adopt``, ``set-aside``, ``retire``, ``reconcile`` and
``migrate``. Arguments that start with an option go to ``run`` (``adpipe/load:dev --start ...
--end ...`` is ``run --start ... --end ...``); a first argument that names no command is
refused, never passed to ``run``. ``--help`` prints a command's help (what it does for its
user, what it guarantees, an example), the settings it reads and the exit codes. A command's
``main(args) -> dict`` returns its counts;
``run`` prints them as one JSON line starting ``SUMMARY``, after the keys every line has
(job, image_version, status; "What a job prints" in docs/operations.md names every key). A
failure is one line starting ``FAILED`` that says what failed and what to do, and a non-zero
exit code (`JobError.exit_code`): 2 for a wrong argument or setting, 3 for data that breaks
the contract, 4 for a service that failed; tracebacks only with ``ADPIPE_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn

from adpipe import grid
from adpipe.errors import ConfigError, JobError, exit_codes
from adpipe.settings import ENV_FILES, Settings, value

log = logging.getLogger("adpipe")


def parse_utc(value: str) -> datetime:
    """An ISO 8601 timestamp with an offset (or Z), as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"needs a UTC offset or Z: {value!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"is outside the years 1 to 9999 in UTC: {value!r}"
        ) from None


def window_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the window arguments every api-load job takes: ``--start``, ``--end``."""
    parser.add_argument(
        "--start", type=parse_utc, required=True, help="window start, inclusive (ISO 8601, UTC)"
    )
    parser.add_argument(
        "--end", type=parse_utc, required=True, help="window end, exclusive (ISO 8601, UTC)"
    )
    return parser


def check_window(start: datetime, end: datetime, minutes: int) -> None:
    """The window's rules (`adpipe.grid.check_window`): on the grid of ``minutes``, inside
    one day and the days adpipe holds, ended."""
    grid.check_window(start, end, minutes)


def day_range_arguments(
    parser: argparse.ArgumentParser, span: int | None = None
) -> argparse.ArgumentParser:
    """Add the day range the archive's restore and reconcile take: ``--from``, ``--to``.
    With ``span`` both may be left out: ``--to`` is then yesterday (UTC), ``--from`` the
    first of the ``span`` days ending on ``--to`` (`days_or_default`)."""
    parser.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        required=span is None,
        help="first day (YYYY-MM-DD)"
        + (f"; default: {span} days before --to, both included" if span else ""),
    )
    parser.add_argument(
        "--to",
        dest="last",
        type=date.fromisoformat,
        required=span is None,
        help="last day, inclusive (YYYY-MM-DD)" + ("; default: yesterday (UTC)" if span else ""),
    )
    return parser


def days_or_default(args: argparse.Namespace, span: int) -> tuple[date, date]:
    """``--from`` and ``--to``, each defaulted as `day_range_arguments` says."""
    last = args.last or datetime.now(UTC).date() - timedelta(days=1)
    return args.first or last - timedelta(days=span - 1), last


def check_day_range(first: date, last: date) -> None:
    if last < first:
        raise ConfigError(f"--to ({last}) must not be before --from ({first})")
    grid.check_days(first, last)


class Phases:
    """Where a job's time went: seconds per named phase, summed over every time it ran; a
    SUMMARY's ``phase_seconds``. `lap` ends a phase that began at the previous lap (or at
    `start`); `timed` measures a phase nested in another."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.monotonic()

    def start(self) -> None:
        """The next lap counts from now."""
        self.last = time.monotonic()

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.monotonic() - began

    def summary(self) -> dict[str, float]:
        return {phase: round(took, 3) for phase, took in self.seconds.items()}


def version() -> str:
    """The image's version (set at build time from the git revision), for every SUMMARY."""
    return os.environ.get("ADPIPE_VERSION", "unknown")


@dataclass(frozen=True)
class Command:
    """One subcommand of an image's CLI.

    Attributes:
        name: the subcommand (``run``, ``restore``, ...).
        job: the job name its SUMMARY and FAILED lines carry.
        doc: its help, shown by ``--help``: what it does for its user, what it guarantees,
            an example; its first line is ``name: What it does.`` (`summary`).
        main: does the work; returns the SUMMARY's counts or raises `JobError`.
        arguments: adds its arguments to its parser.
        env_file: the identity whose settings it reads (a key of `adpipe.settings.ENV_FILES`).
        settings: the ones it reads, of its identity's (None: all of them); ``--help`` lists
            them, they are checked when it starts, ``main`` finds them as ``args.settings``
            and may read no other.
    """

    name: str
    job: str
    doc: str
    main: Callable[[argparse.Namespace], dict[str, Any]]
    arguments: Callable[[argparse.ArgumentParser], Any] = lambda parser: parser
    env_file: str = ""
    settings: tuple[str, ...] | None = None

    def reads(self) -> Settings:
        """The settings this command reads, under its identity's names."""
        env = ENV_FILES[self.env_file]
        return env.settings(env.names if self.settings is None else self.settings)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a wrong argument is a `ConfigError` (after the usage line): a
    FAILED line and a SUMMARY with exit code 2, like every other refusal. The DAGs read the
    code from the SUMMARY; without one a wrong argument would be retried."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        image, _, command = self.prog.partition(" ")
        raise ConfigError(
            f"{self.prog}: {message}",
            f"docker run --rm adpipe/{image}:dev {command + ' ' if command else ''}--help "
            "describes the arguments",
        )


def parser(prog: str, doc: str, commands: Sequence[Command]) -> argparse.ArgumentParser:
    """The image's parser: one subparser per command, each with its whole help."""

    top = ArgumentParser(
        prog=prog,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"'{prog} COMMAND --help' describes a command; arguments that start with an "
        f"option go to {commands[0].name}.",
    )
    top.add_argument("--version", action="version", version=f"{prog} {version()}")
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        sub = subparsers.add_parser(
            command.name,
            help=summary(command.doc),
            description=command.doc,
            epilog=f"{command.reads().describe()}\n\n{exit_codes()}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.arguments(sub)
        sub.set_defaults(command=command)
    return top


def summary(doc: str) -> str:
    """A command help's first line (``name: What it does.``) without its ``name:`` lead:
    the command's line in the image's help."""
    return doc.strip().splitlines()[0].split(": ", 1)[-1].rstrip(".")


def cli(
    prog: str, doc: str, commands: Sequence[Command], argv: list[str] | None = None
) -> NoReturn:
    """Run the image's CLI: parse, run the command, print its SUMMARY line and exit.

    Arguments that start with an option go to the first command, so ``adpipe/archive:dev
    --date D`` means ``run --date D``. A first argument that is neither an option nor a
    command is a mistyped command, refused as `unknown_command` says: run as the first
    command's argument it would fail on something else (``restor --from ...``: "--date is
    required")."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    names = [c.name for c in commands]
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in HELP):
        args_list.insert(0, commands[0].name)
    elif not args_list[0].startswith("-") and args_list[0] not in names:
        refuse(prog, unknown_command(prog, args_list[0], names))
    try:
        args = parser(prog, doc, commands).parse_args(args_list)
    except ConfigError as exc:
        refuse(prog, exc)
    command: Command = args.command

    args.settings = command.reads()

    def checked(args: argparse.Namespace) -> dict[str, Any]:
        args.settings.check()  # every setting it reads, before any work
        return command.main(args)

    run(command.job, checked, args)


def refuse(prog: str, exc: ConfigError) -> NoReturn:
    """End with ``exc`` before any command ran: through `run`, so the refusal prints its
    FAILED and SUMMARY lines like any other."""

    def refused(_: argparse.Namespace) -> dict[str, Any]:
        raise exc

    run(prog, refused, argparse.Namespace())


def unknown_command(prog: str, word: str, names: Sequence[str]) -> ConfigError:
    """The refusal of ``word``, which names none of the image's commands: the closest one, if
    any is close, and the help that lists them all."""
    close = difflib.get_close_matches(word, names, n=1)
    guess = f"did you mean {close[0]}?" if close else f"the commands are {', '.join(names)}"
    return ConfigError(
        f"{word!r} is not a command of adpipe/{prog} ({guess})",
        f"docker run --rm adpipe/{prog}:dev --help lists them, with what each does",
    )


HELP = ("-h", "--help", "--version")


def run(
    name: str, main: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace
) -> NoReturn:
    """Run ``main``, print the summary line and exit with the failure's code."""
    logging.basicConfig(
        level=value("ADPIPE_LOG_LEVEL"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # urllib3 logs each request's URL at DEBUG: an API's query may hold a credential
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    started = time.monotonic()
    summary: dict[str, Any] = {"job": name, "image_version": version(), "status": "ok"}
    code = 0
    try:
        summary.update(main(args))
    except JobError as exc:
        code = exc.exit_code
        summary.update(status="failed", error=str(exc))
        print(
            f"FAILED {name}: {exc}" + (f" -- {exc.hint}" if exc.hint else ""),
            file=sys.stderr,
            flush=True,
        )
    except KeyboardInterrupt:
        code = 130
        summary.update(status="interrupted")
        print(f"FAILED {name}: interrupted", file=sys.stderr, flush=True)
    except Exception as exc:
        code = 1
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        print(
            f"FAILED {name}: unexpected {type(exc).__name__}: {exc} -- rerun with "
            "ADPIPE_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
            flush=True,
        )
        if value("ADPIPE_DEBUG") == "1":
            log.exception("traceback")
    settings = getattr(args, "settings", None)
    if isinstance(settings, Settings):  # what it ran with, secrets as set or not
        summary["settings"] = settings.shown()
    summary["exit_code"] = code
    summary["seconds"] = round(time.monotonic() - started, 3)
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("SUMMARY " + json.dumps(summary, default=str, sort_keys=False), flush=True)
    sys.exit(code)
