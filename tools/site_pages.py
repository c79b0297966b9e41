"""The pages of the course's website, made from the notebooks' stored outputs (tools/site_build.py builds it).

- the landing page (:func:`landing_page`): what the learner builds, the architecture figure, the score
  table a notebook printed (each number marked with the notebook, cell, row and column it was read from),
  the course map (each notebook's run time on a CPU as its first cell states it, and on a GPU as
  ``benchmarks/gpu_notebooks.log`` records it, else "not measured"), the set-up commands, Open in Colab;
- each notebook's page (:func:`prepare_notebook`): its stored outputs as they are, cells tagged
  ``solution`` collapsed whole, the code of ``check`` and ``colab-setup`` cells collapsed, alt text on every
  figure, a note on how to run a live widget in place of its output, and a launch line (Colab, JupyterLab);
- the results page (:func:`results_page`): every score table the notebooks printed, then
  ``benchmarks/README.md``.
"""

from __future__ import annotations

import html
import json
import re
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from publish import Address  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
GPU_LOG = "benchmarks/gpu_notebooks.log"  # the output of scripts/gpu_notebooks.sh, when one was run
NOT_MEASURED = "not measured"
ARCHITECTURE_ALT = (
    "The model: images go through a ResNet50 without its last layer and a linear layer to a feature "
    "vector; the LSTM reads that feature first, then the caption's word embeddings, and a linear layer "
    "scores the next word"
)
LAB_URL = "http://localhost:8888/lab/tree/{name}"  # make lab serves notebooks/ on JupyterLab's default port
# cell tag → MyST-NB's tag: a solution is hidden whole (its output gives it away), checks keep no output
COLLAPSE = {"solution": "hide-cell", "check": "hide-input", "colab-setup": "hide-input"}


class SiteError(Exception):
    """A notebook or setting the site cannot be built from; the message names the file and the problem."""


@dataclass(frozen=True)
class Notebook:
    """One course notebook: ``path`` (``notebooks/NN_x.ipynb``) and its parsed JSON ``nb``."""

    path: Path
    nb: dict

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def page(self) -> str:
        """The page's path in the site, without suffix: ``notebooks/NN_x``."""
        return f"notebooks/{self.path.stem}"

    @property
    def first_cell(self) -> str:
        cells = self.nb.get("cells", [])
        return source(cells[0]) if cells and cells[0].get("cell_type") == "markdown" else ""

    @property
    def title(self) -> str:
        found = re.search(r"^# +(.+)$", self.first_cell, re.MULTILINE)
        if found is None:
            raise SiteError(f"{self.path}: its first cell has no '# title' heading")
        return found[1].strip()

    @property
    def cpu_time(self) -> str:
        """The first sentence of the first cell's "**Run time:**" paragraph."""
        found = re.search(r"\*\*Run time:\*\*\s*(.+?)(?:\n\n|$)", self.first_cell, re.DOTALL)
        if found is None:
            raise SiteError(f"{self.path}: its first cell has no '**Run time:**' paragraph")
        text = " ".join(found[1].split())
        for end in re.finditer(r"[.;](?=\s)", text):  # the first end of a sentence outside parentheses
            if text[: end.start()].count("(") == text[: end.start()].count(")"):
                return text[: end.start()] + "."
        return text


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def read_notebooks(root: Path) -> list[Notebook]:
    """``root/notebooks/[0-9][0-9]_*.ipynb`` in order, parsed; a file that is not a notebook is an error."""
    notebooks = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SiteError(f"{path}: cannot read it as a notebook ({error})") from None
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise SiteError(f"{path}: not a notebook (no list of cells)")
        notebooks.append(Notebook(path, nb))
    if not notebooks:
        raise SiteError(f"{root / 'notebooks'}: no NN_*.ipynb notebooks to build a site from")
    return notebooks


def site_url(address: Address) -> str | None:
    """Where the site is published: GitHub Pages of the repository, or None off GitHub."""
    return address.pages_url


def gpu_times(log: Path) -> dict[str, str]:
    """Notebook name → its time in ``log`` (lines ``NN_x.ipynb  123s  ok`` of scripts/gpu_notebooks.sh).

    Only notebooks that ran ``ok`` on a CUDA device count; a missing log gives ``{}``."""
    if not log.is_file():
        return {}
    text = log.read_text(encoding="utf-8")
    if not text.startswith("device: ") or "--allow-cpu" in text.splitlines()[0]:
        raise SiteError(f"{log}: not the output of scripts/gpu_notebooks.sh on a GPU (its 'device:' line)")
    device = text.splitlines()[0].removeprefix("device: ").split(";")[0]
    found = re.findall(r"^(\d\d_\S+\.ipynb)\s+(\d+)s\s+ok$", text, re.MULTILINE)
    return {name: f"{int(seconds) // 60} min {int(seconds) % 60:02d} s ({device})" for name, seconds in found}


# --- score tables the notebooks printed ----------------------------------------------------------------


class _Table(HTMLParser):
    """The rows of the first ``<table>`` of a pandas ``text/html`` output, each as a list of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._done = False

    def handle_starttag(self, tag, attrs):
        if self._done:
            return
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._done = True

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@dataclass(frozen=True)
class ScoreTable:
    """A table of scores a notebook printed: ``columns``, and ``rows`` as (label, values) in order."""

    notebook: Notebook
    cell: int
    columns: list[str]
    rows: list[tuple[str, list[str]]]


def score_tables(notebooks: list[Notebook]) -> list[ScoreTable]:
    """Every stored DataFrame output with a ``bleu4`` column and at least one other column, in order."""
    tables = []
    for notebook in notebooks:
        for index, cell in enumerate(notebook.nb["cells"]):
            for output in cell.get("outputs", []):
                markup = output.get("data", {}).get("text/html")
                if markup is None:
                    continue
                parser = _Table()
                parser.feed("".join(markup) if isinstance(markup, list) else markup)
                header, *body = parser.rows or [[]]
                columns = header[1:]
                if "bleu4" in columns and len(columns) > 1 and body:
                    rows = [(row[0], row[1:]) for row in body if len(row) == len(header)]
                    tables.append(ScoreTable(notebook, index, columns, rows))
    return tables


def headline_table(tables: list[ScoreTable]) -> ScoreTable | None:
    """The first table with a model's row between the image-blind floor's and the humans' ceiling's."""
    for table in tables:
        labels = [label for label, _ in table.rows]
        floor = [x for x in labels if x.startswith("best image-blind")]
        ceiling = [x for x in labels if x.startswith("humans")]
        if floor and ceiling and len(labels) > len(floor) + len(ceiling):
            return table
    return None


def table_html(table: ScoreTable) -> str:
    """``table`` as HTML; each number's cell names where it came from (``data-notebook``, ``data-cell``,
    ``data-row``, ``data-column``), so that a test can compare it with the notebook's stored output."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    lines = [f'<table class="course-scores table"><thead><tr><th></th>{head}</tr></thead><tbody>']
    for label, values in table.rows:
        cells = "".join(
            f'<td data-notebook="{html.escape(table.notebook.name)}" data-cell="{table.cell}" '
            f'data-row="{html.escape(label)}" data-column="{html.escape(column)}">{html.escape(value)}</td>'
            for column, value in zip(table.columns, values, strict=True)
        )
        lines.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    lines.append("</tbody></table>")
    source_line = f"Printed by [{table.notebook.title}]({table.notebook.page}.ipynb), cell {table.cell}."
    return "\n".join(lines) + "\n\n" + source_line + "\n"


# --- the pages ------------------------------------------------------------------------------------------


def plain_sentence(markdown: str, limit: int = 200) -> str:
    """The first sentence of ``markdown``'s first paragraph with text (a heading is a paragraph) as plain
    text, without images, links or code marks, at most ``limit`` characters; "" when there is none."""
    for paragraph in re.split(r"\n\s*\n|\n(?=#)", markdown):
        if paragraph.lstrip().startswith("#"):
            paragraph = paragraph.strip().splitlines()[0]
        text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", paragraph)
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
        text = " ".join(re.sub(r"^#+\s*|[`*_]|<[^>]+>", "", text, flags=re.MULTILINE).split())
        if text:
            sentence = re.split(r"(?<=[^\d\s][.:!?])\s", text, maxsplit=1)[0]  # "3. Loss" is no sentence
            return sentence if len(sentence) <= limit else sentence[: limit - 1].rsplit(" ", 1)[0] + "…"
    return ""


def launch_line(notebook: Notebook, address: Address) -> str:
    """The markdown line on top of a notebook's page: where to run it (Colab; JupyterLab locally)."""
    lab = f"[{notebook.name}]({LAB_URL.format(name=notebook.name)})"
    local = (
        f"in JupyterLab on your computer, `make lab` (set up as on the [home page](../index.md)), then {lab}"
    )
    colab = address.badge_link(f"notebooks/{notebook.name}")
    if colab is None:
        return f"**Run this notebook** {local}. (Colab opens notebooks from GitHub only.)"
    return f"**Run this notebook:** [Open in Colab]({colab}) · {local}."


def widget_stand_in(notebook: Notebook) -> str:
    """What a page shows where the notebook stored a live widget."""
    return (
        "**A live widget stands here** (the step-by-step decoding explorer in the notebook): a static page "
        "cannot run it. The printed steps above show what it does, one word at a time with the top five "
        "next words. To use it live, open this notebook in Colab (the launch button at the top), or run "
        f"`make lab` and open `notebooks/{notebook.name}`."
    )


def prepare_notebook(notebook: Notebook, address: Address) -> dict:
    """A copy of the notebook for its page: collapse tags, alt text, widget stand-ins, a launch line.

    Outputs are kept as stored, except widget views, which become :func:`widget_stand_in`."""
    nb = json.loads(json.dumps(notebook.nb))
    context, figures = notebook.title, 0
    for cell in nb["cells"]:
        if cell.get("cell_type") == "markdown":
            context = plain_sentence(source(cell)) or context
            continue
        metadata = cell.setdefault("metadata", {})
        tags = metadata.get("tags", [])
        metadata["tags"] = tags + sorted({COLLAPSE[tag] for tag in tags if tag in COLLAPSE} - set(tags))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                figures += 1
                alt = f"Figure {figures} of {notebook.title}: {context}"
                metadata.setdefault("mystnb", {})["image"] = {"alt": alt}
            if WIDGET_MIME in data:
                output["data"] = {"text/markdown": widget_stand_in(notebook)}
    launch = {"cell_type": "markdown", "metadata": {}, "source": launch_line(notebook, address)}
    if nb.get("nbformat_minor", 0) >= 5:
        launch["id"] = "course-site-launch"
    nb["cells"].insert(1, launch)
    return nb


def course_map(notebooks: list[Notebook], address: Address, gpu: dict[str, str]) -> str:
    """The landing page's table: each notebook, its run time on a CPU and on a GPU, and its Colab link."""
    lines = ["| Notebook | On a CPU | On a GPU (measured) | |", "|---|---|---|---|"]
    for notebook in notebooks:
        colab = address.badge_link(f"notebooks/{notebook.name}")
        launch = f"[Open in Colab]({colab})" if colab else ""
        cpu = notebook.cpu_time.replace("|", "\\|")
        lines.append(
            f"| [{notebook.title}]({notebook.page}.ipynb) | {cpu} | {gpu.get(notebook.name, NOT_MEASURED)} "
            f"| {launch} |"
        )
    return "\n".join(lines) + "\n"


def clone_commands(address: Address) -> str:
    url = f"https://github.com/{address.github}.git" if address.github else address.repository
    folder = url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    return f"git clone {url}\ncd {folder}\nmake lab   # Linux without an NVIDIA GPU: make lab TORCH=cpu\n"


def landing_page(notebooks: list[Notebook], address: Address, gpu: dict[str, str], title: str) -> str:
    """The markdown of ``index.md``."""
    headline = headline_table(score_tables(notebooks))
    first = address.badge_link(f"notebooks/{notebooks[0].name}")
    colab = f"Nothing to install: [open the first notebook in Colab]({first}).\n\n" if first else ""
    scores = (
        "## What your model will do\n\nOn the test split of the course's offline dataset, as the notebook "
        "printed it, between a floor (the best caption that ignores the image) and a ceiling (each human "
        "caption scored against the others): BLEU-4 on 0–1, then the share of captions that state each "
        "fact of the scene right.\n\n" + table_html(headline) + "\n"
        if headline
        else ""
    )
    pages = "\n".join([nb.page for nb in notebooks] + ["results"])
    return f"""# {title}

In {len(notebooks)} Jupyter notebooks you build, in PyTorch, a model that writes a caption for an image:
a ResNet50 turns the picture into a vector, an LSTM writes the caption word by word, and everything runs
offline on a laptop CPU. Every page below is a notebook with the outputs it printed when it last ran.

```{{image}} assets/architecture.png
:alt: {ARCHITECTURE_ALT}
:width: 640px
```

{scores}## The course

{course_map(notebooks, address, gpu)}
Times on a GPU are those of a recorded run of `scripts/gpu_notebooks.sh` ({GPU_LOG}); a notebook
without one says "{NOT_MEASURED}".

## Set up

```bash
{clone_commands(address)}```

{colab}Every score and timing the course measured: [Results](results.md).

```{{toctree}}
:hidden:
:maxdepth: 1

{pages}
```
"""


def results_page(notebooks: list[Notebook], address: Address, benchmarks: Path) -> str:
    """The markdown of ``results.md``: the notebooks' score tables, then the benchmarks' README."""
    parts = ["# Results\n", "## How well the model captions, attribute by attribute\n"]
    for table in score_tables(notebooks):
        parts.append(table_html(table))
    if benchmarks.is_file():
        text = benchmarks.read_text(encoding="utf-8")
        body = re.sub(r"^# .*\n", "", text, count=1)
        parts.append("## Benchmarks\n\n" + re.sub(r"^(#+) ", r"#\1 ", body, flags=re.MULTILINE))
        parts[-1] = re.sub(r"\]\(([^)#:\s]+)\)", lambda m: f"]({_page_link(m[1], address)})", parts[-1])
    return "\n".join(parts)


def _page_link(target: str, address: Address) -> str:
    """A link of ``benchmarks/README.md`` as seen from the site's root page."""
    path = Path("benchmarks", target)
    parts: list[str] = []
    for part in path.parts:
        parts = parts[:-1] if part == ".." else [*parts, part]
    repo_path = "/".join(parts)
    if repo_path.startswith("notebooks/") and repo_path.endswith(".ipynb"):
        return repo_path
    if address.github:
        return f"https://github.com/{address.github}/blob/{address.ref}/{repo_path}"
    return f"{address.repository}#{repo_path}"
