"""The course's website (tools/site_build.py, site_pages.py, site_check.py), on a tiny course made here.

The tiny course has two notebooks in the real format: a score table printed by pandas (a floor, a model,
a ceiling), figures, a solution, a check and a widget. The unit tests read its pages' parts without
Sphinx; the browser tests build it with Sphinx, check it in Chromium, then break the built site in four
ways and expect the checker to name each one. They need Sphinx, MyST-NB, playwright and Chromium
(``make site-test`` installs them): without them they are skipped, except under
``BROWSER_TESTS_REQUIRED=1`` (``make site-test`` sets it), where they fail.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import site_build  # noqa: E402
import site_check  # noqa: E402
import site_pages  # noqa: E402
from publish import BADGE_IMAGE, Address, read_address  # noqa: E402

ADDRESS = Address("someone/tiny-course", "v9")
SCORES = pd.DataFrame(
    {"bleu4": [0.348, 0.804, 0.319], "colour": [0.248, 0.955, 1.0], "kind": [0.478, 0.629, 1.0]},
    index=["best image-blind caption", "our model (greedy)", "humans (each against the other four)"],
)
WIDGET = {"model_id": "abc", "version_major": 2, "version_minor": 0}


def png(colour: str, size: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def figure_output(colour: str) -> dict:
    import base64

    data = {"image/png": base64.b64encode(png(colour)).decode(), "text/plain": "<Figure>"}
    return nbformat.v4.new_output("display_data", data=data)


def table_output(frame: pd.DataFrame) -> dict:
    data = {"text/html": frame.to_html(), "text/plain": repr(frame)}
    return nbformat.v4.new_output("execute_result", data=data, execution_count=3)


def first_cell(number: str, title: str, run_time: str) -> str:
    link = ADDRESS.badge_link(f"notebooks/{number}.ipynb")
    return f"[![Open In Colab]({BADGE_IMAGE})]({link})\n\n# {title}\n\nGoals.\n\n**Run time:** {run_time}\n"


def tiny_notebooks() -> dict[str, nbformat.NotebookNode]:
    setup = nbformat.v4.new_code_cell("import sys", metadata={"tags": ["colab-setup"]})
    first = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                first_cell("01_alpha", "01 · Alpha: the scores", "about 5 s on a CPU. Then more.")
            ),
            setup,
            nbformat.v4.new_markdown_cell("## 2. The scores\n\nEach caption scored against the scene."),
            nbformat.v4.new_code_cell("scores", outputs=[table_output(SCORES)]),
            nbformat.v4.new_markdown_cell("A red square, as the model sees it. More text."),
            nbformat.v4.new_code_cell("figure = show()", outputs=[figure_output("red")]),
            nbformat.v4.new_markdown_cell("## Exercises\n\n1. Print the answer."),
            nbformat.v4.new_code_cell(
                "print(42)",
                metadata={"tags": ["solution"]},
                outputs=[nbformat.v4.new_output("stream", name="stdout", text="42\n")],
            ),
        ]
    )
    second = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                first_cell("02_beta", "02 · Beta: the explorer", "under a minute (a CPU; 2 cores); more.")
            ),
            setup,
            nbformat.v4.new_code_cell("assert True", metadata={"tags": ["check"]}),
            nbformat.v4.new_markdown_cell("A blue square."),
            nbformat.v4.new_code_cell("figure = show()", outputs=[figure_output("blue")]),
            nbformat.v4.new_code_cell(
                "explorer",
                outputs=[
                    nbformat.v4.new_output(
                        "execute_result",
                        data={site_pages.WIDGET_MIME: WIDGET, "text/plain": "Explorer"},
                        execution_count=5,
                    )
                ],
            ),
        ]
    )
    for nb in (first, second):
        nb.metadata["language_info"] = {"name": "python"}
    return {"01_alpha.ipynb": first, "02_beta.ipynb": second}


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A tiny course folder: pyproject's [tool.course], README, assets, benchmarks, two notebooks."""
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "benchmarks").mkdir()
    (root / "pyproject.toml").write_text(
        f'[tool.course]\nrepository = "{ADDRESS.repository}"\nref = "{ADDRESS.ref}"\n', encoding="utf-8"
    )
    (root / "README.md").write_text("# Tiny course\n\nText.\n", encoding="utf-8")
    (root / "assets" / "architecture.png").write_bytes(png("green", 80))
    (root / "benchmarks" / "README.md").write_text(
        "# Benchmarks\n\n| what | time |\n|---|---|\n| epoch | 1 s |\n\n"
        "See [notebook 01](../notebooks/01_alpha.ipynb) and [the script](run.py).\n",
        encoding="utf-8",
    )
    for name, nb in tiny_notebooks().items():
        nbformat.write(nb, root / "notebooks" / name)
    return root


# --- the pages, without Sphinx ---------------------------------------------------------------------------


def test_course_map_quotes_each_cpu_time_and_says_not_measured_without_a_gpu_run(course):
    notebooks = site_pages.read_notebooks(course)
    table = site_pages.course_map(notebooks, ADDRESS, gpu={})
    rows = table.splitlines()[2:]
    assert [n.name for n in notebooks] == ["01_alpha.ipynb", "02_beta.ipynb"]
    assert "| about 5 s on a CPU. | not measured |" in rows[0]
    assert "| under a minute (a CPU; 2 cores). | not measured |" in rows[1]
    assert (
        "https://colab.research.google.com/github/someone/tiny-course/blob/v9/notebooks/02_beta.ipynb"
        in rows[1]
    )


def test_gpu_times_come_from_a_gpu_notebooks_log_and_a_cpu_dry_run_is_refused(course):
    log = course / site_pages.GPU_LOG
    log.write_text(
        "device: NVIDIA H200; torch 2.14.1; scratch: /tmp/x\n"
        "01_alpha.ipynb                  75s  ok\n"
        "02_beta.ipynb                   12s  cell 4: RuntimeError: boom\n"
        "total: 87s; executed copies in /tmp/x/notebooks\n",
        encoding="utf-8",
    )
    times = site_pages.gpu_times(log)
    assert times == {"01_alpha.ipynb": "1 min 15 s (NVIDIA H200)"}
    table = site_pages.course_map(site_pages.read_notebooks(course), ADDRESS, times)
    assert "| 1 min 15 s (NVIDIA H200) |" in table and "| not measured |" in table
    log.write_text(
        "device: CPU (--allow-cpu: a dry run, no CUDA device here); torch 2.14.1\n", encoding="utf-8"
    )
    with pytest.raises(site_pages.SiteError, match=re.escape(str(log))):
        site_pages.gpu_times(log)


def test_headline_table_is_the_first_with_a_model_between_floor_and_ceiling(course):
    path = course / "notebooks" / "01_alpha.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    bounds_only = SCORES.drop(index="our model (greedy)")
    nb["cells"].insert(3, nbformat.v4.new_code_cell("bounds", outputs=[table_output(bounds_only)]))
    path.write_text(json.dumps(nb), encoding="utf-8")
    tables = site_pages.score_tables(site_pages.read_notebooks(course))
    assert [t.cell for t in tables] == [3, 4]
    headline = site_pages.headline_table(tables)
    assert headline.cell == 4 and headline.columns == ["bleu4", "colour", "kind"]
    assert headline.rows[1] == ("our model (greedy)", ["0.804", "0.955", "0.629"])


def test_each_landing_number_names_the_notebook_cell_row_and_column_it_was_read_from(course):
    notebooks = site_pages.read_notebooks(course)
    page = site_pages.landing_page(notebooks, ADDRESS, {}, "Tiny course")
    cell = re.search(
        r'<td data-notebook="01_alpha.ipynb" data-cell="3" data-row="our model \(greedy\)" '
        r'data-column="kind">([^<]*)</td>',
        page,
    )
    assert cell is not None and cell[1] == "0.629"
    assert "In 2 Jupyter notebooks" in page and "git clone https://github.com/someone/tiny-course.git" in page
    assert "notebooks/01_alpha\nnotebooks/02_beta\nresults" in page


def test_a_notebook_page_collapses_solutions_and_checks_gives_alt_text_and_replaces_the_widget(course):
    first, second = site_pages.read_notebooks(course)
    page = site_pages.prepare_notebook(first, ADDRESS)
    tags = [cell["metadata"].get("tags") for cell in page["cells"]]
    assert ["solution", "hide-cell"] in tags and ["colab-setup", "hide-input"] in tags
    figure = next(c for c in page["cells"] if c.get("outputs") and "image/png" in c["outputs"][0]["data"])
    assert figure["metadata"]["mystnb"]["image"]["alt"] == (
        "Figure 1 of 01 · Alpha: the scores: A red square, as the model sees it."
    )
    launch = page["cells"][1]["source"]
    assert (
        "https://colab.research.google.com/github/someone/tiny-course/blob/v9/notebooks/01_alpha.ipynb"
        in launch
    )
    assert "http://localhost:8888/lab/tree/01_alpha.ipynb" in launch
    other = site_pages.prepare_notebook(second, ADDRESS)
    widget = other["cells"][-1]["outputs"][0]["data"]
    assert list(widget) == ["text/markdown"] and "make lab" in widget["text/markdown"]
    assert ["check", "hide-input"] in [c["metadata"].get("tags") for c in other["cells"]]
    assert site_pages.WIDGET_MIME in second.nb["cells"][-1]["outputs"][0]["data"]  # the original is untouched


def test_site_address_is_github_pages_of_the_repository_and_none_off_github():
    assert site_pages.site_url(Address("Owner/name", "v1")) == "https://owner.github.io/name/"
    assert site_pages.site_url(Address("https://github.com/o/n.git", "v1")) == "https://o.github.io/n/"
    assert site_pages.site_url(Address("file:///srv/course.git", "v1")) is None


def test_the_readme_links_the_site_address_that_tool_course_gives():
    url = site_pages.site_url(read_address(REPO / "pyproject.toml"))
    assert url is not None and f"]({url})" in (REPO / "README.md").read_text(encoding="utf-8")


def test_a_file_that_is_not_a_notebook_is_named(course):
    (course / "notebooks" / "03_broken.ipynb").write_text("{not json", encoding="utf-8")
    with pytest.raises(site_pages.SiteError, match=r"03_broken\.ipynb: cannot read it as a notebook"):
        site_pages.read_notebooks(course)


def test_results_page_has_every_score_table_and_the_benchmarks_with_links_that_resolve(course):
    page = site_pages.results_page(
        site_pages.read_notebooks(course), ADDRESS, course / "benchmarks" / "README.md"
    )
    assert page.count('<table class="course-scores table">') == 1 and "| epoch | 1 s |" in page
    assert "[notebook 01](notebooks/01_alpha.ipynb)" in page
    assert "[the script](https://github.com/someone/tiny-course/blob/v9/benchmarks/run.py)" in page


def test_printed_value_reads_a_wrapped_dataframe_by_row_and_column():
    output = table_output(SCORES)
    output["data"]["text/plain"] = SCORES.to_string(line_width=50)  # the layout of a notebook's wide table
    nb = {"cells": [{"outputs": [output]}]}
    assert "\n\n" in nb["cells"][0]["outputs"][0]["data"]["text/plain"]  # wrapped into two blocks
    assert site_check.printed_value(nb, 0, "our model (greedy)", "kind") == "0.629"
    assert site_check.printed_value(nb, 0, "best image-blind caption", "bleu4") == "0.348"
    assert site_check.printed_value(nb, 0, "our model (greedy)", "size") is None
    assert site_check.same_number("0.91", "0.910") and not site_check.same_number("0.91", "0.901")


# --- the built site, in Chromium -------------------------------------------------------------------------

REQUIRED = os.environ.get("BROWSER_TESTS_REQUIRED") == "1"


def missing_tools() -> str | None:
    if not os.access(site_check.CHROMIUM, os.X_OK):
        return f"no Chromium at {site_check.CHROMIUM} (make site-test installs it)"
    for module in ("playwright", "sphinx", "myst_nb", "sphinx_book_theme"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (make site-test installs the [site] and [browser] extras)"
    return None


@pytest.fixture
def built(course: Path) -> Path:
    reason = missing_tools()
    if reason and REQUIRED:
        pytest.fail(f"BROWSER_TESTS_REQUIRED=1 but {reason}", pytrace=False)
    if reason:
        pytest.skip(reason)
    site = course.parent / "site"
    assert site_build.main(["--root", str(course), "--out", str(site)]) == 0
    return site


@pytest.mark.browser
def test_the_built_tiny_site_passes_every_check(built, course, tmp_path):
    shot = tmp_path / "landing.png"
    assert site_check.run(built, course, shot) == []
    assert shot.stat().st_size > 10_000
    assert not (built / "_sources").exists() and not list(built.rglob("*.ipynb"))
    landing = (built / "index.html").read_text(encoding="utf-8")
    assert 'data-column="kind">0.629</td>' in landing


@pytest.mark.browser
def test_the_checker_names_a_missing_figure_a_wrong_number_a_broken_link_a_missing_alt_an_open_check(
    built, course
):
    second = built / "notebooks" / "02_beta.html"
    page = second.read_text(encoding="utf-8")
    figures = re.findall(r'src="\.\./_images/([0-9a-f]{64}\.png)"', page)
    assert len(figures) == 1
    second.write_text(page.replace("<details ", "<details open "), encoding="utf-8")
    (built / "_images" / figures[0]).unlink()
    index = built / "index.html"
    landing = index.read_text(encoding="utf-8").replace(
        'data-column="kind">0.629<', 'data-column="kind">0.692<'
    )
    index.write_text(
        landing.replace("</article>", '<a href="nowhere.html">x</a></article>', 1), encoding="utf-8"
    )
    first = built / "notebooks" / "01_alpha.html"
    page = first.read_text(encoding="utf-8")
    first.write_text(re.sub(r'alt="Figure 1 of [^"]*"', 'alt=""', page), encoding="utf-8")
    problems = "\n".join(site_check.run(built, course, None))
    assert re.search(r"FAIL notebooks/02_beta.html: cell 4's stored figure is not on the page", problems)
    assert "shows 0.692 for our model (greedy) / kind, but 01_alpha.ipynb cell 3 printed 0.629" in problems
    assert "FAIL index.html: broken internal link or resource nowhere.html" in problems
    assert re.search(r"FAIL notebooks/01_alpha.html: image _images/[0-9a-f]+\.png has no alt text", problems)
    assert (
        "FAIL notebooks/02_beta.html: a cell tagged 'check' shows its code: it should be collapsed"
        in problems
    )
    # and nothing else: the missing figure is also a broken image, the setup cell is opened too
    assert len(problems.splitlines()) == 8, problems
    shutil.rmtree(built)
