"""tools/publish.py: one address in pyproject.toml, the same in every badge and every setup cell.

The first test checks this repository's own notebooks (and their jupytext pairs); the others check the
tool on tiny notebooks made here, and run the setup cell in a real IPython shell, as Colab would.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("publish", ROOT / "tools" / "publish.py")
publish = importlib.util.module_from_spec(spec)
sys.modules["publish"] = publish  # dataclasses look their module up by name
spec.loader.exec_module(publish)

PYPROJECT = """\
[project]
name = "x"

[tool.course]
# a comment that must survive
repository = "captioning-course/image-captioning-cnn-lstm"
ref = "v0.1.0"

[tool.other]
ref = "untouched"
"""
LEGACY = """\
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "git+https://github.com/captioning-course/image-captioning-cnn-lstm"],
        check=True,
    )

import math"""
OLD_BADGE = (
    "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
    "(https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/main/"
    "notebooks/01_demo.ipynb)"
)


def make_course(root: Path, first_code: str = LEGACY, formats: str | None = None) -> Path:
    """A repository with pyproject.toml and one notebook in the old form (stale badge, in-cell install)."""
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"{OLD_BADGE}\n\n# 01 · Demo"),
        nbformat.v4.new_code_cell(first_code),
        nbformat.v4.new_code_cell("print(math.pi, subprocess.PIPE)"),
    ]
    if formats:
        nb.metadata["jupytext"] = {"formats": formats}
    path = root / "notebooks" / "01_demo.ipynb"
    nbformat.write(nb, path)
    return path


def run(root: Path, *args: str) -> int:
    return publish.main(["--root", str(root), *args])


def test_this_repository_agrees_with_its_setting():
    address = publish.read_address(ROOT / "pyproject.toml")
    notebooks = publish.find_notebooks(ROOT)
    assert notebooks, "no notebooks found under notebooks/"
    problems = [p for nb in notebooks for p in publish.process(nb, address, ROOT, write=False)]
    problems += publish.process_document(ROOT / "README.md", address, ROOT, write=False)
    assert problems == [], "run `make publish` (tools/publish.py):\n" + "\n".join(problems)


def test_the_setting_is_read_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    address = publish.read_address(tmp_path / "pyproject.toml")
    assert address == publish.Address("captioning-course/image-captioning-cnn-lstm", "v0.1.0")
    assert address.pip_spec == "git+https://github.com/captioning-course/image-captioning-cnn-lstm@v0.1.0"
    assert address.badge_link("notebooks/01_demo.ipynb") == (
        "https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/"
        "notebooks/01_demo.ipynb"
    )


def test_any_git_url_is_an_address_but_only_github_gets_a_badge():
    local = publish.Address("file:///tmp/course", "abc123")
    assert local.pip_spec == "git+file:///tmp/course@abc123"
    assert local.badge_link("notebooks/01_demo.ipynb") is None
    github = publish.Address("https://github.com/you/fork.git", "v2")
    assert github.pip_spec == "git+https://github.com/you/fork@v2"
    assert github.badge_link("n.ipynb") == "https://colab.research.google.com/github/you/fork/blob/v2/n.ipynb"


@pytest.mark.parametrize(
    ("repository", "ref"),
    [("not a repo", "v1"), ("you/fork", "v1 --upgrade torch"), ("you/fork\"", "v1"), ("you/fork", "")],
)
def test_bad_addresses_are_refused(repository, ref):
    with pytest.raises(publish.PublishError):
        publish.Address(repository, ref)


def test_the_setup_cell_is_three_lines_that_install_the_fixed_ref():
    source = publish.setup_cell(publish.Address("you/fork", "v2.0"))
    lines = source.splitlines()
    assert len(lines) <= 3
    assert lines[-1].startswith('    get_ipython().run_line_magic("pip", "install -q git+https://github.com/you/fork@v2.0")')


def test_publish_rewrites_setting_badge_setup_cell_and_pair(tmp_path):
    notebook = make_course(tmp_path, formats="notebooks///ipynb,notebooks_py///py:percent")
    import jupytext

    (tmp_path / "notebooks_py").mkdir()
    pair = tmp_path / "notebooks_py" / "01_demo.py"
    jupytext.write(nbformat.read(notebook, as_version=4), pair, fmt="py:percent")
    assert run(tmp_path, "--check") == 1

    assert run(tmp_path, "--repo", "you/fork", "--ref", "v2.0", "--migrate") == 0

    assert (tmp_path / "pyproject.toml").read_text() == PYPROJECT.replace(
        "captioning-course/image-captioning-cnn-lstm", "you/fork"
    ).replace('ref = "v0.1.0"', 'ref = "v2.0"')
    expected = publish.setup_cell(publish.Address("you/fork", "v2.0"))
    link = "https://colab.research.google.com/github/you/fork/blob/v2.0/notebooks/01_demo.ipynb"
    for nb in (
        nbformat.read(notebook, as_version=4),
        jupytext.read(pair),
    ):
        assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code"]
        assert nb.cells[0].source.startswith(publish.badge(link))
        assert nb.cells[1].source == expected
        assert nb.cells[1].metadata["tags"] == ["colab-setup"]
        # the old install is gone; subprocess stays imported because a later cell uses it
        assert nb.cells[2].source == "import subprocess\n\nimport math"
    assert run(tmp_path, "--check") == 0


def test_publish_rewrites_the_readme_badges_and_names_a_dead_one(tmp_path, capsys):
    make_course(tmp_path, first_code="import math")
    readme = tmp_path / "README.md"
    dead = OLD_BADGE.replace("01_demo", "09_gone")
    readme.write_text(f"| 01 | {OLD_BADGE} |\n| 09 | {dead} |\n")
    assert run(tmp_path, "--repo", "you/fork", "--ref", "v2") == 1
    text = readme.read_text()
    assert "(https://colab.research.google.com/github/you/fork/blob/v2/notebooks/01_demo.ipynb)" in text
    assert "blob/main/notebooks/09_gone.ipynb" in text  # left as it was, and named
    assert "09_gone.ipynb opens no file of this repository" in capsys.readouterr().err
    readme.write_text(text.replace(f"| 09 | {dead} |\n", ""))
    assert run(tmp_path, "--check") == 0
    readme.write_text(text.replace("blob/v2/notebooks/01", "blob/main/notebooks/01"))
    assert run(tmp_path, "--check") == 1


def test_publish_twice_changes_nothing_the_second_time(tmp_path):
    notebook = make_course(tmp_path)
    assert run(tmp_path, "--migrate") == 0
    before = notebook.read_bytes()
    assert run(tmp_path) == 0
    assert notebook.read_bytes() == before


def test_check_names_each_disagreement(tmp_path, capsys):
    notebook = make_course(tmp_path)
    assert run(tmp_path, "--migrate") == 0
    nb = json.loads(notebook.read_text())
    nb["cells"][1]["source"] = [line.replace("v0.1.0", "main") for line in nb["cells"][1]["source"]]
    nb["cells"][3]["source"] = ["%pip install git+https://github.com/other/repo\n"]
    notebook.write_text(json.dumps(nb))
    capsys.readouterr()

    assert run(tmp_path, "--check") == 1
    err = capsys.readouterr().err
    assert "cell 1 (tagged 'colab-setup') differs" in err
    assert "cell 3 installs the course by itself" in err
    assert str(notebook) in err


def test_a_stale_badge_and_a_missing_setup_cell_fail_the_check(tmp_path, capsys):
    make_course(tmp_path, first_code="import math\n")
    assert run(tmp_path, "--check") == 1
    err = capsys.readouterr().err
    assert "Colab link https://colab.research.google.com/github/captioning-course/" in err
    assert "blob/main/notebooks/01_demo.ipynb is not" in err
    assert "no code cell is tagged 'colab-setup'" in err


def test_without_migrate_the_old_install_is_reported_not_removed(tmp_path, capsys):
    notebook = make_course(tmp_path)
    assert run(tmp_path) == 1
    assert "installs the course by itself" in capsys.readouterr().err
    assert "subprocess.run(" in nbformat.read(notebook, as_version=4).cells[2].source


def test_a_missing_setting_is_one_clear_line(tmp_path, capsys):
    make_course(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert run(tmp_path, "--check") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pyproject.toml" in err and "[tool.course]" in err


def ipython_shell(monkeypatch, colab: bool, pip_exit: int):
    """A real IPython shell whose %pip records its command line and exits with ``pip_exit``."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell()
    commands = []

    def system(cmd):
        commands.append(cmd)
        shell.user_ns["_exit_code"] = pip_exit

    monkeypatch.setattr(shell, "system", system)
    enabled = []
    if colab:
        google = ModuleType("google")
        google.colab = ModuleType("google.colab")
        google.colab.output = ModuleType("google.colab.output")
        google.colab.output.enable_custom_widget_manager = lambda: enabled.append(True)
        for name, module in (("google", google), ("google.colab", google.colab)):
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setitem(sys.modules, "google.colab.output", google.colab.output)
    return shell, commands, enabled


def test_the_setup_cell_does_nothing_outside_colab(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    shell, commands, _ = ipython_shell(monkeypatch, colab=False, pip_exit=0)
    result = shell.run_cell(publish.setup_cell(publish.Address("you/fork", "v2")))
    assert result.success and commands == []
    assert capsys.readouterr().out == ""


def test_on_colab_the_setup_cell_installs_the_course_without_upgrading_what_colab_has(monkeypatch):
    shell, commands, _ = ipython_shell(monkeypatch, colab=True, pip_exit=0)
    result = shell.run_cell(publish.setup_cell(publish.Address("you/fork", "v2")))
    assert result.success
    assert len(commands) == 1 and commands[0].endswith("-m pip install -q git+https://github.com/you/fork@v2")
    assert "-U" not in commands[0].split() and "--upgrade" not in commands[0]  # Colab's torch stays


def test_publish_rewrites_the_readme_site_link_to_the_forks_github_pages(tmp_path):
    make_course(tmp_path, first_code="import math")
    readme = tmp_path / "README.md"
    stale = "Read it online: [the course's site](https://old-owner.github.io/old-name/).\n"
    readme.write_text(stale)
    assert run(tmp_path, "--repo", "You/fork", "--ref", "v2") == 0
    assert readme.read_text() == "Read it online: [the course's site](https://you.github.io/fork/).\n"
    assert run(tmp_path, "--check") == 0
    readme.write_text(stale)
    assert run(tmp_path, "--check") == 1
