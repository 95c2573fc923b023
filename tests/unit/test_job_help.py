"""Every command's help is plain text that says what the command does: its docstring's first
line is `name: What it does.`, one imperative sentence, which the image's command list shows;
no reStructuredText markup reaches a user's terminal."""

from __future__ import annotations

import re

import archive
import pytest
import reconcile
from adpipe import check, migrate
from adpipe.job import Command, parser, summary
from extract_backup import RUN as EXTRACT
from load_impressions import RUN as LOAD

IMAGES: dict[str, list[Command]] = {
    "extract_backup": [EXTRACT, check.command("extract_backup")],
    "load": [LOAD, check.command("load")],
    "archive": [
        archive.RUN,
        archive.RESTORE,
        archive.ADOPT,
        archive.SET_ASIDE,
        reconcile.RECONCILE,
        migrate.COMMAND,
        check.command("archive"),
    ],
}
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
