"""tools/browser_check.py's verdict on a page, without a browser: fake page readings in, failures out.

``check_cells`` receives what the checker read from JupyterLab (each cell's prompt and errors, and what
its output area shows) and the figures the ``.ipynb`` stores; these tests hand it small made-up readings.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parents[1] / "tools" / "browser_check.py"
_spec = importlib.util.spec_from_file_location("browser_check", CHECKER)
browser_check = importlib.util.module_from_spec(_spec)
sys.modules["browser_check"] = browser_check  # its dataclass looks its module up while it is built
_spec.loader.exec_module(browser_check)


def page(*cells: tuple[str, str, int, int]) -> tuple[dict, list[dict]]:
    """``(type, prompt, figures shown, images broken)`` per cell → the checker's (state, dom) readings."""
    state = {"cells": [{"type": kind, "prompt": prompt, "errors": []} for kind, prompt, _, _ in cells]}
    dom = [
        {"figures": shown, "broken": broken, "widgetErrors": [], "loading": 0} for *_, shown, broken in cells
    ]
    return state, dom


def report(cells: int) -> browser_check.Report:
    return browser_check.Report(notebook=Path("nb.ipynb"), sources=[f"cell_{i} = {i}" for i in range(cells)])


def test_a_page_that_shows_every_stored_figure_passes():
    state, dom = page(("markdown", "", 0, 0), ("code", "[1]:", 2, 0), ("code", "[2]:", 1, 0))
    checked = report(3)
    assert browser_check.check_cells(checked, [0, 2, 1], state, dom) == []
    assert checked.problems == []


@pytest.mark.parametrize(("shown", "broken"), [(0, 0), (1, 1)])
def test_a_figure_missing_or_not_loaded_on_the_page_fails_naming_the_cell(shown, broken):
    state, dom = page(("code", "[1]:", 1, 0), ("code", "[2]:", shown, broken))
    checked = report(2)
    browser_check.check_cells(checked, [1, 2], state, dom)
    assert checked.problems == [
        (1, f"the notebook stores 2 figure(s) here, the page shows {shown} ({broken} image(s) did not load)")
    ]
    assert checked.lines() == [
        "FAIL nb.ipynb, cell 1 ('cell_1 = 1'): " + checked.problems[0][1],
    ]


def test_more_figures_on_the_page_than_stored_is_not_a_failure():
    state, dom = page(("code", "[1]:", 3, 0))
    checked = report(1)
    browser_check.check_cells(checked, [1], state, dom)
    assert checked.problems == []


def test_stored_figures_counts_png_outputs_per_cell():
    png = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    text = {"output_type": "stream", "name": "stdout", "text": "hi"}
    nb = {"cells": [{"cell_type": "markdown"}, {"outputs": [png, text, png]}, {"outputs": [text]}]}
    assert browser_check.stored_figures(nb) == [0, 2, 0]


def test_a_page_with_another_number_of_cells_is_refused_before_comparing():
    state, dom = page(("code", "[1]:", 0, 0))
    checked = report(2)
    assert browser_check.check_cells(checked, [0, 1], state, dom) is None
    assert checked.problems == [(None, "the page shows 1 cells, the file has 2")]


def test_cells_that_did_not_run_are_returned_and_the_first_is_reported():
    state, dom = page(("code", "[1]:", 0, 0), ("code", "[ ]:", 0, 0), ("code", "[ ]:", 0, 0))
    checked = report(3)
    assert browser_check.check_cells(checked, [0, 0, 0], state, dom) == [1, 2]
    assert checked.problems == [(1, "Run All Cells did not run this cell nor 1 later one(s)")]


def test_errors_widget_errors_and_loading_widgets_are_each_reported():
    state, dom = page(("code", "[1]:", 0, 0), ("code", "[ ]:", 0, 0))
    state["cells"][0]["errors"] = ["ZeroDivisionError: division by zero"]
    dom[0]["widgetErrors"] = ["Model not found"]
    dom[0]["loading"] = 1
    checked = report(2)
    assert browser_check.check_cells(checked, [0, 0], state, dom) == [1]
    assert checked.problems == [  # after an error, a cell that did not run is expected
        (0, "the cell shows an error: ZeroDivisionError: division by zero"),
        (0, "a widget cannot be displayed: 'Model not found'"),
        (0, "a widget is still 'Loading widget...' after the kernel went idle"),
    ]


def _run_browser_tests(required: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHROMIUM": "/nonexistent/chromium"}
    env.pop("BROWSER_TESTS_REQUIRED", None)
    if required:
        env["BROWSER_TESTS_REQUIRED"] = "1"
    test_file = Path(__file__).with_name("test_browser_check.py")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_browser_tests_skip_without_chromium_but_fail_when_required():
    skipped, required = _run_browser_tests(required=False), _run_browser_tests(required=True)
    assert skipped.returncode == 0 and " skipped" in skipped.stdout and "failed" not in skipped.stdout
    assert required.returncode == 1, required.stdout
    assert "no Chromium at /nonexistent/chromium" in required.stdout and "error" in required.stdout


def test_make_browser_test_requires_the_browser_tests():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = makefile[makefile.index("\nbrowser-test:") :]
    assert re.search(r"BROWSER_TESTS_REQUIRED=1 \$\(BIN\)/python -m pytest -m browser", recipe)
