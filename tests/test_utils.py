from pathlib import Path

from helpers.utils import course_root

REPO = Path(__file__).resolve().parent.parent


def test_course_root_is_found_from_any_folder_inside_the_repository(monkeypatch):
    monkeypatch.chdir(REPO / "notebooks")
    assert course_root() == REPO
    assert course_root(REPO / "helpers" / "__pycache__") == REPO  # need not exist yet


def test_course_root_outside_a_checkout_is_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "helpers").mkdir()  # a folder called helpers alone is not the course
    monkeypatch.chdir(tmp_path)
    assert course_root() == tmp_path
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert course_root(tmp_path / "deeper") == tmp_path
