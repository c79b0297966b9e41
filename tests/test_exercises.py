"""Every numbered exercise has a worked solution, collapsed until asked for; teachers can strip them.

The rules live in tools/student.py (``make student``); these tests run them over the course's notebooks
and over planted notebooks that break each rule once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import student  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def solution(number: int, collapsed: bool = True):
    metadata = {"tags": ["solution"]}
    if collapsed:
        metadata.update({"jupyter": {"source_hidden": True}, "cellView": "form"})
    text = f"# @title Solution to exercise {number}\nprint({number})"
    return nbformat.v4.new_code_cell(text, metadata=metadata)


def planted(solved: list[int]):
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A notebook"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("## Exercises\n\n1. Do this.\n2. That,\n   on two lines.\n3. This."),
        nbformat.v4.new_markdown_cell("### Solutions\n\nCollapsed below."),
        *[solution(number) for number in solved],
    ])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_numbered_exercise_of_every_notebook_has_a_tagged_solution(path):
    nb = nbformat.read(path, as_version=4)
    assert student.exercise_numbers(nb), f"{path.name} has no numbered exercises"
    assert student.missing_solutions(nb) == []
    numbers = student.solution_numbers(nb)
    assert numbers == sorted(set(numbers)), "one solution for each exercise, in order"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_solution_cell_starts_collapsed_in_jupyterlab_and_colab(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert cells and all(student.is_collapsed(cell) for cell in cells)


def test_a_planted_exercise_without_a_solution_is_named():
    assert student.exercise_numbers(planted([1, 3])) == [1, 2, 3]
    assert student.missing_solutions(planted([1, 3])) == [2]
    assert student.missing_solutions(planted([1, 2, 3])) == []


def test_exercises_after_the_recap_in_the_same_cell_are_found_and_end_at_the_next_heading():
    nb = planted([1, 2])
    nb.cells[2].source = "## Recap\n\n1. Not one.\n\n## Exercises\n\n1. One.\n2. Two.\n\n## Next\n\n3. No."
    assert student.exercise_numbers(nb) == [1, 2] and student.missing_solutions(nb) == []


def test_a_solution_cell_without_its_title_is_refused():
    nb = planted([1, 2, 3])
    nb.cells[-1].source = "print('no title')"
    with pytest.raises(ValueError, match="cell 6: a solution must begin with"):
        student.solution_numbers(nb)


def test_a_solution_left_open_is_not_collapsed():
    assert student.is_collapsed(solution(1))
    assert not student.is_collapsed(solution(1, collapsed=False))


def test_the_student_copy_drops_the_solutions_and_their_heading_and_keeps_the_rest(tmp_path):
    source = tmp_path / "01_a.ipynb"
    nbformat.write(planted([1, 2, 3]), source)
    [copy] = student.write_copies([source], tmp_path / "student")
    nb = nbformat.read(copy, as_version=4)
    assert [c.source.splitlines()[0] for c in nb.cells] == ["# A notebook", "x = 1", "## Exercises"]
    assert student.exercise_numbers(nb) == [1, 2, 3] and student.solution_numbers(nb) == []
    student.write_copies([source], tmp_path / "student")  # its own copy may be replaced


def test_make_student_refuses_to_overwrite_a_notebook_it_did_not_make(tmp_path):
    source = tmp_path / "01_a.ipynb"
    nbformat.write(planted([1, 2, 3]), source)
    out = tmp_path / "student"
    out.mkdir()
    foreign = out / "01_a.ipynb"
    nbformat.write(planted([1]), foreign)
    before = foreign.read_bytes()
    with pytest.raises(ValueError, match="01_a.ipynb: not a student copy made by this tool"):
        student.write_copies([source], out)
    assert foreign.read_bytes() == before
