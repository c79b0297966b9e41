"""The notebooks' folder, pairing and nbval set-up: what a learner opens is notebooks only, and a plain
``pytest --nbval notebooks/`` checks them the way ``make nbval`` does."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", REPO / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_notebooks_folder_holds_notebooks_only_each_paired_in_notebooks_py():
    assert len(NOTEBOOKS) >= 7
    others = [p.name for p in (REPO / "notebooks").iterdir()
              if p.suffix != ".ipynb" and p.name != ".ipynb_checkpoints"]
    assert others == []
    assert sorted(p.stem for p in (REPO / "notebooks_py").glob("*.py")) == [p.stem for p in NOTEBOOKS]
    assert 'formats = "notebooks///ipynb,notebooks_py///py:percent"' in (REPO / "jupytext.toml").read_text()


def test_no_cell_carries_an_nbval_comment_or_execution_timestamps():
    for path in NOTEBOOKS:
        for number, cell in enumerate(cells(path)):
            assert "NBVAL_" not in "".join(cell["source"]), (path.name, number)
            assert "execution" not in cell["metadata"], (path.name, number)


def test_stored_outputs_do_not_depend_on_the_network():
    """No cell lets the network choose the weights; every notebook that builds an encoder or trains says
    which weights it uses through ``course_weights()``."""
    for path in NOTEBOOKS:
        code = ["".join(cell["source"]) for cell in cells(path) if cell["cell_type"] == "code"]
        for number, source in enumerate(code):
            assert 'weights="auto"' not in source, (path.name, number)
        if any("EncoderCNN(" in source or "TrainConfig.for_device(" in source for source in code):
            assert any("course_weights()" in source for source in code), path.name


def test_plain_nbval_run_gets_the_sanitize_file_and_the_current_environment():
    conftest = root_conftest()
    option = SimpleNamespace(nbval=True, nbval_lax=False, nbval_sanitize_with=None, nbval_kernel_name=None,
                             nbval_current_env=False)
    conftest.pytest_configure(SimpleNamespace(option=option))
    assert Path(option.nbval_sanitize_with) == REPO / "tests" / "nbval_sanitize.cfg"
    assert Path(option.nbval_sanitize_with).is_file() and option.nbval_current_env


def test_the_unit_tests_and_explicit_options_are_left_alone():
    conftest = root_conftest()
    plain = SimpleNamespace(nbval=False, nbval_lax=False, nbval_sanitize_with=None, nbval_kernel_name=None,
                            nbval_current_env=False)
    conftest.pytest_configure(SimpleNamespace(option=plain))
    assert plain.nbval_sanitize_with is None and not plain.nbval_current_env
    chosen = SimpleNamespace(nbval=True, nbval_lax=False, nbval_sanitize_with="mine.cfg",
                             nbval_kernel_name="py3", nbval_current_env=False)
    conftest.pytest_configure(SimpleNamespace(option=chosen))
    assert chosen.nbval_sanitize_with == "mine.cfg" and not chosen.nbval_current_env


def test_a_quiet_start_and_a_gpu_for_the_notebooks_that_train():
    for path in NOTEBOOKS:
        notebook = json.loads(path.read_text())
        code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
        assert len("".join(code[0]["source"]).splitlines()) <= 3, path.name  # 3 lines of setup at most
        assert "colab-setup" in code[0]["metadata"].get("tags", []), path.name
        trains = path.name.startswith(("05_", "07_"))
        assert (notebook["metadata"].get("accelerator") == "GPU") == trains, path.name
        if trains:
            assert notebook["metadata"]["colab"]["gpuType"] == "T4", path.name


MAX_CELL_LINES = 25  # a code cell of the learner's path; solutions are exempt
MAX_CLASS_CELL_LINES = 40  # a cell that defines a class: a class cannot be split across cells


def long_cells(notebook: dict) -> list[str]:
    """The code cells of the learner's path over their limit, as 'cell N: L lines'."""
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code" or "solution" in cell["metadata"].get("tags", []):
            continue
        lines = "".join(cell["source"]).strip("\n").splitlines()
        limit = MAX_CLASS_CELL_LINES if any(line.startswith("class ") for line in lines) else MAX_CELL_LINES
        if len(lines) > limit:
            found.append(f"cell {index}: {len(lines)} lines")
    return found


def test_no_code_cell_of_the_learners_path_is_longer_than_25_lines_but_a_class():
    for path in NOTEBOOKS:
        assert long_cells(json.loads(path.read_text())) == [], path.name


def test_a_planted_long_cell_is_found_and_a_solution_is_exempt():
    def code(lines: int, tags: list[str] | None = None) -> dict:
        return {"cell_type": "code", "metadata": {"tags": tags or []}, "source": "x = 1\n" * lines}

    notebook = {"cells": [code(25), code(26), code(60, ["solution"])]}
    assert long_cells(notebook) == ["cell 1: 26 lines"]
    with_class = {"cells": [{**code(30), "source": "class A:\n" + "    x = 1\n" * 29}]}
    assert long_cells(with_class) == []
