"""Lint covers every Python file in the repository (benchmarks, tools, the notebooks' .py pairs), and CI
runs it: ``make lint`` is ``ruff check .``, and ``.ci/run`` runs ``make lint``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def ruff(*args: str) -> subprocess.CompletedProcess:
    command = str(RUFF) if RUFF.exists() else shutil.which("ruff")
    if command is None:
        pytest.skip("needs ruff (pyproject's [dev] extra)")
    return subprocess.run([command, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def tracked(pattern: str) -> set[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to list the tracked files")
    listed = subprocess.run(
        ["git", "ls-files", pattern], cwd=REPO, capture_output=True, text=True, check=True
    )
    return {(REPO / line).resolve() for line in listed.stdout.splitlines()}


def test_ruff_checks_every_tracked_python_file_and_the_notebooks_through_their_pairs():
    shown = {(REPO / line).resolve() for line in ruff("check", "--show-files", ".").stdout.splitlines()}
    python = tracked("*.py")
    assert {p.relative_to(REPO).parts[0] for p in python} >= {"helpers", "tests", "benchmarks", "tools"}
    assert any(p.parent.name == "notebooks_py" for p in python)
    assert sorted(p.relative_to(REPO).as_posix() for p in python - shown) == []
    assert [p for p in shown if p.suffix == ".ipynb"] == []  # each is linted once, as its notebooks_py pair


def test_ruff_passes_on_the_whole_repository():
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_lint_is_ruff_on_the_repository_and_ci_runs_it():
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe is not None and recipe.group(1).split() == ["$(BIN)/ruff", "check", "."]
    assert re.search(r'^step "make lint" make lint$', (REPO / ".ci" / "run").read_text(), flags=re.MULTILINE)


def test_no_code_cites_a_design_that_is_not_in_the_repository():
    """"The design" was a document outside the repository: a docstring must say what it means itself."""
    files = [
        path
        for folder in ("helpers", "benchmarks", "tools", "scripts")
        for path in sorted((REPO / folder).rglob("*"))
        if path.suffix in (".py", ".sh", ".md")
    ]
    assert len(files) > 20
    citing = [
        f"{path.relative_to(REPO).as_posix()}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bthe design\b|\bdesign's\b", line, flags=re.IGNORECASE)
    ]
    assert citing == []
