"""Every number the notebooks' prose states with a unit is one a cell printed, or a cited figure.

    .venv/bin/python tools/prose_numbers.py            # list every number that matches nothing

A number with a unit in a Markdown cell (``ms``, ``s``/``seconds``, ``min``/``minutes``, ``%``, ``×``,
``images``, ``words``, ``captions``) must be one of:

- printed by a code cell of the same notebook (stored outputs: text, and the text of tables), equal once
  the printed number is rounded to the prose's precision (``0.947`` printed is ``94.7 %`` or ``95 %``);
- a timing (``ms``, ``s``, ``min``) is said with "about" (or ``≈``, "around", "roughly" …), since it
  varies from run to run, and is within 25 % of a timing the notebook printed in any of those units;
- on :data:`ALLOWED`: a figure cited from a paper or a dataset's page, with its source (at most 20).

Numbers inside inline code, links' addresses and LaTeX are not prose and are skipped, and so is the
``## Exercises`` cell: it poses tasks ("a vocabulary of 8 000 words instead of 5 000"), it reports nothing.
``N × M`` is a size, not a ratio.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TIMES = {"ms": 0.001, "s": 1.0, "seconds": 1.0, "second": 1.0, "min": 60.0, "minutes": 60.0, "minute": 60.0}
NUMBER = r"(\d{1,3}(?:[ ,]\d{3})+|\d+)(\.\d+)?"
PROSE = re.compile(
    NUMBER + r"(\s(?:ms|s|seconds?|min|minutes?)|\s?(?:%|×(?!\s?\d))|\s(?:images|words|captions))(?![\w-])"
)
PRINTED = re.compile(r"(?<![\w.])-?" + NUMBER + r"\s?(ms|s|seconds?|min|minutes?|%|×)?(?![\w-])")
ABOUT = re.compile(r"(about|around|roughly|≈|~|nearly|almost|under|over|less than|more than)\s*$")
MAX_ALLOWED = 20
# (notebook, the number as the prose writes it with its unit): the source it is cited from
ALLOWED: dict[tuple[str, str], str] = {
    ("07_scaling_up.ipynb", "1 000 images"): "Flickr8k split files (Hodosh et al., 2013): dev, test",
    ("07_scaling_up.ipynb", "6 000 images"): "Flickr8k's split files (Hodosh et al., 2013): 6 000 train",
}


@dataclass(frozen=True)
class Stated:
    """A number with a unit in a notebook's prose, and the text around it."""

    notebook: str
    cell: int
    text: str
    value: float
    decimals: int
    unit: str
    context: str


def _plain(markdown: str) -> str:
    """The Markdown without inline code, link targets, HTML tags and LaTeX."""
    text = re.sub(r"`[^`]*`", " ", markdown)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"\$[^$]*\$", " ", text)
    return re.sub(r"<[^>]+>", " ", text)


def _value(whole: str, fraction: str | None) -> tuple[float, int]:
    digits = re.sub(r"[ ,]", "", whole)
    return float(digits + (fraction or "")), len(fraction or ".") - 1


def stated_numbers(nb, name: str) -> list[Stated]:
    """Every number with a unit in the notebook's Markdown cells."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = _plain(re.split(r"^#+ Exercises", cell.source, flags=re.MULTILINE)[0])
        for match in PROSE.finditer(text):
            value, decimals = _value(match.group(1), match.group(2))
            start = max(0, match.start() - 40)
            unit = match.group(3).strip()
            found.append(Stated(name, index, match.group(0), value, decimals, unit,
                                text[start:match.end() + 20].replace("\n", " ")))
    return found


def printed_text(nb) -> str:
    """Everything the notebook's code cells printed: streams, plain text and HTML tables as text."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                parts.append(output["text"])
            data = output.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(re.sub(r"<[^>]+>", " ", data.get("text/html", "")))
    return "\n".join(part if isinstance(part, str) else "".join(part) for part in parts)


def printed_numbers(text: str) -> list[tuple[float, str]]:
    """Each number of the printed text with the unit after it ('' for none)."""
    return [(_value(m.group(1), m.group(2))[0], m.group(3) or "") for m in PRINTED.finditer(text)]


def _rounds_to(printed: float, stated: Stated) -> bool:
    candidates = [printed]
    if stated.unit == "%":
        candidates.append(printed * 100)
    return any(round(value, stated.decimals) == stated.value for value in candidates)


def _said_about(stated: Stated) -> bool:
    before = stated.context[: stated.context.find(stated.text)]
    return bool(ABOUT.search(before))


def matches(stated: Stated, printed: list[tuple[float, str]]) -> bool:
    """Whether the stated number is one the notebook printed (see the module docstring)."""
    if (stated.notebook, stated.text) in ALLOWED:
        return True
    if stated.unit in TIMES:
        seconds = stated.value * TIMES[stated.unit]
        timings = [value * TIMES[unit] for value, unit in printed if unit in TIMES]
        return _said_about(stated) and any(abs(t - seconds) <= 0.25 * t for t in timings if t > 0)
    return any(_rounds_to(value, stated) for value, _ in printed)


def mismatches(nb, name: str) -> list[Stated]:
    """The numbers of the notebook's prose that match nothing it printed and are not allowed."""
    printed = printed_numbers(printed_text(nb))
    return [stated for stated in stated_numbers(nb, name) if not matches(stated, printed)]


def main() -> int:
    status = 0
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for stated in mismatches(nbformat.read(path, as_version=4), path.name):
            print(f"{path.name} cell {stated.cell}: {stated.text!r} in '…{stated.context}…'")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
