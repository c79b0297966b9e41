"""The READMEs a newcomer reads: every relative link and image resolves, every command is runnable.

Links are read from the Markdown (``[text](target)``, ``![alt](target)``) and from inline HTML
(``src="..."``, ``href="..."``), outside fenced code blocks. Web addresses are not fetched (CI is
offline); relative targets must be files or folders of the repository, and ``#anchors`` must name a
heading of the file they point into.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from helpers import cli

REPO = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "benchmarks/README.md", "data/README.md"]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# "](target": the end of every link and image, also of an image inside a link (a badge)
MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)")
HTML_LINK = re.compile(r"\b(?:src|href)\s*=\s*\"([^\"]+)\"")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code, where link syntax is only an example."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def link_targets(text: str) -> list[str]:
    """Every link or image target in a Markdown text, in order of appearance."""
    body = prose(text)
    return MARKDOWN_LINK.findall(body) + HTML_LINK.findall(body)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.replace("`", "").lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of every heading (GitHub numbers repeats: ``name``, ``name-1``, ...)."""
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def broken_links(doc: Path, root: Path = REPO) -> list[str]:
    """Relative targets in ``doc`` that do not resolve inside ``root``, each as ``'target: why'``."""
    problems = []
    for target in link_targets(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        destination = (doc.parent / path_part).resolve() if path_part else doc
        if not destination.exists():
            problems.append(f"{target}: no such file {destination}")
        elif root not in destination.parents and destination != root:
            problems.append(f"{target}: outside the repository")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination.read_text("utf-8")):
            problems.append(f"{target}: no heading with anchor #{anchor} in {destination.name}")
    return problems


def test_link_targets_reads_markdown_and_html_but_not_code():
    text = (
        "See [the data](data/README.md#the-shapes-dataset) and ![arch](assets/a.png).\n"
        '<img src="assets/b.png" width="40%"> <a href="https://example.org">x</a>\n'
        "Inline `[not](a-link.md)` is code.\n"
        "```markdown\n[also not](b.md)\n```\n"
    )
    assert link_targets(text) == [
        "data/README.md#the-shapes-dataset",
        "assets/a.png",
        "assets/b.png",
        "https://example.org",
    ]


def test_github_anchor_matches_githubs_rule():
    assert github_anchor("Scaling up: Flickr8k and COCO") == "scaling-up-flickr8k-and-coco"
    assert github_anchor("With `make lab` (learners)") == "with-make-lab-learners"
    assert anchors("# A\n## B\n## B\n```\n# not a heading\n```\n") == {"a", "b", "b-1"}


def test_broken_links_names_a_missing_file_a_missing_anchor_and_a_way_out(tmp_path):
    tmp_path = tmp_path.resolve()
    (tmp_path / "there.md").write_text("# Here\n")
    doc = tmp_path / "README.md"
    doc.write_text("[a](there.md#here) [b](gone.png) [c](there.md#elsewhere) [d](#top) [e](../)\n# Top\n")
    assert broken_links(doc, root=tmp_path) == [
        f"gone.png: no such file {tmp_path / 'gone.png'}",
        "there.md#elsewhere: no heading with anchor #elsewhere in there.md",
        "../: outside the repository",
    ]


@pytest.mark.parametrize("name", DOCS)
def test_every_relative_link_and_image_resolves(name):
    assert broken_links(REPO / name) == []


def test_the_readme_links_are_found():
    """The parser sees the README's notebook links and badges: a silent zero would pass the test above."""
    targets = link_targets((REPO / "README.md").read_text(encoding="utf-8"))
    assert sum(target.startswith("notebooks/") for target in targets) >= 7


def test_readme_shows_the_architecture_and_an_example_on_its_first_screen():
    first_screen = (REPO / "README.md").read_text(encoding="utf-8").split("\n## ", 2)
    head = first_screen[0] + first_screen[1]  # the title block and the first section
    assert "assets/architecture.png" in head
    assert "assets/example_captions.png" in head
    assert "make lab" in head


def code_lines(text: str) -> list[str]:
    """The lines of every fenced code block, continuation lines (trailing ``\\``) joined."""
    lines = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        lines += block.replace("\\\n", " ").splitlines()
    return lines


def helpers_commands(text: str) -> list[list[str]]:
    """The arguments after ``-m helpers`` of every command line in the code blocks of ``text``."""
    commands = []
    for line in code_lines(text):
        first = line.strip().lstrip("!").split(" ", 1)[0]
        if "-m helpers" not in line or Path(first).name not in ("python", "python3", "torchrun"):
            continue  # a line of prose or a file layout that mentions the command
        words = shlex.split(line.strip().lstrip("!"), comments=True)
        for i in range(len(words) - 1):
            if words[i : i + 2] == ["-m", "helpers"]:
                commands.append(words[i + 2 :])
    return commands


def test_helpers_commands_finds_commands_and_drops_comments():
    text = "```bash\n.venv/bin/python -m helpers data stats --data d   # a comment\nls\n```\n"
    text += "```\nhelpers/cli.py   python -m helpers ... (the command line)\n```\n"
    text += "```\ntorchrun --nproc_per_node 2 -m helpers train \\\n  --data d --out o\n```\n"
    assert helpers_commands(text) == [
        ["data", "stats", "--data", "d"],
        ["train", "--data", "d", "--out", "o"],
    ]


@pytest.mark.parametrize("name", DOCS)
def test_every_helpers_command_in_the_docs_parses(name, capsys):
    """A synopsis such as ``IMAGE...`` or ``[--beam K]`` is not a command a learner can paste."""
    parser = cli.build_parser()
    for argv in helpers_commands((REPO / name).read_text(encoding="utf-8")):
        try:
            parser.parse_args(argv)
        except SystemExit as stop:
            if stop.code == 0:  # --help
                continue
            pytest.fail(f"{name}: `python -m helpers {shlex.join(argv)}` is not a valid command: "
                        f"{capsys.readouterr().err.strip().splitlines()[-1]}")


def test_readme_activates_the_environment_before_a_bare_python_m_helpers():
    """Outside the course environment ``python`` has no ``helpers``: say how to reach it first."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    bare = re.search(r"(?<!bin/)python -m helpers", text)
    assert bare is not None
    assert re.search(r"source \.venv/bin/activate|conda activate", text[: bare.start()])
    command_line = text.split("\n## Command line", 1)[1].split("\n## ", 1)[0]
    assert "source .venv/bin/activate" in command_line
    assert ".venv/bin/python -m helpers" in command_line


def test_readme_test_command_is_the_one_ci_runs():
    """The command the README marks "CI runs this" is the first one `.ci/run` runs."""
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    # a command .ci/run runs, bare ("make test || ...") or through its timing helper ('step "name" make test')
    ci_commands = [
        re.sub(r'^step "[^"]*" ', "", line.strip()).split("||")[0].strip()
        for line in ci
        if re.match(r'(step "[^"]*" )?make ', line.strip())
    ]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    marked = [line.split("#")[0].strip() for line in code_lines(readme) if "CI runs this" in line]
    assert marked == [ci_commands[0]] == ["make test"]


def test_license_is_the_one_pyproject_declares():
    assert 'license = { text = "MIT" }' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the course authors" in license_text
