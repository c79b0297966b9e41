"""tools/browser_check.py finds what a learner would see go wrong in JupyterLab, each problem once.

Four tiny notebooks, made here, run through the checker in one JupyterLab: one that is fine (a warning
on stderr, a figure, the real decoding explorer) and three broken ones: a cell that raises, a widget
whose model does not exist, and an explorer whose "next word" button does nothing.

These tests drive a real Chromium (``make browser-test`` installs it); without Chromium or playwright
they are skipped, except under ``BROWSER_TESTS_REQUIRED=1`` (``make browser-test`` sets it): then they
fail.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from PIL import Image

CHECKER = Path(__file__).resolve().parents[1] / "tools" / "browser_check.py"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.browser

# make browser-test sets this: there, a missing Chromium or playwright fails the tests instead of
# skipping them, so that a run that checked nothing cannot look green.
REQUIRED = os.environ.get("BROWSER_TESTS_REQUIRED") == "1"


def missing_browser() -> str | None:
    """Why these tests cannot run here, or None when they can."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (make browser-test installs it)"
    if importlib.util.find_spec("playwright") is None or importlib.util.find_spec("jupyterlab") is None:
        return "playwright or jupyterlab is not installed (make browser-test installs them)"
    return None


@pytest.fixture(scope="module", autouse=True)
def browser_available():
    """Skip without a browser; fail instead under ``BROWSER_TESTS_REQUIRED=1`` (make browser-test)."""
    reason = missing_browser()
    if reason and REQUIRED:
        pytest.fail(f"BROWSER_TESTS_REQUIRED=1 but {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)


# The real decoding explorer (helpers/widgets.py) on an untrained model and two plain images: the
# checker reads its parts from the page, so this fails if the explorer's page and the checker disagree.
EXPLORER = """\
import tempfile
from pathlib import Path

import torch
from PIL import Image

from helpers.config import TrainConfig
from helpers.models import Captioner
from helpers.runs import Run
from helpers.vocabulary import Vocabulary
from helpers.widgets import decoding_explorer

torch.manual_seed(0)
vocab = Vocabulary(["a", "red", "blue", "circle", "square", "on", "the", "left"])
model = Captioner(len(vocab), embed_size=8, hidden_size=16, weights="random").eval()
with torch.no_grad():  # an untrained decoder is nearly uniform; sharpen it so that choices are visible
    model.decoder.linear.weight.mul_(30)
folder = Path(tempfile.mkdtemp())
for colour in ("red", "blue"):
    Image.new("RGB", (40, 30), colour).save(folder / f"{colour}.png")
run = Run(model, vocab, TrainConfig(embed_size=8, hidden_size=16, image_size=32), torch.device("cpu"))
decoding_explorer(run, [folder / "red.png", folder / "blue.png"])
"""

# An explorer-like widget with the parts the checker reads (a "next word" button, an image picker, a
# picture, "caption so far" and a table of next words), whose "next word" button is connected to nothing.
DEAD_BUTTON = """\
import io
import ipywidgets as widgets
from PIL import Image

def png(color):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()

pictures = {"red.png": png("red"), "blue.png": png("blue")}
picker = widgets.Dropdown(options=list(pictures), description="image")
next_button = widgets.Button(description="next word")
picture = widgets.Image(value=pictures["red.png"], format="png", width=64)
caption = widgets.HTML("<b>red.png</b><br>caption so far: <i>(nothing yet)</i> (0 words)")
top = widgets.HTML("<table><tr><td>a</td><td>0.50</td></tr></table>")

def on_pick(change):
    picture.value = pictures[change["new"]]
    caption.value = f"<b>{change['new']}</b><br>caption so far: <i>(nothing yet)</i> (0 words)"

picker.observe(on_pick, names="value")
widgets.VBox([picker, next_button, picture, caption, top])
"""


def tiny_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "green").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_notebook(path: Path, *cells) -> None:
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """The checker's output and exit status for the four notebooks, and the files' bytes before."""
    root = tmp_path_factory.mktemp("course")
    folder = root / "notebooks"
    folder.mkdir()
    code, md = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    figure = code("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()")
    figure.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": tiny_png(), "text/plain": "<Figure>"})
    ]
    write_notebook(
        folder / "good.ipynb",
        md("# A notebook that works"),
        code('import warnings\nwarnings.warn("a warning is not an error")\nprint("hello")'),
        figure,
        code(EXPLORER),
    )
    write_notebook(folder / "raises.ipynb", code("x = 1"), code("x / 0"), code('print("never runs")'))
    # a widget view whose model the kernel never created
    dead_view = {
        "application/vnd.jupyter.widget-view+json": {
            "model_id": "0" * 32,
            "version_major": 2,
            "version_minor": 0,
        },
        "text/plain": "a widget",
    }
    write_notebook(
        folder / "dead_widget.ipynb",
        code(f"from IPython.display import display\ndisplay({dead_view!r}, raw=True)"),
    )
    write_notebook(folder / "dead_button.ipynb", code(DEAD_BUTTON))
    names = ["good", "raises", "dead_widget", "dead_button"]
    before = {name: (folder / f"{name}.ipynb").read_bytes() for name in names}
    shots = root / "shots"
    result = subprocess.run(
        [
            sys.executable,
            str(CHECKER),
            "--root",
            str(root),
            "--screenshots",
            str(shots),
            "--timeout",
            "180",
            *(f"notebooks/{name}.ipynb" for name in names),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    return {"result": result, "root": root, "shots": shots, "before": before}


def failures(checked, name: str) -> list[str]:
    return [
        line
        for line in checked["result"].stdout.splitlines()
        if line.startswith(f"FAIL notebooks/{name}.ipynb")
    ]


def test_a_working_notebook_passes_with_a_screenshot_and_unchanged_file(checked):
    out = checked["result"].stdout + checked["result"].stderr
    assert failures(checked, "good") == [], out
    assert "explorer: 'next word'" in out  # the explorer check ran on good.ipynb, and passed
    shot = checked["shots"] / "good.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(shot).size[0] == 1280
    for name, data in checked["before"].items():
        assert (checked["root"] / "notebooks" / f"{name}.ipynb").read_bytes() == data, name


def test_broken_notebooks_make_the_check_fail(checked):
    assert checked["result"].returncode == 1, checked["result"].stdout + checked["result"].stderr


def test_a_cell_that_raises_is_named_with_its_error(checked):
    assert failures(checked, "raises") == [
        "FAIL notebooks/raises.ipynb, cell 1 ('x / 0'): the cell shows an error: "
        "ZeroDivisionError: division by zero"
    ]


def test_a_widget_that_cannot_render_is_reported(checked):
    (line,) = failures(checked, "dead_widget")
    assert line.startswith(
        "FAIL notebooks/dead_widget.ipynb, cell 0 ('from IPython.display import display'): "
    )
    assert re.search(r"widget cannot be displayed|still 'Loading widget", line), line


def test_an_explorer_whose_button_does_nothing_is_reported(checked):
    assert failures(checked, "dead_button") == [
        "FAIL notebooks/dead_button.ipynb, cell 0 ('import io'): clicking 'next word' in the explorer "
        "did not change the caption so far nor the top-5 words (it still shows "
        "'red.png\\ncaption so far: (nothing yet) (0 words)')"
    ]
