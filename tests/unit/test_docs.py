"""The README and docs/*.md point only at what exists: every relative link and its anchor, every
`make` target, every repo path and test name in backticks. The README stays short enough to
read in five minutes and names every target; each docs file says what it holds and links back
to it; no heading skips a level."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_LINES_BELOW = 250  # what a newcomer reads in five minutes; the rest belongs in docs/
# a backticked word is a repo path when its first part is one of these and it has a "/" or
# one of PATH_ENDINGS (`locks.py` alone is a module's name, `jobs.tar.gz` a file a user makes)
TOP_LEVEL = (
    *("dags", "jobs", "tests", "platform", "bench", "docs", ".ci"),
    *("docker-compose.yml", "Makefile", ".env.example"),
)
PATH_ENDINGS = (".py", ".sh", ".yml", ".toml", ".md")
# what a backticked path may hold that names no one file, and why it is not checked
NOT_ONE_FILE = {
    "<": "a placeholder (`.env.<job>`, `adpipe/<job>:<git revision>`): a value, not a file",
    "*": "a glob (`EXTRACT_AWS_*`, `adpipe/*`): many names, not one",
}


def name_of(doc: Path) -> str:
    return doc.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Markdown:
    """A Markdown file split the way its reader sees it: prose, and fenced code blocks."""

    prose: str  # the text outside fenced blocks, each block's lines left blank
    blocks: list[tuple[str, list[str]]]  # (info string, lines) of each fenced block

    @classmethod
    def read(cls, doc: Path) -> Markdown:
        prose: list[str] = []
        blocks: list[tuple[str, list[str]]] = []
        fence: tuple[str, list[str]] | None = None
        for line in doc.read_text().splitlines():
            if line.lstrip().startswith("```"):
                if fence is None:
                    fence = (line.strip().removeprefix("```").strip(), [])
                else:
                    blocks.append(fence)
                    fence = None
                prose.append("")
            elif fence is not None:
                fence[1].append(line)
                prose.append("")
            else:
                prose.append(line)
        return cls("\n".join(prose), blocks)

    def headings(self) -> list[tuple[int, str]]:
        return [
            (len(m[1]), m[2].strip()) for m in re.finditer(r"^(#{1,6}) (.+)$", self.prose, re.M)
        ]

    def code_spans(self) -> list[str]:
        """Each `code span` of the prose, its line breaks as spaces (a span may wrap)."""
        return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", self.prose)]

    def links(self) -> list[str]:
        """The target of each [text](target) outside code spans."""
        text = re.sub(r"`[^`]+`", "", self.prose)
        return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text as shown, lower case, punctuation dropped
    (but `-` and `_`), spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@cache
def anchors(doc: Path) -> frozenset[str]:
    """Every heading's anchor in ``doc``; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, heading in Markdown.read(doc).headings():
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return frozenset(found)


@cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([A-Za-z0-9][\w.-]*):(?!=)", text, re.M)) - {".PHONY"}


@cache
def defined_tests() -> dict[str, frozenset[str]]:
    """Each test file under tests/ (its repo path) with the names of its test functions."""
    return {
        name_of(path): frozenset(
            re.findall(r"^\s*(?:async )?def (test_\w+)\(", path.read_text(), re.M)
        )
        for path in (ROOT / "tests").rglob("test_*.py")
    }


def make_commands(doc: Path) -> list[str]:
    """Each `make ...` command in a code span or a fenced block (comments dropped)."""
    markdown = Markdown.read(doc)
    lines = [re.sub(r"\s#.*", "", line) for _, block in markdown.blocks for line in block]
    commands = []
    for text in [*markdown.code_spans(), *lines]:
        commands += [m[0] for m in re.finditer(r"(?<![\w/.-])make(?:\s+[^\s;&|]+)*", text)]
    return commands


def target_of(command: str) -> str | None:
    """The target `make` runs: its first word that is no option and no NAME=value."""
    for word in command.split()[1:]:
        if word.startswith("-") or "=" in word:
            continue
        found = re.match(r"[A-Za-z0-9][\w.-]*", word)
        return found[0] if found else None
    return None


def repo_paths(doc: Path) -> list[str]:
    """Each word of a code span that names a repo path (TOP_LEVEL), with its ::test if any."""
    paths = []
    for span in Markdown.read(doc).code_spans():
        for word in span.split():
            word = word.strip("()[],;\"'")
            path = word.split("::")[0].rstrip(":.")
            first = path.split("/")[0]
            if first in TOP_LEVEL and ("/" in path or path.endswith(PATH_ENDINGS)):
                paths.append(word)
    return paths


def tree_paths(doc: Path) -> list[str]:
    """The repo paths a file tree block draws (a fenced block with no language whose first
    line starts with a top-level folder): each line's first word, under the folders above it,
    two spaces a level."""
    paths = []
    for info, lines in Markdown.read(doc).blocks:
        if info or not lines or lines[0].split("/")[0] not in TOP_LEVEL:
            continue
        parents: list[str] = []
        for line in lines:
            if not line.strip():
                continue
            level = (len(line) - len(line.lstrip(" "))) // 2
            word = line.split()[0]
            parents = [*parents[:level], word.rstrip("/")]
            paths.append("/".join(parents))
    return paths


@pytest.mark.parametrize("doc", DOCS, ids=name_of)
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    broken = []
    for target in Markdown.read(doc).links():
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto: lead outside the repo
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists() or not linked.is_relative_to(ROOT):
            broken.append(f"{target}: no such file in the repo")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            broken.append(f"{target}: {name_of(linked)} has no heading with that anchor")
    assert not broken, f"{name_of(doc)}: " + "; ".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=name_of)
def test_every_make_command_names_a_makefile_target(doc: Path) -> None:
    unknown = [c for c in make_commands(doc) if (t := target_of(c)) and t not in make_targets()]
    assert not unknown, f"{name_of(doc)}: no such Makefile target in {unknown}"


@pytest.mark.parametrize("doc", DOCS, ids=name_of)
def test_every_repo_path_in_backticks_and_file_trees_exists(doc: Path) -> None:
    missing = []
    for word in [*repo_paths(doc), *tree_paths(doc)]:
        if any(part in word for part in NOT_ONE_FILE):
            continue
        path = word.split("::")[0].rstrip(":.")
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{name_of(doc)}: no such path in the repo: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=name_of)
def test_every_test_named_in_backticks_exists(doc: Path) -> None:
    """`tests/x.py::test_y` must be a test in that file; `test_x.py::test_y` and `::test_y`
    (short for a file named before it) a test somewhere under tests/; `::test_y_...` the start
    of one."""
    every = frozenset().union(*defined_tests().values())
    missing = []
    for span in Markdown.read(doc).code_spans():
        for path, name, elided in re.findall(r"([\w/.]*)::(test_\w+)(\.\.\.)?", span):
            names = defined_tests().get(path, every) if path.startswith("tests/") else every
            if not (any(n.startswith(name) for n in names) if elided else name in names):
                missing.append(f"{path}::{name}{elided}")
    assert not missing, f"{name_of(doc)}: no such test: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=name_of)
def test_no_heading_skips_a_level(doc: Path) -> None:
    headings = Markdown.read(doc).headings()
    assert headings and headings[0][0] == 1, f"{name_of(doc)} starts with no # title"
    for (before, _), (level, text) in itertools.pairwise(headings):
        assert level <= before + 1, f"{name_of(doc)}: '{text}' is level {level} after {before}"


@pytest.mark.parametrize("doc", DOCS[1:], ids=name_of)
def test_each_docs_file_says_what_it_holds_and_links_back_to_the_readme(doc: Path) -> None:
    lines = doc.read_text().splitlines()
    assert lines[0].startswith("# ") and not lines[1], f"{name_of(doc)}: a # title, then a blank"
    assert lines[2] and not lines[3], f"{name_of(doc)}: one line saying what it holds"
    assert "](../README.md)" in lines[2], f"{name_of(doc)}: its first line links to the README"


def test_the_readme_is_under_250_lines() -> None:
    lines = len(README.read_text().splitlines())
    assert lines < README_LINES_BELOW, f"README.md has {lines} lines: move a section to docs/"


def test_the_readme_names_every_make_target() -> None:
    named = {target_of(c) for c in make_commands(README)}
    assert make_targets() <= named, f"README.md lacks make {sorted(make_targets() - named)}"


def test_the_settings_reference_is_the_settings_table() -> None:
    from adpipe.settings import reference

    assert (ROOT / "docs" / "settings.md").read_text() == reference(), "run `make settings-doc`"
