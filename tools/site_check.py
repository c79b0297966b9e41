"""Open the built website in headless Chromium, as a reader would, and check what a reader would notice.

``make site-test`` runs this after ``make site``; by hand, from the repository root::

    .venv/bin/python tools/site_check.py build/site [--screenshot screenshots/site-landing.png]

The site is served as it would be published, by ``python -m http.server`` on 127.0.0.1 from the built
folder alone (so anything it needs from outside that folder shows up as broken). Requests that leave
127.0.0.1 are blocked. Checked:

- every page loads (HTTP 200) without a JavaScript error;
- no internal link, image, stylesheet or script is broken (HTTP 200; a ``#fragment`` names an id of the
  target page), and every image has alt text;
- every notebook page shows every figure its notebook stores (the ``image/png`` outputs, found by the
  SHA-256 of the stored bytes, which is the file name MyST-NB gives them), and a launch line to Colab
  (when the course is on GitHub) and to JupyterLab;
- cells tagged ``solution``, ``check`` or ``colab-setup`` are collapsed, and a stored widget has its
  stand-in;
- each number of the landing page equals the one the notebook printed: the value at its row and column in
  the ``text/plain`` output of the cell it names (:func:`printed_value`);
- the search page finds a word of the first notebook's title.

Each problem is printed as ``FAIL <page>: <problem>``; the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from publish import read_address  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
COLLAPSED = ("solution", "check", "colab-setup")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STAND_IN = "A live widget stands here"


def printed_value(nb: dict, cell: int, row: str, column: str) -> str | None:
    """The value a notebook printed at ``row``, ``column`` of the DataFrame in ``cell``'s ``text/plain``
    output (pandas' wrapped layout: blocks of columns, each a header line, then one line per row)."""
    for output in nb["cells"][cell].get("outputs", []):
        text = output.get("data", {}).get("text/plain")
        if text is None:
            continue
        for block in re.split(r"\n\s*\n", "".join(text)):
            header, *lines = block.splitlines()
            columns = header.rstrip(" \\").split()
            for line in lines:
                if column in columns and line.startswith(row + " "):
                    values = line[len(row) :].rstrip(" \\").split()
                    return values[columns.index(column)] if len(values) == len(columns) else None
    return None


def same_number(shown: str, printed: str | None) -> bool:
    if printed is None:
        return False
    try:
        a, b = float(shown), float(printed)
    except ValueError:
        return shown == printed
    return a == b or (math.isnan(a) and math.isnan(b))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


class Checker:
    """Checks one served site; ``problems`` collects ``FAIL`` lines."""

    def __init__(self, site: Path, base: str, root: Path):
        self.site, self.base, self.root = site, base, root
        self.address = read_address(root / "pyproject.toml")
        self.problems: list[str] = []
        self._pages: dict[str, bytes | None] = {}

    def fail(self, page: str, problem: str) -> None:
        self.problems.append(f"FAIL {page}: {problem}")

    def page_text(self, url: str) -> bytes | None:
        if url not in self._pages:
            status, body = fetch(url)
            self._pages[url] = body if status == 200 else None
        return self._pages[url]

    def check_target(self, page: str, url: str) -> None:
        """An internal URL answers 200, and its ``#fragment`` is an id on that page."""
        target, _, fragment = url.partition("#")
        body = self.page_text(target)
        if body is None:
            self.fail(page, f"broken internal link or resource {target.removeprefix(self.base)}")
        elif fragment and target.endswith(".html"):
            fragment = urllib.parse.unquote(fragment)
            if f'id="{fragment}"'.encode() not in body:
                self.fail(page, f"link to {target.removeprefix(self.base)}#{fragment}: no such id there")

    def check_page(self, browser_page, path: str) -> None:
        url = self.base + path
        errors: list[str] = []
        browser_page.on("pageerror", lambda error: errors.append(str(error)))
        response = browser_page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            self.fail(path, f"does not load (HTTP {response.status if response else 'none'})")
            return
        targets = browser_page.eval_on_selector_all(
            "a[href], img[src], link[href], script[src]",
            "els => els.map(e => e.href || e.src).filter(u => typeof u === 'string')",
        )
        for target in sorted(set(targets)):
            if target.startswith(self.base):
                self.check_target(path, target)
        images = browser_page.eval_on_selector_all(
            "img", "els => els.map(e => ({src: e.src, alt: e.alt, width: e.naturalWidth}))"
        )
        for image in images:
            file_name = image["src"].rsplit("/", 1)[-1]
            if not image["alt"].strip() or image["alt"].rsplit("/", 1)[-1] == file_name:
                self.fail(path, f"image {image['src'].removeprefix(self.base)} has no alt text")
            if image["src"].startswith(self.base) and image["width"] == 0:
                self.fail(path, f"image {image['src'].removeprefix(self.base)} does not display")
        for error in errors:
            self.fail(path, f"JavaScript error: {error}")
        if path.startswith("notebooks/"):
            self.check_notebook_page(browser_page, path, images)
        if path == "index.html":
            self.check_numbers(browser_page, path)

    def check_notebook_page(self, browser_page, path: str, images: list[dict]) -> None:
        notebook = self.root / "notebooks" / Path(path).with_suffix(".ipynb").name
        if not notebook.is_file():
            self.fail(path, f"a page without a notebook: no {notebook}")
            return
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        shown = {image["src"].rsplit("/", 1)[-1] for image in images if image["width"] > 0}
        for index, cell in enumerate(nb["cells"]):
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png and hashlib.sha256(base64.b64decode("".join(png))).hexdigest() + ".png" not in shown:
                    self.fail(path, f"cell {index}'s stored figure is not on the page")
        links = browser_page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        colab = self.address.badge_link(f"notebooks/{notebook.name}")
        if colab and colab not in links:
            self.fail(path, f"no launch link to Colab ({colab})")
        if not any(link.startswith("http://localhost:8888/lab/tree/" + notebook.name) for link in links):
            self.fail(path, "no launch link to JupyterLab on localhost")
        self.check_cells(browser_page, path, nb)

    def check_cells(self, browser_page, path: str, nb: dict) -> None:
        for tag in COLLAPSED:
            wanted = sum(tag in c.get("metadata", {}).get("tags", []) for c in nb["cells"])
            cells = browser_page.locator(f".cell.tag_{tag}")
            if cells.count() != wanted:
                self.fail(path, f"{wanted} cells tagged {tag!r} in the notebook, {cells.count()} on the page")
            for i in range(cells.count()):
                code = cells.nth(i).locator(".cell_input")
                if code.count() and code.first.is_visible():
                    self.fail(path, f"a cell tagged {tag!r} shows its code: it should be collapsed")
        widgets = sum(WIDGET_MIME in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
        stand_ins = browser_page.get_by_text(STAND_IN).count()
        if stand_ins != widgets:
            self.fail(path, f"{widgets} widget outputs stored, {stand_ins} stand-ins on the page")

    def check_numbers(self, browser_page, path: str) -> None:
        shown = browser_page.eval_on_selector_all(
            "td[data-notebook]", "els => els.map(e => ({...e.dataset, text: e.textContent.trim()}))"
        )
        notebooks = list((self.root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if not shown and notebooks:
            self.fail(path, "the landing page shows no numbers read from the notebooks")
        for number in shown:
            nb = json.loads((self.root / "notebooks" / number["notebook"]).read_text(encoding="utf-8"))
            printed = printed_value(nb, int(number["cell"]), number["row"], number["column"])
            if not same_number(number["text"], printed):
                self.fail(
                    path,
                    f"shows {number['text']} for {number['row']} / {number['column']}, but "
                    f"{number['notebook']} cell {number['cell']} printed {printed}",
                )

    def check_search(self, browser_page, word: str) -> None:
        browser_page.goto(f"{self.base}search.html?q={urllib.parse.quote(word)}", wait_until="load")
        try:
            browser_page.wait_for_selector("#search-results li", timeout=15000)
        except Exception:  # playwright's TimeoutError
            self.fail("search.html", f"searching for {word!r} finds nothing")


def run(site: Path, root: Path, screenshot: Path | None) -> list[str]:
    """Serve ``site``, check every page; the ``FAIL`` lines (none when all is well)."""
    from playwright.sync_api import sync_playwright  # here, so that --help works without it

    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if "_static" not in p.parts)
    if "index.html" not in pages:
        return [f"FAIL {site}: no index.html (build the site first: make site)"]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    checker = Checker(site, base, root)
    try:
        deadline = time.monotonic() + 30
        while fetch_ok(base) is False and time.monotonic() < deadline:
            time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"), lambda route: route.abort())
            for path in pages:
                page = context.new_page()
                checker.check_page(page, path)
                if path == "index.html" and screenshot is not None:
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshot), full_page=True)
                page.close()
            word = search_word(root)
            if word:
                checker.check_search(context.new_page(), word)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return checker.problems


def search_word(root: Path) -> str | None:
    """The first word of five letters or more in the first notebook's title."""
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        return None
    first = json.loads(notebooks[0].read_text(encoding="utf-8"))["cells"][0]["source"]
    title = re.search(r"^# +(.+)$", "".join(first), re.MULTILINE)
    words = re.findall(r"[A-Za-z]{5,}", title[1]) if title else []
    return words[0] if words else None


def fetch_ok(url: str) -> bool:
    try:
        return fetch(url)[0] == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "site", type=Path, nargs="?", default=ROOT / "build" / "site", help="default: build/site"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the course the site was built from")
    parser.add_argument(
        "--screenshot", type=Path, help="save a full-page screenshot of the landing page here"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    problems = run(args.site.resolve(), args.root.resolve(), args.screenshot)
    for problem in problems:
        print(problem)
    pages = len([p for p in args.site.rglob("*.html") if "_static" not in p.parts])
    verdict = f"{len(problems)} problem(s)" if problems else "all checks passed"
    print(f"site check: {pages} pages, {verdict}, {time.perf_counter() - start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
