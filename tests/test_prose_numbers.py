"""The notebooks' prose states only numbers that a cell of the same notebook printed, or cited figures.

The rules live in tools/prose_numbers.py (run it to list every mismatch); these tests run them over the
course's stored notebooks and over planted ones that break each rule once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import prose_numbers  # noqa: E402

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def notebook(prose: str, printed: str):
    cell = nbformat.v4.new_code_cell("print(...)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(prose), cell])


def stated(prose: str, printed: str) -> list[str]:
    return [s.text for s in prose_numbers.mismatches(notebook(prose, printed), "planted.ipynb")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_number_in_the_prose_was_printed_by_the_notebook_or_is_cited(path):
    nb = nbformat.read(path, as_version=4)
    found = prose_numbers.mismatches(nb, path.name)
    assert [f"cell {s.cell}: {s.text!r} in …{s.context}…" for s in found] == []


def test_a_planted_number_that_no_cell_printed_is_named():
    assert stated("BLEU-4 reached 81 % on the test split.", "bleu4 0.803") == ["81 %"]
    assert stated("BLEU-4 reached 80 % on the test split.", "bleu4 0.803") == []
    assert stated("It reads 7 000 images.", "Read 8000 images") == ["7 000 images"]
    assert stated("It reads 8 000 images.", "Read 8000 images") == []


def test_a_number_is_matched_at_the_precision_the_prose_gives():
    assert stated("A ratio of 4.2× here.", "4.23×") == []
    assert stated("A ratio of 4.3× here.", "4.23×") == ["4.3×"]
    assert stated("A ratio of 4× here.", "4.23×") == []


def test_a_timing_needs_about_and_is_within_a_quarter_of_a_printed_one():
    assert stated("Training takes about 3 min.", "fit took 3.2 min") == []
    assert stated("Training takes about 5 min.", "fit took 3.2 min") == ["5 min"]
    assert stated("Training takes about 200 s.", "fit took 3.2 min") == []
    assert stated("Training takes 3 min.", "fit took 3.2 min") == ["3 min"]
    assert stated("Training takes 3.2 min.", "fit took 3.2 min") == ["3.2 min"]


def test_sizes_code_links_and_the_exercises_are_not_claims():
    prose = "Images of 128 × 128 pixels, `sleep(5 s)`, [a link](https://x/9%)\n\n## Exercises\n\n1. Try 95 %."
    assert stated(prose, "") == []


def test_the_allow_list_is_short_and_every_entry_names_its_source():
    assert len(prose_numbers.ALLOWED) <= prose_numbers.MAX_ALLOWED
    assert all(source.strip() for source in prose_numbers.ALLOWED.values())
