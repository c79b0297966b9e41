"""Write the course's public address into every notebook: the Colab badges and the install cells.

The address lives in one place, ``[tool.course]`` in ``pyproject.toml``::

    [tool.course]
    repository = "owner/name"   # on GitHub; or any git URL (file:///path, https://host/x.git)
    ref = "v0.1.0"              # a tag: the notebooks and the helpers they install are the same commit

Everything else is generated from it by this tool:

- the badge in each notebook's first (markdown) cell opens ``notebooks/NN_x.ipynb`` at ``ref`` in Colab;
- each notebook's first code cell, tagged ``colab-setup``, is :func:`setup_cell` for that address,
  identical in every notebook;
- the notebooks' jupytext pairs (``.py``, found through each notebook's jupytext metadata) get the same;
- the Colab links in ``README.md`` (its table of notebooks) open the same ref, and its link to the
  course's website (``make site``) is the repository's GitHub Pages address.

Usage (``make publish REPO=owner/name REF=v0.2.0`` runs the first)::

    python tools/publish.py --repo you/fork --ref v0.2.0   # change the setting, rewrite the notebooks
    python tools/publish.py                                # rewrite the notebooks from the setting
    python tools/publish.py --check                        # exit 1, one line per disagreement
    python tools/publish.py --migrate                      # also remove the old in-cell pip installs

The ref is a tag, not a branch: a notebook checks itself against ``helpers`` (``assert_close`` against
the package), so the notebook a badge opens and the package its setup cell installs must be the same
commit. A branch moves under a learner; a commit hash cannot name the commit that contains it. A tag can:
``make publish REF=v0.2.0``, commit, ``git tag v0.2.0``, push the tag.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUP_TAG = "colab-setup"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# Any Colab-opens-GitHub link: what the badge points at, in any notebook, stale or current.
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"'>]+")
# A link to a GitHub Pages site of a repository: the course's website (make site) is published there.
PAGES_LINK = re.compile(r"https://[a-z0-9-]+\.github\.io/[A-Za-z0-9_.-]+/")  # hosts are lower case
GITHUB_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
GITHUB_URL = re.compile(r"^(?:git\+)?https://github\.com/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$")
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
# The install code that notebooks carried before the setup cell existed (--migrate removes it).
LEGACY_INSTALL = re.compile(
    r"^if \"google\.colab\" in sys\.modules:[^\n]*\n(?:[ \t]+[^\n]*\n|[ \t]*\n)*?[ \t]+\)\n", re.MULTILINE
)
INSTALLS_COURSE = re.compile(r"pip\W+install\b[^\n]*git\+|\[sys\.executable, \"-m\", \"pip\"", re.MULTILINE)

# The setup cell, the same in every notebook: three lines. Locally it only imports sys (no output). On
# Colab it installs the course at the fixed ref. Without --upgrade, pip keeps every package Colab already
# has whose version the course accepts (pyproject's ranges are loose for that: torch, torchvision,
# ipywidgets 7.7 …), and `make colab-rehearsal` checks that none moves. The widgets turn Colab's widget
# manager on themselves (helpers.widgets.enable_colab_widgets). A failed install is reported by pip above
# the cell, and the next cell's `import helpers` fails. %pip is written as IPython's call, so that the
# cell's jupytext pair is plain Python.
TEMPLATE = """\
import sys
if "google.colab" in sys.modules:  # on Colab only: install the course (locally it is installed already)
    get_ipython().run_line_magic("pip", "install -q {spec}")  # noqa: F821
"""


class PublishError(Exception):
    """A setting or a file this tool cannot work with; the message is one line naming it."""


@dataclass(frozen=True)
class Address:
    """Where learners install the course from: ``repository`` (GitHub owner/name or a git URL) at ``ref``."""

    repository: str
    ref: str

    def __post_init__(self) -> None:
        if not REF.match(self.ref):
            raise PublishError(f"ref {self.ref!r} is not a git tag or branch name (e.g. v0.1.0)")
        if not (GITHUB_NAME.match(self.repository) or "://" in self.repository):
            raise PublishError(
                f"repository {self.repository!r} is neither GitHub's owner/name nor a URL (file:///..., https://...)"
            )
        if any(c in self.repository for c in " \"'@{}"):
            raise PublishError(f"repository {self.repository!r} may not contain spaces, quotes, @ or braces")

    @property
    def github(self) -> str | None:
        """``owner/name`` when the repository is on GitHub (Colab opens notebooks only from there)."""
        if GITHUB_NAME.match(self.repository):
            return self.repository
        match = GITHUB_URL.match(self.repository)
        return match.group(1) if match else None

    @property
    def pip_spec(self) -> str:
        """What ``pip install`` gets: ``git+https://github.com/owner/name@ref`` or ``git+URL@ref``."""
        url = f"https://github.com/{self.github}" if self.github else self.repository
        return f"{'' if url.startswith('git+') else 'git+'}{url}@{self.ref}"

    @property
    def pages_url(self) -> str | None:
        """The GitHub Pages address of the repository (``https://owner.github.io/name/``), or None."""
        if self.github is None:
            return None
        owner, name = self.github.split("/")
        return f"https://{owner.lower()}.github.io/{name}/"

    def badge_link(self, notebook: str) -> str | None:
        """The Colab link for ``notebook`` (its path in the repository, e.g. ``notebooks/01_x.ipynb``)."""
        if self.github is None:
            return None
        return f"https://colab.research.google.com/github/{self.github}/blob/{self.ref}/{notebook}"


def setup_cell(address: Address) -> str:
    """The source of the ``colab-setup`` cell for ``address`` (the same text in every notebook)."""
    return TEMPLATE.format(spec=address.pip_spec).rstrip("\n")


def badge(link: str) -> str:
    """The markdown of an "Open in Colab" badge pointing at ``link``."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({link})"


# --- the setting in pyproject.toml --------------------------------------------------------------------

SECTION = re.compile(r"^\[tool\.course\][ \t]*\n(?P<body>(?:(?!\[).*\n?)*)", re.MULTILINE)


def _key(body: str, key: str) -> re.Match | None:
    return re.search(rf"^{key}[ \t]*=[ \t]*\"(?P<value>[^\"\n]*)\"", body, re.MULTILINE)


def read_address(pyproject: Path) -> Address:
    """``[tool.course]``'s repository and ref from ``pyproject``."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError as error:
        raise PublishError(f"{pyproject}: cannot read it ({error.strerror})") from None
    section = SECTION.search(text)
    if section is None:
        raise PublishError(
            f'{pyproject}: no [tool.course] table with repository = "owner/name" and ref = "tag"'
        )
    values = {}
    for key in ("repository", "ref"):
        match = _key(section["body"], key)
        if match is None:
            raise PublishError(f'{pyproject}: [tool.course] has no {key} = "..." line')
        values[key] = match["value"]
    return Address(values["repository"], values["ref"])


def write_address(pyproject: Path, address: Address) -> bool:
    """Set ``[tool.course]``'s repository and ref in ``pyproject``, keeping every other byte.

    Returns True if the file changed."""
    read_address(pyproject)  # the same clear error when the table or a key is missing
    text = pyproject.read_text(encoding="utf-8")
    section = SECTION.search(text)
    body = section["body"]
    for key, value in (("repository", address.repository), ("ref", address.ref)):
        match = _key(body, key)
        body = body[: match.start("value")] + value + body[match.end("value") :]
    new = text[: section.start("body")] + body + text[section.end("body") :]
    if new != text:
        pyproject.write_text(new, encoding="utf-8")
    return new != text


# --- one notebook ---------------------------------------------------------------------------------------


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _set_source(cell: dict, text: str) -> None:
    # nbformat stores a source as lines on disk; keep whichever form the cell already had
    cell["source"] = text.splitlines(keepends=True) if isinstance(cell.get("source"), list) else text


def _is_setup(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and SETUP_TAG in cell.get("metadata", {}).get("tags", [])


def _new_setup_cell(nb: dict, source: str) -> dict:
    cell = {"cell_type": "code", "execution_count": None, "metadata": {"tags": [SETUP_TAG]}, "outputs": []}
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
        taken = {c.get("id") for c in nb["cells"]}
        candidates = (SETUP_TAG, *(f"{SETUP_TAG}-{n}" for n in range(1, 999)))
        cell["id"] = next(i for i in candidates if i not in taken)
    # a parsed .ipynb holds sources as lists of lines, a jupytext notebook as strings: match the others
    as_lines = any(isinstance(c.get("source"), list) for c in nb["cells"])
    cell["source"] = source.splitlines(keepends=True) if as_lines else source
    return cell


def check_notebook(nb: dict, address: Address, path_in_repo: str) -> list[str]:
    """What disagrees with ``address`` in one notebook (a parsed .ipynb or jupytext notebook), one line each.

    Checked: the first cell is markdown with a badge to ``address``; every Colab link anywhere equals it;
    exactly one cell is tagged ``colab-setup``, it is the first code cell and its source is
    :func:`setup_cell`; no other code cell installs the course itself.
    """
    problems = []
    cells = nb.get("cells", [])
    link = address.badge_link(path_in_repo)
    if link is not None:
        first = _source(cells[0]) if cells and cells[0].get("cell_type") == "markdown" else ""
        if badge(link) not in first and not COLAB_LINK.search(first):
            problems.append(f"the first cell has no Open in Colab badge to {link}")
        for index, cell in enumerate(cells):
            for found in COLAB_LINK.findall(_source(cell)):
                if found != link:
                    problems.append(f"cell {index}: Colab link {found} is not {link}")
    setups = [i for i, cell in enumerate(cells) if _is_setup(cell)]
    code = [i for i, cell in enumerate(cells) if cell.get("cell_type") == "code"]
    if not setups:
        problems.append(f"no code cell is tagged {SETUP_TAG!r}")
    elif len(setups) > 1:
        problems.append(f"cells {setups} are all tagged {SETUP_TAG!r}: keep one")
    else:
        name = f"cell {setups[0]} (tagged {SETUP_TAG!r})"
        if setups[0] != code[0]:
            problems.append(f"{name} is not the first code cell (cell {code[0]})")
        if _source(cells[setups[0]]) != setup_cell(address):
            problems.append(f"{name} differs from the setup cell for {address.pip_spec}")
    for index in code:
        if index not in setups and INSTALLS_COURSE.search(_source(cells[index])):
            problems.append(
                f"cell {index} installs the course by itself: remove those lines "
                f"(the {SETUP_TAG!r} cell does it; --migrate removes the old form)"
            )
    return problems


def _without_legacy_install(text: str, elsewhere: str) -> str:
    """``text`` without the old ``if "google.colab" ...: subprocess.run([... pip install ...])`` block,
    and without ``import subprocess`` / ``import sys`` when neither it nor ``elsewhere`` (the notebook's
    other code) still uses them."""
    legacy = LEGACY_INSTALL.search(text)
    if legacy is None:  # some other install line: a person decides (check_notebook names the cell)
        return text
    before, after = text[: legacy.start()].rstrip("\n"), text[legacy.end() :].lstrip("\n")
    text = f"{before}\n\n{after}" if before else after
    for module in ("subprocess", "sys"):
        rest = re.sub(rf"^import {module}\n", "", text, flags=re.MULTILINE)
        if not re.search(rf"\b{module}\.", rest + elsewhere):
            text = rest
    return text.lstrip("\n")


def apply_notebook(nb: dict, address: Address, path_in_repo: str, migrate: bool = False) -> dict:
    """A copy of ``nb`` with its badge, Colab links and setup cell made to agree with ``address``.

    A missing setup cell is inserted before the first code cell; a misplaced one is moved there. With
    ``migrate``, the old in-cell install (``subprocess.run([... pip install git+...])``) is removed from
    the code cells. Nothing else changes; :func:`check_notebook` names what this cannot fix.
    """
    nb = copy.deepcopy(nb)
    cells = nb.setdefault("cells", [])
    link = address.badge_link(path_in_repo)
    if link is not None:
        for cell in cells:
            text = _source(cell)
            if COLAB_LINK.search(text):
                _set_source(cell, COLAB_LINK.sub(link, text))
        if cells and cells[0].get("cell_type") == "markdown" and badge(link) not in _source(cells[0]):
            _set_source(cells[0], f"{badge(link)}\n\n{_source(cells[0])}")
    if migrate:
        code = [cell for cell in cells if cell.get("cell_type") == "code" and not _is_setup(cell)]
        for cell in code:
            text = _source(cell)
            if INSTALLS_COURSE.search(text):
                elsewhere = "\n".join(_source(other) for other in code if other is not cell)
                _set_source(cell, _without_legacy_install(text, elsewhere))
    setups = [cell for cell in cells if _is_setup(cell)]
    if len(setups) > 1:
        return nb  # which one to keep is a person's choice; check_notebook says so
    source = setup_cell(address)
    if setups:
        cell = setups[0]
        if _source(cell) != source:
            _set_source(cell, source)
        cells.remove(cell)
    else:
        cell = _new_setup_cell(nb, source)
    first_code = next((i for i, c in enumerate(cells) if c.get("cell_type") == "code"), len(cells))
    cells.insert(first_code, cell)
    return nb


# --- files ---------------------------------------------------------------------------------------------


def _dump_ipynb(nb: dict) -> str:
    # the layout nbformat and Jupyter write, so that an unchanged notebook is byte-for-byte the same
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def paired_files(notebook: Path, nb: dict, root: Path) -> list[tuple[Path, str]]:
    """The notebook's jupytext pairs that exist, as (path, jupytext format); none is fine.

    With ``formats`` in the notebook's jupytext metadata, jupytext's own ``paired_paths`` says where the
    pairs are (``py:percent`` beside it, ``notebooks_py///py:percent`` in another folder, ...).
    Otherwise any ``<stem>.py`` under ``root`` that starts with a jupytext header counts.
    """
    formats = nb.get("metadata", {}).get("jupytext", {}).get("formats")
    if formats:
        try:
            from jupytext.paired_paths import paired_paths
        except ImportError:
            raise PublishError(
                f"{notebook}: it is paired with jupytext ({formats}); install jupytext "
                "(pip install -e '.[dev]') so that its pair is rewritten too"
            ) from None
        found = paired_paths(str(notebook), "ipynb", formats)
        return [(Path(p), fmt) for p, fmt in found if not p.endswith(".ipynb") and Path(p).exists()]
    pairs = []
    for candidate in root.rglob(f"{notebook.stem}.*"):
        parts = candidate.relative_to(root).parts
        if candidate.suffix in {".py", ".md"} and not any(p.startswith(".") for p in parts):
            with candidate.open(encoding="utf-8") as file:
                head = file.read(400)
            if "jupytext" in head and "format_name:" in head:
                name = re.search(r"format_name: *(\S+)", head)[1]
                pairs.append((candidate, f"{candidate.suffix[1:]}:{name}"))
    return sorted(pairs)


def _path_in_repo(notebook: Path, root: Path) -> str:
    try:
        return notebook.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return notebook.name


def process(notebook: Path, address: Address, root: Path, write: bool, migrate: bool = False) -> list[str]:
    """Check (``write=False``) or rewrite one notebook and its pairs; the problems left, one line each."""
    try:
        text = notebook.read_text(encoding="utf-8")
        nb = json.loads(text)
    except (OSError, ValueError) as error:
        return [f"{notebook}: cannot read it as a notebook ({error})"]
    where = _path_in_repo(notebook, root)
    files: list[tuple[Path, dict, str | None]] = [(notebook, nb, None)]
    for pair, fmt in paired_files(notebook, nb, root):
        import jupytext  # paired_files made sure it is there

        files.append((pair, jupytext.read(pair, fmt=fmt), fmt))
    problems = []
    for path, content, fmt in files:
        if write:
            new = apply_notebook(content, address, where, migrate)
            if fmt is None:
                if _dump_ipynb(new) != text:
                    path.write_text(_dump_ipynb(new), encoding="utf-8")
            elif new != content:
                import jupytext
                import nbformat

                # to a string first: jupytext.write empties the file before it fails
                path.write_text(jupytext.writes(nbformat.from_dict(new), fmt=fmt), encoding="utf-8")
            content = new
        problems += [f"{path}: {problem}" for problem in check_notebook(content, address, where)]
    return problems


def _linked_path(link: str, root: Path) -> str | None:
    """The repository path a Colab link opens (``.../blob/<ref>/<path>``): the first suffix that exists."""
    parts = link.split("/blob/", 1)[-1].split("/")
    for start in range(1, len(parts)):  # a ref may hold slashes; the path is what exists on disk
        if (root / Path(*parts[start:])).is_file():
            return "/".join(parts[start:])
    return None


def process_document(path: Path, address: Address, root: Path, write: bool) -> list[str]:
    """Check or rewrite the Colab links (the README's table of notebooks) and GitHub Pages links (the
    course's website) in a markdown file."""
    if address.github is None or not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    problems = []

    def current(match: re.Match) -> str:
        linked = _linked_path(match.group(0), root)
        if linked is None:
            problems.append(f"{path}: Colab link {match.group(0)} opens no file of this repository")
            return match.group(0)
        expected = address.badge_link(linked)
        if expected != match.group(0) and not write:
            problems.append(f"{path}: Colab link {match.group(0)} is not {expected}")
        return expected

    new = COLAB_LINK.sub(current, text)
    for found in PAGES_LINK.findall(new):
        if found != address.pages_url and not write:
            problems.append(f"{path}: site link {found} is not {address.pages_url}")
    new = PAGES_LINK.sub(address.pages_url, new)
    if write and new != text:
        path.write_text(new, encoding="utf-8")
    return problems


def find_notebooks(root: Path) -> list[Path]:
    """The course's notebooks: ``notebooks/*.ipynb`` under ``root``."""
    return sorted((root / "notebooks").glob("*.ipynb"))


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", help="set [tool.course] repository: GitHub owner/name, or a git URL")
    parser.add_argument("--ref", help="set [tool.course] ref: the tag to install and to open")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything disagrees")
    parser.add_argument("--migrate", action="store_true", help="also remove the old in-cell pip installs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this checkout)")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb under --root")
    args = parser.parse_args(argv)
    pyproject = args.root / "pyproject.toml"
    try:
        address = read_address(pyproject)
        if args.repo or args.ref:
            if args.check:
                parser.error("--check changes nothing: leave out --repo and --ref")
            address = Address(args.repo or address.repository, args.ref or address.ref)
            if write_address(pyproject, address):
                print(f"{pyproject}: [tool.course] is now {address.repository} at {address.ref}")
        notebooks = args.notebooks or find_notebooks(args.root)
        problems = []
        for notebook in notebooks:
            problems += process(notebook, address, args.root, write=not args.check, migrate=args.migrate)
        if not args.notebooks:  # the README's badges too, when publishing the whole course
            problems += process_document(args.root / "README.md", address, args.root, write=not args.check)
    except PublishError as error:
        print(f"publish: {error}", file=sys.stderr)
        return 2
    if address.github is None:
        print(f"publish: badges unchanged: Colab opens notebooks from GitHub, not {address.repository}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    verb = "agree with" if args.check else "now install"
    print(f"publish: {len(notebooks)} notebooks {verb} {address.pip_spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
