import sys
from pathlib import Path

import pytest

from helpers.utils import course_root, course_weights

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


def test_course_weights_are_random_unless_the_environment_asks_for_imagenet(monkeypatch):
    monkeypatch.delenv("COURSE_WEIGHTS", raising=False)
    assert course_weights() == "random"
    monkeypatch.setenv("COURSE_WEIGHTS", "")
    assert course_weights() == "random"
    monkeypatch.setenv("COURSE_WEIGHTS", " ImageNet ")
    assert course_weights() == "imagenet"
    monkeypatch.setenv("COURSE_WEIGHTS", "random")
    assert course_weights() == "random"


def test_course_weights_never_look_at_torchs_cache_or_the_network(tmp_path, monkeypatch):
    """"auto" would pick ImageNet here (the weights file is in the cache); the course's choice does not."""
    from torchvision.models import ResNet50_Weights

    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / ResNet50_Weights.IMAGENET1K_V2.url.rsplit("/", 1)[-1]).write_bytes(b"present")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("COURSE_WEIGHTS", raising=False)
    from helpers.models import imagenet_weights_cached

    assert imagenet_weights_cached() is not None
    assert course_weights() == "random"


@pytest.mark.parametrize("value", ["auto", "pretrained", "none"])
def test_course_weights_refuse_anything_else_naming_the_choices(monkeypatch, value):
    monkeypatch.setenv("COURSE_WEIGHTS", value)
    expected = rf"COURSE_WEIGHTS must be one of \('random', 'imagenet'\), got '{value}'"
    with pytest.raises(ValueError, match=expected):
        course_weights()


def test_run_time_says_seconds_under_two_minutes_and_minutes_after():
    from helpers.utils import format_run_time

    assert format_run_time(0.4) == "1 s"
    assert format_run_time(24.6) == "25 s"
    assert format_run_time(119.4) == "119 s"
    assert format_run_time(125) == "2.1 min"
    assert format_run_time(431) == "7.2 min"


def test_run_time_counts_from_the_first_import_of_the_helpers(monkeypatch):
    import helpers.utils as utils

    monkeypatch.setattr(utils.time, "monotonic", lambda: utils.STARTED + 42.2)
    assert utils.run_time() == "42 s"
