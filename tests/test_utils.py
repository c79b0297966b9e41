import sys
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


CHILD = """
import pathlib, sys, time
print("epoch 1")
flag = pathlib.Path(sys.argv[1])
for _ in range(400):  # wait (up to 20 s) until the parent has seen the line above
    if flag.exists():
        break
    time.sleep(0.05)
else:
    print("the parent never saw epoch 1")
    sys.exit(3)
print("x" + "é" * 5000)  # 2-byte characters across 4 KB reads, one byte out of step
sys.exit(7)
"""


def test_stream_command_shows_each_line_as_it_happens_and_keeps_split_characters(tmp_path, monkeypatch):
    from helpers.utils import stream_command

    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # as in a Jupyter kernel
    flag, seen = tmp_path / "seen", []

    def write(text):
        seen.append(text)
        if "epoch 1\n" in "".join(seen):
            flag.touch()  # the child goes on only once its first line has arrived here

    code = stream_command([sys.executable, "-c", CHILD, str(flag)], write=write)
    output = "".join(seen)
    assert code == 7  # the child's own exit code, after its output
    assert output == "epoch 1\n" + "x" + "é" * 5000 + "\n"
    assert len(seen) > 2  # it came in pieces, not at the end
