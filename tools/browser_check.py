"""Run notebooks the way a learner does: in JupyterLab, in a real (headless) Chromium, Run → Run All Cells.

``make browser-test`` calls this; by hand, from the repository root::

    .venv/bin/python tools/browser_check.py notebooks/01_data_processing.ipynb [more.ipynb ...]

For each notebook, in a fresh kernel, it checks what a learner would see once every cell has run:

- no cell shows an error (a traceback; warnings on stderr are fine);
- no widget shows an error in place of itself ("Error displaying widget", a broken-widget icon) or is
  still "Loading widget..." after the kernel is idle;
- every figure the ``.ipynb`` stores (its ``image/png`` outputs) is on the page as a loaded ``<img>``;
- a decoding explorer (the widget with a "next word" button, ``helpers/widgets.py``) reacts: "next word"
  changes the caption so far and the top-5 words, picking another image changes them again. Notebooks
  named in ``--explorer`` (default ``06_generation.ipynb``) must show one.

It writes a full-page screenshot of each notebook to ``--screenshots`` (default ``screenshots/``).
The notebooks themselves are never modified: JupyterLab serves a temporary copy of the repository
(the notebooks copied, everything else linked), and the originals are compared byte for byte afterwards.
JupyterLab and every kernel it started are stopped at the end, also when a check fails.

Each problem is printed as ``FAIL <notebook>, cell <i> (<first source line>): <problem>``, cells
counted from 0 as in the ``.ipynb`` (as nbval counts them); the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As root on a machine without a network: no sandbox, no GPU, none of Chromium's own connections.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A learner's defaults, except: every cell stays in the page (JupyterLab 4 otherwise renders only the
# cells near the viewport, and a check or a screenshot would miss the rest), and no news pop-up.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NEXT_WORD = "next word"  # the explorer's step button (helpers/widgets.py)
SCROLLER = ".jp-NotebookPanel .jp-WindowedPanel-outer"  # what scrolls a notebook in JupyterLab 4
SCREENSHOT_MAX_HEIGHT = 30000  # px; Chromium refuses far taller captures


@dataclass
class Report:
    """The problems found in one notebook, each as (cell index or None, message)."""

    notebook: Path
    sources: list[str]
    problems: list[tuple[int | None, str]] = field(default_factory=list)

    def fail(self, cell: int | None, message: str) -> None:
        self.problems.append((cell, message))

    def lines(self) -> list[str]:
        out = []
        for cell, message in self.problems:
            where = ""
            if cell is not None:
                first = next((line for line in self.sources[cell].splitlines() if line.strip()), "")
                first = first.strip()
                first = first if len(first) <= 70 else first[:67] + "..."
                where = f", cell {cell} ({first!r})"
            out.append(f"FAIL {self.notebook}{where}: {message}")
        return out


# ---------------------------------------------------------------------------------------------------
# What the notebook file stores


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def cell_sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"]]


def stored_figures(nb: dict) -> list[int]:
    """Per cell, how many ``image/png`` outputs the notebook stores."""
    return [
        sum("image/png" in out.get("data", {}) for out in cell.get("outputs", [])) for cell in nb["cells"]
    ]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# JupyterLab on a temporary copy of the repository


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_mirror(root: Path, notebooks: list[Path], into: Path) -> Path:
    """A folder that looks like ``root`` to the notebooks: each notebook's folder copied, the rest linked.

    Notebooks find the repository by walking up to ``pyproject.toml`` + ``helpers/``, so they read
    ``data/`` and write ``runs/`` of the real repository (as ``make course`` does), while JupyterLab
    saves, autosaves and checkpoints only into the copies.
    """
    mirror = into / "repo"
    mirror.mkdir()
    copied = {nb.parent.relative_to(root).parts[0] for nb in notebooks if nb.parent != root}
    for name in ("data", "runs"):  # linked even when missing, so what the notebooks write lands in root
        (root / name).mkdir(exist_ok=True)
    for entry in root.iterdir():
        if entry.name in copied or entry.name in {"screenshots", ".git"}:
            continue
        (mirror / entry.name).symlink_to(entry)
    for top in copied:
        shutil.copytree(root / top, mirror / top, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for nb in notebooks:
        if nb.parent == root:
            shutil.copy2(nb, mirror / nb.name)
    return mirror


class Lab:
    """A JupyterLab server from this Python's environment, in its own process group; ``stop`` ends it."""

    def __init__(self, mirror: Path, workdir: Path):
        self.port, self.token = free_port(), secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime = workdir / "runtime"
        settings = workdir / "settings"
        for name, values in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values), encoding="utf-8")
        self.log_path = workdir / "jupyterlab.log"
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(self.runtime)}
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={mirror}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
            # window.jupyterapp: lets the check read what JupyterLab knows about each output (an error
            # traceback and a warning both render as stderr text); the learner's view is unchanged
            "--LabApp.expose_app_in_browser=True",
        ]
        if os.geteuid() == 0:  # CI and containers run as root; JupyterLab refuses that unless told
            cmd.append("--allow-root")
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            cmd, cwd=mirror, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with status {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                self.api("/api/status")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace", encoding="utf-8") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def shutdown_kernels(self) -> None:
        """Shut down every session's kernel (a fresh kernel for the next notebook)."""
        try:
            for session in self.api("/api/sessions"):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")
            for kernel in self.api("/api/kernels"):
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except OSError:
            pass  # the server is gone; stop() still ends what is left

    def stop(self) -> None:
        """End the server's process group, then any kernel it left (kernels have their own groups)."""
        if self.process.poll() is None:
            self.shutdown_kernels()
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        for pid in self.leftover_kernels():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()

    def leftover_kernels(self) -> list[int]:
        """Processes whose command line names this server's runtime folder (its kernels' connection files)."""
        marker = str(self.runtime).encode()
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
        return pids


# ---------------------------------------------------------------------------------------------------
# In the page

# The notebook panel for a path, and per cell: its prompt as shown, and what JupyterLab's model holds.
STATE_JS = """(path) => {
  const app = window.jupyterapp;
  let panel = null;
  for (const w of app.shell.widgets('main')) if (w.context && w.context.path === path) panel = w;
  if (!panel || !panel.context.isReady) return null;
  const session = panel.sessionContext.session;
  return {
    kernel: session && session.kernel ? session.kernel.status : null,
    cells: panel.content.widgets.map((cell) => {
      const model = cell.model, errors = [];
      if (model.type === 'code')
        for (let j = 0; j < model.outputs.length; j++) {
          const out = model.outputs.get(j);
          if (out.type === 'error') { const e = out.toJSON(); errors.push(`${e.ename}: ${e.evalue}`); }
        }
      // A cell whose input is collapsed (a check cell) shows no prompt: read its count from the model then.
      const shown = cell.node.querySelector('.jp-InputPrompt');
      let prompt = shown ? shown.textContent.trim() : '';
      if (!/[0-9*]/.test(prompt) && model.type === 'code' && model.executionCount != null)
        prompt = `[${model.executionCount}]:`;
      return {type: model.type, prompt, errors};
    }),
  };
}"""

# What the page shows in each cell's outputs.
DOM_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell')).map((cell) => {
  const area = cell.querySelector('.jp-OutputArea');
  if (!area) return {figures: 0, broken: 0, widgetErrors: [], loading: 0};
  const imgs = Array.from(area.querySelectorAll('.jp-RenderedImage img'));
  const widgetErrors = [];
  for (const out of area.querySelectorAll('.jp-OutputArea-output')) {
    const text = out.textContent || '';
    if (out.querySelector('.jupyter-widgets-error-widget')) {
      widgetErrors.push('a widget shows the broken-widget icon');
    } else if (/Error displaying widget|Model not found/i.test(text)) {
      widgetErrors.push(text.trim().slice(0, 120));
    }
  }
  return {
    figures: imgs.filter((img) => img.complete && img.naturalWidth > 0).length,
    broken: imgs.filter((img) => !(img.complete && img.naturalWidth > 0)).length,
    widgetErrors,
    loading: Array.from(area.querySelectorAll('.jp-OutputArea-output'))
      .filter((out) => out.textContent.trim() === 'Loading widget...').length,
  };
})"""

# The explorer's parts, read as text: found by its "next word" button, in the output that holds it.
EXPLORER_JS = """(label) => {
  const cells = Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'));
  for (let i = 0; i < cells.length; i++) {
    for (const out of cells[i].querySelectorAll('.jp-OutputArea-output')) {
      const button = Array.from(out.querySelectorAll('button')).find((b) => b.textContent.trim() === label);
      if (!button) continue;
      const htmls = Array.from(out.querySelectorAll('.widget-html-content'));
      const caption = htmls.find((h) => /caption so far/i.test(h.textContent));
      const top = htmls.find((h) => h.querySelector('table'));
      const img = out.querySelector('img');
      const select = out.querySelector('select');
      return {
        cell: i,
        caption: caption ? caption.innerText.trim() : null,
        top: top ? top.innerText.trim() : null,
        image: img ? img.getAttribute('src') : null,
        options: select ? select.options.length : 0,
        disabled: button.disabled,
      };
    }
  }
  return null;
}"""


def wait_for(predicate, timeout: float, interval: float = 0.5):
    """Poll ``predicate()`` until it returns something truthy (returned) or ``timeout`` s pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)


def run_all_cells(page, path: str, timeout: float) -> dict | None:
    """Run → Run All Cells from the menu bar; wait until nothing is queued and the kernel is idle."""
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})  # the notebook is the active panel
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    started, quiet_since = time.monotonic(), None
    while time.monotonic() - started < timeout:
        state = page.evaluate(STATE_JS, path)
        code = [c for c in state["cells"] if c["type"] == "code"] if state else []
        busy = not state or state["kernel"] != "idle" or any("*" in c["prompt"] for c in code)
        if not busy and all(re.search(r"\d", c["prompt"]) for c in code):
            return state
        # after an error JupyterLab stops and unqueues the rest: idle with cells never run, for good
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 5:
            return state
        time.sleep(0.5)
    return None


def check_explorer(page, report: Report) -> None:
    """Click "next word", then pick another image: each must change the caption so far and the top-5."""
    read = lambda: page.evaluate(EXPLORER_JS, NEXT_WORD)  # noqa: E731
    before = read()
    cell = before["cell"]
    if before["caption"] is None or before["top"] is None:
        report.fail(cell, "the decoding explorer shows no 'caption so far' text or no top-5 table")
        return
    button = page.locator(".jp-Notebook .jp-Cell").nth(cell).get_by_role("button", name=NEXT_WORD)
    if before["disabled"]:
        report.fail(cell, "the explorer's 'next word' button is disabled before any word was chosen")
        return
    button.click()
    after = wait_for(
        lambda: (s := read()) and s["caption"] != before["caption"] and s["top"] != before["top"] and s, 10
    )
    if after is None:
        now = read()
        same = [
            name
            for name, key in (("the caption so far", "caption"), ("the top-5 words", "top"))
            if now[key] == before[key]
        ]
        report.fail(
            cell,
            f"clicking 'next word' in the explorer did not change {' nor '.join(same)} "
            f"(it still shows {now['caption']!r})",
        )
        return
    if before["options"] < 2:
        report.fail(cell, "the explorer's image picker offers fewer than 2 images")
        return
    page.locator(".jp-Notebook .jp-Cell").nth(cell).locator("select").first.select_option(index=1)
    picked = wait_for(
        lambda: (
            (s := read())
            and s["caption"] != after["caption"]
            and s["top"] != after["top"]
            and s["image"] != before["image"]
            and s
        ),
        10,
    )
    if picked is None:
        now = read()
        same = [
            name
            for name, key in (
                ("the caption so far", "caption"),
                ("the top-5 words", "top"),
                ("the picture", "image"),
            )
            if now[key] == (before if key == "image" else after)[key]
        ]
        report.fail(cell, f"picking another image in the explorer did not change {' nor '.join(same)}")
        return
    print(
        f"   explorer: 'next word' → {after['caption'].splitlines()[-1]!r}; "
        f"another image → {picked['caption'].splitlines()[0]!r}"
    )


def screenshot(page, path: Path) -> None:
    """The whole notebook in one picture: the window made as tall as the notebook's content."""
    height = page.evaluate(
        f"""() => {{
          const scroller = document.querySelector({SCROLLER!r});
          const cells = scroller.querySelectorAll('.jp-Cell');
          const box = scroller.getBoundingClientRect();
          // to the last cell's bottom (not scrollHeight: JupyterLab adds room to scroll past the end)
          const end = cells.length ? cells[cells.length - 1].getBoundingClientRect().bottom : box.bottom;
          return Math.ceil(end + scroller.scrollTop + 60);
        }}"""
    )
    page.set_viewport_size({"width": 1280, "height": max(800, min(height, SCREENSHOT_MAX_HEIGHT))})
    page.wait_for_timeout(500)
    # Run All leaves the notebook scrolled to its last cell: show it from the top
    page.evaluate(f"() => {{ for (const el of document.querySelectorAll({SCROLLER!r})) el.scrollTop = 0; }}")
    page.wait_for_timeout(1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1280, "height": 900})


def check_cells(report: Report, figures: list[int], state: dict, dom: list[dict]) -> list[int] | None:
    """Fail ``report`` for what the page's cells show wrong; return the code cells that did not run.

    ``figures`` is :func:`stored_figures` of the file, ``state`` what :data:`STATE_JS` read (``cells``:
    type, prompt, errors) and ``dom`` what :data:`DOM_JS` read, one entry per cell. A cell whose page
    shows fewer loaded images than the file stores figures fails. ``None`` when the page does not show
    the file's cells at all (then nothing else can be compared).
    """
    if len(state["cells"]) != len(figures):
        report.fail(None, f"the page shows {len(state['cells'])} cells, the file has {len(figures)}")
        return None
    for i, (cell, shown) in enumerate(zip(state["cells"], dom, strict=True)):
        for error in cell["errors"]:
            report.fail(i, f"the cell shows an error: {error}")
        for message in shown["widgetErrors"]:
            report.fail(i, f"a widget cannot be displayed: {message!r}")
        if shown["loading"]:
            report.fail(i, "a widget is still 'Loading widget...' after the kernel went idle")
        if shown["figures"] < figures[i]:
            report.fail(
                i,
                f"the notebook stores {figures[i]} figure(s) here, the page shows "
                f"{shown['figures']} ({shown['broken']} image(s) did not load)",
            )
    unrun = [
        i for i, c in enumerate(state["cells"]) if c["type"] == "code" and not re.search(r"\d", c["prompt"])
    ]
    if unrun and not any(c["errors"] for c in state["cells"]):  # after an error, unrun cells are expected
        report.fail(unrun[0], f"Run All Cells did not run this cell nor {len(unrun) - 1} later one(s)")
    return unrun


def check_notebook(
    context, lab: Lab, notebook: Path, rel: str, timeout: float, explorer_required: bool, shots: Path
) -> Report:
    """Open ``rel`` in a new page, Run All Cells, check what the page shows, take its screenshot."""
    from playwright.sync_api import Error as PlaywrightError

    nb = read_notebook(notebook)
    report = Report(notebook=Path(rel), sources=cell_sources(nb))
    figures = stored_figures(nb)
    page = context.new_page()
    console: list[str] = []
    # offline, the Colab badge cannot load: not worth a line
    page.on(
        "console",
        lambda msg: msg.type == "error" and "net::ERR_" not in msg.text and console.append(msg.text),
    )
    try:
        start = time.monotonic()
        page.goto(f"{lab.url}/lab/tree/{rel}?reset&token={lab.token}")
        # the kernel is up and idle (a fresh one: the previous notebook's was shut down)
        ready = wait_for(
            lambda: (
                (s := page.evaluate("() => !!window.jupyterapp") and page.evaluate(STATE_JS, rel))
                and s["kernel"] == "idle"
            ),
            120,
        )
        if not ready:
            report.fail(None, "the notebook did not open with an idle kernel within 120 s")
            return report
        state = run_all_cells(page, rel, timeout)
        if state is None:
            report.fail(None, f"Run All Cells did not finish within {timeout:.0f} s (see --timeout)")
            return report
        page.wait_for_timeout(1500)  # widgets and images render after the kernel's last message
        code = [c for c in state["cells"] if c["type"] == "code"]
        ran = sum(bool(re.search(r"\d", c["prompt"])) for c in code)
        print(f"   {ran} of {len(code)} code cells ran, in {time.monotonic() - start:.0f} s")
        dom = wait_for(lambda: (d := page.evaluate(DOM_JS)) and not any(c["loading"] for c in d) and d, 10)
        dom = dom or page.evaluate(DOM_JS)
        unrun = check_cells(report, figures, state, dom)
        if unrun is None:
            return report
        if page.evaluate(EXPLORER_JS, NEXT_WORD):
            check_explorer(page, report)
        elif explorer_required:
            stopped = " (Run All Cells stopped at the error above)" if unrun else ""
            report.fail(
                None, f"no decoding explorer (a widget with a {NEXT_WORD!r} button) is on the page{stopped}"
            )
    except PlaywrightError as error:  # a menu or a button not found in time: a failure of this notebook
        report.fail(None, f"the browser could not do what a learner does: {str(error).splitlines()[0]}")
    finally:
        if report.problems and console:
            print("   browser console errors:\n     " + "\n     ".join(console[-5:]))
        shot = shots / f"{notebook.stem}.png"
        try:  # also after a failure: the picture shows what went wrong
            screenshot(page, shot)
            print(f"   screenshot: {shot}")
        except PlaywrightError as error:
            print(f"   no screenshot: {str(error).splitlines()[0]}")
        page.close()
        lab.shutdown_kernels()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/[0-9][0-9]_*.ipynb")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per notebook (default 900)")
    parser.add_argument("--screenshots", type=Path, default=None, help="default: ROOT/screenshots")
    parser.add_argument(
        "--explorer",
        action="append",
        default=None,
        help="a notebook name that must show the decoding explorer (default 06_generation.ipynb)",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    notebooks = [(root / nb if not nb.is_absolute() else nb).resolve() for nb in args.notebooks]
    notebooks = notebooks or sorted(root.glob("notebooks/[0-9][0-9]_*.ipynb"))
    missing = [nb for nb in notebooks if not nb.is_file()]
    if missing or not notebooks:
        print(f"FAIL no such notebook: {', '.join(map(str, missing)) or 'none given or found'}")
        return 1
    explorers = set(args.explorer or ["06_generation.ipynb"])
    shots = (args.screenshots or root / "screenshots").resolve()
    before = {nb: digest(nb) for nb in notebooks}

    from playwright.sync_api import sync_playwright  # here, so that --help works without it

    reports: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        workdir = Path(tmp)
        mirror = make_mirror(root, notebooks, workdir)
        lab = Lab(mirror, workdir)
        try:
            lab.wait_ready()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
                )
                try:
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    for nb in notebooks:
                        rel = nb.relative_to(root).as_posix()
                        print(f"== {rel}")
                        reports.append(
                            check_notebook(
                                context, lab, mirror / rel, rel, args.timeout, nb.name in explorers, shots
                            )
                        )
                finally:
                    browser.close()
        finally:
            lab.stop()
    for nb, sha in before.items():
        if digest(nb) != sha:
            reports.append(Report(nb.relative_to(root), [], [(None, "the check changed the notebook file")]))
    failures = [line for report in reports for line in report.lines()]
    print("\n".join(failures) if failures else f"OK: {len(notebooks)} notebook(s) ran cleanly in JupyterLab")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
