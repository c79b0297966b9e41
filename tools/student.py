"""The notebooks' exercises and their solutions: check that every exercise has one, or strip them all.

``make student`` runs this; by hand, from the repository root::

    .venv/bin/python tools/student.py                    # copies without solutions in student/
    .venv/bin/python tools/student.py --out DIR          # somewhere else
    .venv/bin/python tools/student.py --check            # every numbered exercise has its solution?

An exercise is a numbered item (``1. …``) of a notebook's ``## Exercises`` Markdown cell. Its solution is a
code cell tagged ``solution`` whose first line is ``# @title Solution to exercise N`` (Colab shows that
title on the collapsed cell). A student copy is the notebook without its solution cells and without the
Markdown cell that introduces them (``### Solutions``), outputs kept. The copies are marked as made here;
the command refuses to overwrite a file in the output folder that it did not make.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TAG = "solution"
TITLE = re.compile(r"^# @title Solution to exercise (\d+)\s*$")
ITEM = re.compile(r"^(\d+)\. ", re.MULTILINE)
MARK = "course_student_copy"  # notebook metadata of the copies this tool writes


def _source(cell) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def exercise_numbers(nb) -> list[int]:
    """The numbers of the items under the notebook's ``## Exercises`` heading, in the Markdown cell that
    holds it (alone or after the recap), up to the next heading; [] if it has none."""
    for cell in nb.cells:
        found = re.search(r"^#+ Exercises\s*$", _source(cell), re.MULTILINE)
        if cell.cell_type == "markdown" and found:
            after = _source(cell)[found.end():]
            section = re.split(r"^#+ ", after, maxsplit=1, flags=re.MULTILINE)[0]
            return [int(number) for number in ITEM.findall(section)]
    return []


def solution_numbers(nb) -> list[int]:
    """The exercise number of every code cell tagged ``solution``, in order; ValueError for a solution
    cell whose first line is not its title."""
    numbers = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and TAG in cell.metadata.get("tags", []):
            first = (_source(cell).splitlines() or [""])[0]
            found = TITLE.match(first)
            if not found:
                title = "'# @title Solution to exercise N'"
                raise ValueError(f"cell {index}: a solution must begin with {title}")
            numbers.append(int(found.group(1)))
    return numbers


def missing_solutions(nb) -> list[int]:
    """The exercises of the notebook without a solution cell."""
    solved = set(solution_numbers(nb))
    return [number for number in exercise_numbers(nb) if number not in solved]


def is_collapsed(cell) -> bool:
    """Whether a solution cell starts collapsed in JupyterLab (source hidden) and on Colab (a form)."""
    hidden = cell.metadata.get("jupyter", {}).get("source_hidden") is True
    return hidden and cell.metadata.get("cellView") == "form"


def student_copy(nb):
    """The notebook without its solution cells and their ``### Solutions`` heading, marked as a copy."""
    copy = nbformat.from_dict(nbformat.reader.reads(nbformat.writes(nb)))
    copy.cells = [
        cell for cell in copy.cells
        if TAG not in cell.metadata.get("tags", [])
        and not (cell.cell_type == "markdown" and _source(cell).lstrip().startswith("### Solutions"))
    ]
    copy.metadata[MARK] = True
    return copy


def write_copies(notebooks: list[Path], out: Path) -> list[Path]:
    """Write the student copy of each notebook into ``out``; refuse (ValueError, nothing written) when a
    file there was not made by this tool."""
    targets = [out / path.name for path in notebooks]
    for target in targets:
        if target.exists() and not nbformat.read(target, as_version=4).metadata.get(MARK):
            raise ValueError(f"{target}: not a student copy made by this tool; move it away first")
    out.mkdir(parents=True, exist_ok=True)
    for path, target in zip(notebooks, targets, strict=True):
        nbformat.write(student_copy(nbformat.read(path, as_version=4)), target)
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="folder for the copies")
    parser.add_argument("--check", action="store_true", help="only check that every exercise is solved")
    args = parser.parse_args(argv)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.check:
        missing = {p.name: missing_solutions(nbformat.read(p, as_version=4)) for p in notebooks}
        missing = {name: numbers for name, numbers in missing.items() if numbers}
        for name, numbers in missing.items():
            print(f"{name}: no solution for exercise(s) {numbers}")
        return 1 if missing else 0
    try:
        written = write_copies(notebooks, args.out)
    except ValueError as error:
        print(f"student: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} notebooks without solutions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
