"""tools/colab_rehearsal.py's quick parts: the snapshot a notebook installs from, and the environment's key.

The rehearsal itself (a virtual environment, then each notebook executed) is `make colab-rehearsal`.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("colab_rehearsal", ROOT / "tools" / "colab_rehearsal.py")
rehearsal = importlib.util.module_from_spec(spec)
sys.modules["colab_rehearsal"] = rehearsal
spec.loader.exec_module(rehearsal)

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_checkout(root: Path) -> None:
    """A committed course with one notebook, then an uncommitted edit, a new file and an ignored one."""
    (root / "tools").mkdir(parents=True)
    shutil.copy2(ROOT / "tools" / "publish.py", root / "tools" / "publish.py")
    (root / "pyproject.toml").write_text('[tool.course]\nrepository = "a/b"\nref = "v1"\n')
    (root / ".gitignore").write_text("data/\n")
    (root / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01"), nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, root / "notebooks" / "01_demo.ipynb")
    (root / "helpers.py").write_text("VERSION = 'committed'\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "course")
    (root / "helpers.py").write_text("VERSION = 'edited, not committed'\n")
    (root / "new_module.py").write_text("NEW = True\n")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_text("ignored")


def test_snapshot_holds_the_working_tree_and_installs_from_itself(tmp_path):
    checkout, into = tmp_path / "checkout", tmp_path / "snapshot"
    make_checkout(checkout)

    url = rehearsal.snapshot(into, migrate=False, root=checkout)

    assert url == f"git+{into.resolve().as_uri()}@rehearsal"
    assert git(into, "show", "rehearsal:helpers.py") == "VERSION = 'edited, not committed'\n"
    assert git(into, "show", "rehearsal:new_module.py") == "NEW = True\n"
    assert "data/big.bin" not in git(into, "ls-files")
    # the address went through the one setting, and from it into the notebook's setup cell
    assert f'repository = "{into.resolve().as_uri()}"' in git(into, "show", "rehearsal:pyproject.toml")
    nb = nbformat.reads(git(into, "show", "rehearsal:notebooks/01_demo.ipynb"), as_version=4)
    assert nb.cells[1].metadata["tags"] == ["colab-setup"]
    assert f'run_line_magic("pip", "install -q {url}")' in nb.cells[1].source
    assert git(checkout, "status", "--porcelain") == " M helpers.py\n?? new_module.py\n"  # checkout untouched


def test_the_environment_is_keyed_on_its_requirements():
    text = rehearsal.REQUIREMENTS.read_text()
    assert rehearsal.venv_key(text) == rehearsal.venv_key(text)
    other = text.replace("ipywidgets==7.7.1", "ipywidgets==7.7.2")
    assert rehearsal.venv_key(text) != rehearsal.venv_key(other)
    pins = rehearsal.pinned(text)
    assert pins["ipywidgets"].startswith("7.7.")
    assert "jupyterlab" not in pins and "nbval" not in pins and rehearsal.COURSE_DIST not in pins
    assert {"torch", "torchvision", "pandas", "matplotlib", "pillow", "nltk", "ipykernel"} <= set(pins)
