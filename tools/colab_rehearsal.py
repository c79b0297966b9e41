"""Rehearse the notebooks as Colab runs them, here: ``make colab-rehearsal`` (``NB=`` for some).

For each notebook, as a learner who clicks its badge:

1. a virtual environment with Colab's preinstalled set (``tools/colab-requirements.txt``: torch,
   torchvision, pandas, matplotlib, pillow, nltk, ipywidgets 7.7.1, Colab's IPython/ipykernel; no
   jupyterlab, no nbval, no course package), plus a stand-in ``google.colab`` module that the kernel
   imports at start, so that the notebook's setup cell takes its Colab branch. Built once and reused
   (``.colab-rehearsal/venv-<hash of the requirements>``); torch and torchvision are linked from
   ``--torch-from`` (the course's ``.venv``) when it has exactly the pinned releases, else pip installs them;
2. a snapshot of this checkout as it is on disk (committed or not) in a throwaway git repository, whose
   address is set through the one setting (``tools/publish.py --repo file:///snapshot --ref rehearsal``,
   tagged ``rehearsal``), so every setup cell installs the course from it with ``%pip``;
3. the notebook copied alone into an empty folder and executed top to bottom in that environment,
   with the course uninstalled first (a fresh Colab runtime has none);

then checks: no cell failed, ``helpers`` imports from the environment (not from this checkout), the
notebook wrote its data into its own folder and nothing into this checkout, and the install changed none of
the preinstalled packages. Exit status 1 if any check failed; one line per notebook says why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "tools" / "colab-requirements.txt"
COURSE_DIST = "captioning-course-helpers"
SEEDED = ("torch", "torchvision")  # large, and linked from an existing environment when it has them
STUB = {  # google.colab as the setup cell and the widgets see it; enabling the widget manager leaves a file
    "google/colab/__init__.py": "from google.colab import output  # noqa: F401\n",
    "google/colab/output.py": (
        "import os\n\n\ndef enable_custom_widget_manager():\n"
        "    with open(os.path.join(os.getcwd(), '.widget-manager-enabled'), 'w'):\n        pass\n"
    ),
}
# Executed by the environment's own Python: run one notebook with nbclient, save it, report as JSON.
EXECUTE = r"""
import json, sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path, out, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
nb = nbformat.read(path, as_version=4)
start, error = time.monotonic(), None
try:
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": "."}})
    client.execute()
except CellExecutionError as exc:
    failed = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error"
                   for o in c.get("outputs", []))), None)
    error = f"cell {failed}: {exc.ename}: {exc.evalue}"
except Exception as exc:  # a timeout or a dead kernel: still report it as one line
    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
nbformat.write(nb, out)
print(json.dumps({"seconds": round(time.monotonic() - start, 1), "error": error}))
"""


@dataclass
class Outcome:
    """What happened to one notebook."""

    notebook: str
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(f"colab-rehearsal: {message}", flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; on failure raise with its last lines, so the one-line report says why."""
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... failed ({result.returncode}):\n{tail}")
    return result


# --- the environment -----------------------------------------------------------------------------------


def venv_key(requirements: str) -> str:
    """The cache key: the requirements, this Python's version and the stand-in's code."""
    text = requirements + sys.version + json.dumps(STUB, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def pinned(requirements: str) -> dict[str, str]:
    """``name==version`` lines of a requirements file as {name: version}."""
    pins = {}
    for line in requirements.splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


CLOSURE = r"""
import importlib.metadata as md, json, re, sys
from pip._vendor.packaging.requirements import Requirement
todo, seen, out = list(sys.argv[1:]), set(), []
while todo:
    name = todo.pop().lower().replace("_", "-")
    if name in seen:
        continue
    seen.add(name)
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    out.append({"name": name, "version": dist.version, "base": str(dist.locate_file("")),
                "files": [str(f) for f in dist.files or []]})
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
print(json.dumps(out))
"""


def seed(source_python: Path, site: Path, pins: dict[str, str]) -> list[str]:
    """Hard-link (or copy) torch, torchvision and what they need from another environment into ``site``.

    Only when that environment has exactly the pinned torch and torchvision: then the files are the very
    ones pip unpacked from the same wheels, and pip sees them as installed. Packages that
    colab-requirements.txt pins itself (numpy, pillow, ...) are left to pip. Returns the packages seeded.
    """
    dists = json.loads(run([str(source_python), "-c", CLOSURE, *SEEDED]).stdout)
    found = {d["name"]: d["version"] for d in dists}
    if any(found.get(name) != pins.get(name) for name in SEEDED):
        log(
            f"{source_python} has torch {found.get('torch')}, torchvision {found.get('torchvision')}, "
            f"not the pinned {pins.get('torch')}, {pins.get('torchvision')}: pip installs them"
        )
        return []
    seeded = []
    for dist in dists:
        if dist["name"] in pins and dist["name"] not in SEEDED:
            continue
        base = Path(dist["base"])
        for name in dist["files"]:
            if name.startswith(".."):  # console scripts in bin/, with the other environment's shebang
                continue
            target = site / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(base / name, target)
            except OSError:  # another file system: copy instead
                shutil.copy2(base / name, target)
        seeded.append(f"{dist['name']}=={dist['version']}")
    return seeded


def environment(cache: Path, torch_from: Path | None) -> Path:
    """The rehearsal's virtual environment (built on first use, then reused); returns its Python."""
    requirements = REQUIREMENTS.read_text(encoding="utf-8")
    venv = cache / f"venv-{venv_key(requirements)}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        log(f"reusing {venv}")
        return python
    for stale in cache.glob("venv-*"):  # ours: unfinished builds, and those of older requirements
        log(f"removing {stale} (not the environment for today's {REQUIREMENTS.name})")
        shutil.rmtree(stale)
    start = time.monotonic()
    log(f"building {venv} (Colab's preinstalled set, {REQUIREMENTS.name})")
    run([sys.executable, "-m", "venv", str(venv)])
    site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    pins = pinned(requirements)
    if torch_from is not None and torch_from.exists():
        seeded = seed(torch_from, site, pins)
        if seeded:
            log(f"linked {len(seeded)} packages from {torch_from}: {', '.join(seeded[:3])}, ...")
    run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)])
    run([str(python), "-m", "pip", "check"])
    for name, text in STUB.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text, encoding="utf-8")
    # Colab's kernel has google.colab imported before the first cell; a .pth line does it here
    (site / "zz_colab_rehearsal.pth").write_text("import google.colab\n", encoding="utf-8")
    (venv / ".complete").write_text(f"{time.monotonic() - start:.0f} s\n", encoding="utf-8")
    log(f"built in {time.monotonic() - start:.0f} s")
    return python


def installed(python: Path) -> dict[str, str]:
    """{distribution: version} in the environment."""
    listing = run([str(python), "-m", "pip", "list", "--format=json"]).stdout
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(listing)}


# --- the snapshot ---------------------------------------------------------------------------------------


def snapshot(into: Path, migrate: bool, root: Path = ROOT) -> str:
    """This checkout's files as they are on disk, in a new git repository at ``into``; returns its pip URL.

    Tracked and untracked files (not ignored ones: no .venv, no data), so uncommitted changes are
    rehearsed too. The address is set with tools/publish.py, which also writes it into the notebooks.
    """
    listing = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root).stdout
    for name in filter(None, listing.split("\0")):
        source = root / name
        if source.is_file():  # deleted but still in the index: skip
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    git = ["git", "-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost", "-C", str(into)]
    run([*git, "init", "-q"])
    publish = [sys.executable, str(into / "tools" / "publish.py"), "--root", str(into)]
    run(
        [
            *publish,
            "--repo",
            into.resolve().as_uri(),
            "--ref",
            "rehearsal",
            *(["--migrate"] if migrate else []),
        ]
    )
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "-m", "snapshot for the Colab rehearsal"])
    run([*git, "tag", "rehearsal"])
    return f"git+{into.resolve().as_uri()}@rehearsal"


# --- one notebook ---------------------------------------------------------------------------------------


def checkout_state() -> dict[str, float]:
    """What a run could add to this checkout, with modification times: data/, runs/ and untracked files."""
    listing = run(["git", "ls-files", "-z", "--others", "--exclude-standard"], cwd=ROOT).stdout
    names = [ROOT / name for name in filter(None, listing.split("\0"))]
    for folder in (ROOT / "data", ROOT / "runs"):  # where the notebooks put data and runs in a checkout
        for parent, dirs, files in os.walk(folder):  # a symlinked dataset is one entry, not followed
            names += [Path(parent) / name for name in dirs + files]
    return {str(path): path.lstat().st_mtime for path in names if path.exists() or path.is_symlink()}


def rehearse(notebook: Path, python: Path, scratch: Path, timeout: int, before: dict[str, str]) -> Outcome:
    """Run one notebook alone in an empty folder; returns what went wrong, if anything."""
    outcome = Outcome(notebook.name)
    folder = scratch / notebook.stem
    folder.mkdir()
    shutil.copy2(notebook, folder / notebook.name)
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", COURSE_DIST], capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "CAPTION_PROGRESS"}}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    # no kernel specs from this machine's user folders: the environment's own python3 kernel only
    env["JUPYTER_DATA_DIR"] = str(scratch / ".jupyter-data")
    env["JUPYTER_PATH"] = ""
    env["HOME"] = str(scratch / ".home")  # torch's cache, matplotlib's config: as fresh as Colab's
    (scratch / ".home").mkdir(exist_ok=True)
    state = checkout_state()
    result = subprocess.run(
        [str(python), "-c", EXECUTE, notebook.name, f"{notebook.stem}.executed.ipynb", str(timeout)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    try:
        report = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        outcome.problems.append(f"the executor failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
        return outcome
    outcome.seconds = report["seconds"]
    if report["error"]:
        outcome.problems.append(report["error"])
    where = subprocess.run(
        [str(python), "-c", "import helpers; print(helpers.__file__)"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    site = str(python.parent.parent)
    if where.returncode != 0 or not where.stdout.strip().startswith(site):
        outcome.problems.append(
            f"helpers does not import from the environment: {where.stdout or where.stderr}".strip()
        )
    made = {p.name for p in folder.iterdir()} - {
        notebook.name,
        f"{notebook.stem}.executed.ipynb",
        ".widget-manager-enabled",
    }
    if not made:
        outcome.problems.append("nothing was written in the notebook's own folder")
    changed = sorted(n for n, t in checkout_state().items() if state.get(n) != t)
    if changed:
        outcome.problems.append(f"it wrote into this checkout: {', '.join(changed[:5])}")
    after = installed(python)
    moved = sorted(f"{n} {v}→{after.get(n)}" for n, v in before.items() if after.get(n) != v)
    if moved:
        outcome.problems.append(f"installing the course changed preinstalled packages: {', '.join(moved)}")
    if COURSE_DIST not in after:
        outcome.problems.append("the course is not installed after the setup cell")
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Rehearse the notebooks as Colab runs them (see tools/colab_rehearsal.py)."
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument(
        "--cache", type=Path, default=ROOT / ".colab-rehearsal", help="where the environment is kept"
    )
    parser.add_argument(
        "--torch-from",
        type=Path,
        default=ROOT / ".venv" / "bin" / "python",
        help="a Python whose torch/torchvision to link when they are the pinned ones",
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument(
        "--migrate", action="store_true", help="let publish.py --migrate old install cells in the snapshot"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (it is printed)")
    args = parser.parse_args(argv)
    notebooks = [p.resolve() for p in args.notebooks] or sorted(
        (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
    )
    for notebook in notebooks:
        if not notebook.is_file():
            print(f"colab-rehearsal: {notebook}: no such notebook", file=sys.stderr)
            return 2
    start = time.monotonic()
    try:
        python = environment(args.cache, args.torch_from)
        before = installed(python)
        before.pop(COURSE_DIST, None)
        scratch = Path(tempfile.mkdtemp(prefix="colab-rehearsal-"))
        snapshot(scratch / "course", args.migrate)
    except RuntimeError as error:
        print(f"colab-rehearsal: {error}", file=sys.stderr)
        return 1
    log(f"set-up took {time.monotonic() - start:.0f} s; notebooks run in {scratch}")
    outcomes = []
    for notebook in notebooks:
        snapshot_copy = scratch / "course" / notebook.relative_to(ROOT)
        outcome = rehearse(snapshot_copy, python, scratch, args.timeout, before)
        verdict = "ok" if not outcome.problems else "FAILED: " + "; ".join(outcome.problems)
        log(f"{outcome.notebook}: {outcome.seconds:.0f} s, {verdict}")
        outcomes.append(outcome)
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    failed = sum(bool(o.problems) for o in outcomes)
    log(f"{len(outcomes) - failed} passed, {failed} failed in {time.monotonic() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
