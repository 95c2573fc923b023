"""Every command's help is plain text that says what the command does: its first
line is `name: What it does.`, one imperative sentence, which the image's command list shows;
no reStructuredText markup reaches a user's terminal. Its settings are the ones it reads, under
the names it reads them, each once in adpipe/settings.py: reading another is a defect, and
.env.example and the identity's env file hold them. A fault-test seam is read, never listed:
no help, .env.example or env file names it. Every help lists the exit codes and names no
module, constant or library of the code (a user's manual, not a design note), and a mistyped
command is refused, never run as ``run``."""

from __future__ import annotations

import ast
import json
import os
import re
from datetime import date
from pathlib import Path

import adpipe_archive.__main__ as archive_cli
import env as env_files
import pytest
from adpipe import check, errors, job, migrate
from adpipe.errors import ConfigError
from adpipe.job import Command, parser, summary
from adpipe.settings import ENV_FILES, LOGS, SETTINGS
from adpipe_archive import archive, health, reconcile, repair, restore, retire
from adpipe_extract_backup.extract_backup import RUN as EXTRACT
from adpipe_load.load_impressions import RUN as LOAD

IMAGES: dict[str, list[Command]] = {
    "extract_backup": [EXTRACT, check.command("extract_backup")],
    "load": [LOAD, check.command("load")],
    "archive": [
        archive.RUN,
        retire.RETIRE_WINDOW,
        restore.RESTORE,
        repair.ADOPT,
        repair.SET_ASIDE,
        reconcile.RECONCILE,
        health.HEALTH,
        migrate.COMMAND,
        check.command("archive"),
    ],
}
ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [(image, c) for image, commands in IMAGES.items() for c in commands]


@pytest.mark.parametrize(("image", "command"), COMMANDS, ids=lambda c: getattr(c, "name", c))
def test_a_commands_first_line_names_it_and_says_what_it_does(image: str, command) -> None:
    first = command.doc.splitlines()[0]
    name, _, line = first.partition(": ")
    assert name in (command.name, image), first
    assert re.fullmatch(r"[A-Z][a-z-]+ [^:]+\.", line), f"one sentence, ending with a '.': {first}"
    verb = line.split()[0]
    assert not verb.endswith("s"), f"imperative ('Move', not 'Moves'): {first}"
    assert len(first) <= 95 and command.doc.splitlines()[1] == "", first
    assert summary(command.doc) == line.rstrip(".")


@pytest.mark.parametrize(("image", "command"), COMMANDS, ids=lambda c: getattr(c, "name", c))
def test_help_is_plain_text(image: str, command, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser(image, f"{image}: the {image} image.", IMAGES[image]).parse_args(
            [command.name, "--help"]
        )
    text = capsys.readouterr().out
    assert command.doc.splitlines()[2].split()[0] in text  # the whole description is there
    assert "`" not in text, [line for line in text.splitlines() if "`" in line]


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_image_help_lists_each_command_with_its_line(image: str) -> None:
    text = parser(image, f"{image}: the {image} image.", IMAGES[image]).format_help()
    assert "`" not in text
    listed = " ".join(text.split())
    for command in IMAGES[image]:
        assert f" {command.name} {summary(command.doc)} " in listed, (command.name, text)


def help_of(image: str, command: Command, capsys: pytest.CaptureFixture[str]) -> str:
    """What ``<image> <command> --help`` prints."""
    with pytest.raises(SystemExit):
        parser(image, f"{image}: the {image} image.", IMAGES[image]).parse_args(
            [command.name, "--help"]
        )
    return capsys.readouterr().out


@pytest.mark.parametrize(("image", "command"), COMMANDS, ids=lambda c: getattr(c, "name", c))
def test_help_lists_every_exit_code_with_its_meaning_from_the_failures_themselves(
    image: str, command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(image, command, capsys)
    codes = text.split("\nexit codes", 1)[1]
    numbers = re.findall(r"^  ([0-9]+)  ", codes, re.MULTILINE)
    assert numbers == ["0", "1", "2", "3", "4", "130"], text
    for failure in (errors.JobError, errors.ConfigError, errors.DataError, errors.UpstreamError):
        line = f"  {failure.exit_code}  {failure.means}; "
        assert line + ("retried" if failure.retried else "not retried") in codes, line


def listed(text: str) -> list[str]:
    """The setting names a ``--help`` lists, in order."""
    settings = text.split("settings (environment", 1)[1]
    return re.findall(r"^  ([A-Z][A-Z0-9_]+)$", settings, re.MULTILINE)


@pytest.mark.parametrize(("image", "command"), COMMANDS, ids=lambda c: getattr(c, "name", c))
def test_help_lists_exactly_the_settings_the_command_reads_under_the_names_it_reads(
    image: str, command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    reads = command.reads()
    assert listed(help_of(image, command, capsys)) == [
        reads.name(n) for n in (*reads.names, *LOGS) if not SETTINGS[n].seam
    ]
    unlisted = next(n for n in SETTINGS if n not in reads.names)
    with pytest.raises(RuntimeError, match=f"reads {unlisted}, which its command does not list"):
        reads.read(unlisted)


SEAMS = [name for name, setting in SETTINGS.items() if setting.seam]


@pytest.mark.parametrize("seam", SEAMS)
def test_a_seam_is_read_never_listed(
    seam: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A fault-test seam is a setting a command reads, so a test passes it in the job's
    environment; no help, no .env.example and no env file lists it, so no deployment sets it."""
    readers = [(image, c) for image, c in COMMANDS if seam in c.reads().names]
    assert readers, f"no command reads {seam}: a seam nothing reads is dead code"
    for image, command in readers:
        reads = command.reads()
        monkeypatch.setenv(reads.name(seam), "6")
        assert reads.read(seam) == SETTINGS[seam].parse(seam, "6")
        assert reads.name(seam) not in help_of(image, command, capsys)
    example = (ROOT / ".env.example").read_text()
    assert seam not in example
    monkeypatch.setattr(env_files, "ROOT", tmp_path)
    # an older .env may still hold it: make env leaves it out of every job's file all the same
    known = {env.settings().name(n): "x" for env in ENV_FILES.values() for n in env.names}
    env_files.write_job_files(known)
    for env in ENV_FILES.values():
        assert seam not in (tmp_path / f".env.{env.name}").read_text(), env.name


@pytest.mark.parametrize("env", sorted(ENV_FILES))
def test_an_env_file_holds_what_its_commands_read_and_nothing_more(env: str) -> None:
    read = {n for _, c in COMMANDS if c.env_file == env for n in c.reads().names}
    assert read == set(ENV_FILES[env].names)


def test_env_example_holds_every_setting_an_env_file_is_written_with_and_its_default() -> None:
    example = dict(
        line.partition("=")[::2]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for env in ENV_FILES.values():
        for name in env.written:
            read_as = env.settings().name(name)
            assert read_as in example, f".env.example lacks {read_as} (.env.{env.name} holds it)"
            default = SETTINGS[name].default
            if default:
                assert example[read_as] == default, (read_as, example[read_as], default)


def test_a_command_that_starts_without_its_settings_names_every_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        monkeypatch.delenv(name)
    reads = LOAD.reads()
    with pytest.raises(ConfigError) as missing:
        reads.check()
    required = [reads.name(n) for n in reads.names if SETTINGS[n].default is None]
    assert str(missing.value) == f"settings {', '.join(required)} are missing"
    monkeypatch.setenv("LOAD_MAX_SHRINK_SHARE", "2")
    for name in required:
        monkeypatch.setenv(name, "x")
    with pytest.raises(ConfigError, match="LOAD_MAX_SHRINK_SHARE must be between 0 and 1, not 2"):
        reads.check()


@pytest.mark.parametrize(
    ("image", "word", "closest"),
    [
        ("archive", "restor", "restore"),
        ("archive", "set_aside", "set-aside"),
        ("load", "chek", "check"),
        ("extract_backup", "rnu", "run"),
        ("archive", "frobnicate", None),
    ],
)
def test_a_mistyped_command_is_refused_naming_the_closest_one_and_never_runs_run(
    image: str,
    word: str,
    closest: str | None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ADPIPE_DEBUG", raising=False)
    argv = [word, "--from", "2026-01-01", "--to", "2026-01-02"]
    with pytest.raises(SystemExit) as done:
        job.cli(image, f"{image}: the {image} image.", IMAGES[image], argv)
    assert done.value.code == 2
    out, err = capsys.readouterr()
    (failed,) = err.splitlines()  # one line: no usage, no traceback
    assert failed.startswith(f"FAILED {image}: '{word}' is not a command"), failed
    if closest:
        assert f"did you mean {closest}?" in failed, failed
    else:
        assert all(c.name in failed for c in IMAGES[image]), failed
    assert f"-- docker run --rm adpipe/{image}:dev --help" in failed, failed
    assert "--date" not in failed and "--start" not in failed  # not run's complaint
    (line,) = out.splitlines()
    summary = json.loads(line.removeprefix("SUMMARY "))
    assert (summary["job"], summary["status"], summary["exit_code"]) == (image, "failed", 2)


def test_arguments_that_start_with_an_option_go_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, object] = {}

    def started(name: str, main: object, args: object) -> None:
        ran.update(name=name, args=args)
        raise SystemExit(0)

    monkeypatch.setattr(job, "run", started)
    with pytest.raises(SystemExit):
        job.cli(
            "archive", "archive: the archive image.", IMAGES["archive"], ["--date", "2026-01-01"]
        )
    args = ran["args"]
    assert ran["name"] == "archive"
    assert getattr(args, "command", None) is archive.RUN, args
    assert getattr(args, "date", None) == date(2026, 1, 1)


@pytest.mark.parametrize("first", ["--help", "-h", "--version"])
def test_the_image_help_and_version_are_never_refused_as_commands(
    first: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        job.cli("archive", "archive: the archive image.", IMAGES["archive"], [first])
    assert done.value.code == 0
    out, err = capsys.readouterr()
    assert err == "" and "FAILED" not in out and "SUMMARY" not in out
    assert out.startswith("usage: archive" if first != "--version" else "archive "), out


# --- a help is a user's manual: it names nothing only the code knows
IMAGE_TOPS = {
    "extract_backup": EXTRACT.doc.splitlines()[0],
    "load": LOAD.doc.splitlines()[0],
    "archive": archive_cli.__doc__ or "",
}
# the jobs' code: each image's package and the shared one, and the shared one's migrations
SOURCES = sorted({*ROOT.glob("jobs/*/adpipe_*/*.py"), *ROOT.glob("jobs/adpipe/adpipe/**/*.py")})
PACKAGES = [
    *ROOT.glob("jobs/*/adpipe_*/__init__.py"),
    *ROOT.glob("jobs/adpipe/adpipe/*/__init__.py"),
]
MODULES = {p.stem for p in SOURCES if not p.name.startswith("__")} | {
    p.parent.name for p in PACKAGES
}
# names of libraries and mechanics a help once carried, which no user acts on
INTERNAL_WORDS = (
    "Bloom",
    "msgspec",
    "hashtext",
    "temporary table",
    "ADBC",
    "Arrow",
    "urllib3",
    "psycopg2",
    "boto3",
    "pyarrow",
    "docstring",
)


def constants(path: Path) -> set[str]:
    """The module-level UPPER_CASE names ``path`` assigns."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and name.id.isupper():
                    names.add(name.id)
    return names


def internal_names() -> set[str]:
    """What a help must not name: each module as a file (first_seen.py) and as a module
    (adpipe.windows), a module whose name is no word (impression_rules) bare too, unless it
    is an image's name; and every constant whose name is an identifier rather than a word
    (MAX_NESTING, IN_FLIGHT: S3 or DAY are words) and not a setting's."""
    names = set()
    for module in MODULES:
        names |= {f"{module}.py", f"adpipe.{module}"}
        if "_" in module and module not in IMAGES:
            names.add(module)
    for path in SOURCES:
        names |= {c for c in constants(path) if "_" in c.strip("_") and c not in SETTINGS}
    return names


def internal_names_in(text: str) -> list[str]:
    named = [n for n in internal_names() if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text)]
    return named + [word for word in INTERNAL_WORDS if word.lower() in text.lower()]


def test_the_internal_names_come_from_the_code_and_leave_a_help_its_words() -> None:
    names = internal_names()
    assert {"first_seen.py", "impression_rules", "adpipe.windows", "MAX_NESTING", "IN_FLIGHT"} <= (
        names
    ), sorted(names)
    assert "adpipe.migrations" in names and "adpipe.adpipe" not in names
    assert not names & {"extract_backup", "S3", "DAY", "archive", "restore", *SETTINGS}


@pytest.mark.parametrize(("image", "command"), COMMANDS, ids=lambda c: getattr(c, "name", c))
def test_help_names_no_module_constant_or_library_of_the_code(
    image: str, command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    found = internal_names_in(help_of(image, command, capsys))
    assert found == [], f"{image} {command.name} --help names {found}"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_the_image_help_names_no_module_constant_or_library_of_the_code(image: str) -> None:
    found = internal_names_in(parser(image, IMAGE_TOPS[image], IMAGES[image]).format_help())
    assert found == [], f"{image} --help names {found}"
