"""Tests for the command line, run as a learner runs it: ``python -m helpers ...`` in a subprocess."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "helpers", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory) -> Path:
    """A 12-image shapes dataset written by the CLI itself (8 train, 2 dev, 2 test)."""
    root = tmp_path_factory.mktemp("cli")
    result = run_cli("data", "make-shapes", "--out", "shapes", "--images", "12", "--seed", "3", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "shapes"


def test_make_shapes_reports_what_it_wrote_then_reuses_it(tmp_path):
    first = run_cli("data", "make-shapes", "--out", "small", "--images", "8", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "wrote small: 8 images (train 6, dev 1, test 1), 40 captions" in first.stdout
    assert len(list((tmp_path / "small" / "Flicker8k_Dataset").glob("*.jpg"))) == 8
    assert "  each scene's truth (background, shapes, layout) in small/scenes.jsonl" in first.stdout
    assert len((tmp_path / "small" / "scenes.jsonl").read_text().splitlines()) == 8

    second = run_cli("data", "make-shapes", "--out", "small", "--images", "8", cwd=tmp_path)
    assert second.returncode == 0
    assert "small: already complete" in second.stdout


def test_stats_json_is_one_object_with_the_counts(shapes_dir):
    result = run_cli("data", "stats", "--data", str(shapes_dir), "--json", cwd=shapes_dir.parent)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # fails if anything else was printed
    assert summary["format"] == "flickr8k"
    assert summary["images"] == 12
    assert summary["captions"] == 60
    assert summary["splits"] == {"train": 8, "dev": 2, "test": 2}
    assert summary["skipped"] == []


def test_stats_human_output_groups_skipped_items_by_reason(shapes_dir, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(shapes_dir), str(broken)], check=True)
    (broken / "Flicker8k_Dataset" / "scene_000000.jpg").unlink()
    (broken / "Flicker8k_Dataset" / "scene_000001.jpg").unlink()
    with (broken / "Flickr8k.token.txt").open("a") as tokens:
        tokens.write("a line without any tab\n")

    result = run_cli("data", "stats", "--data", "broken", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "broken: flickr8k format" in result.stdout
    assert "images         10" in result.stdout
    assert "2 × image file not found in Flicker8k_Dataset/" in result.stdout
    assert "e.g. scene_000000.jpg, scene_000001.jpg" in result.stdout
    assert "1 × no tab between 'name.jpg#k' and the caption" in result.stdout

    summary = json.loads(run_cli("data", "stats", "--data", "broken", "--json", cwd=tmp_path).stdout)
    assert {"item": "scene_000001.jpg", "reason": "image file not found in Flicker8k_Dataset/"} in summary[
        "skipped"
    ]
    assert summary["captions"] == 50


def test_stats_reports_the_vocabulary_size_at_the_threshold_train_uses(shapes_dir):
    summary = json.loads(
        run_cli("data", "stats", "--data", str(shapes_dir), "--json", cwd=shapes_dir.parent).stdout
    )
    assert summary["vocabulary"]["min_freq"] == 1  # the shapes set
    words = summary["vocabulary"]["words"]
    rare = json.loads(
        run_cli(
            "data", "stats", "--data", str(shapes_dir), "--json", "--min-freq", "30", cwd=shapes_dir.parent
        ).stdout
    )
    assert rare["vocabulary"] == {"min_freq": 30, "words": rare["vocabulary"]["words"]}
    assert 4 < rare["vocabulary"]["words"] < words
    text = run_cli("data", "stats", "--data", str(shapes_dir), cwd=shapes_dir.parent).stdout
    assert f"vocabulary {words:>6}  words at min_freq 1" in text


def test_stats_check_images_names_the_broken_ones(shapes_dir, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(shapes_dir), str(broken)], check=True)
    (broken / "Flicker8k_Dataset" / "scene_000003.jpg").write_bytes(b"")
    whole = (broken / "Flicker8k_Dataset" / "scene_000004.jpg").read_bytes()
    (broken / "Flicker8k_Dataset" / "scene_000004.jpg").write_bytes(whole[: len(whole) // 2])

    plain = run_cli("data", "stats", "--data", "broken", cwd=tmp_path)
    assert "images not decoded (add --check-images" in plain.stdout
    assert not (broken / ".cache").exists()
    checked = run_cli("data", "stats", "--data", "broken", "--check-images", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "broken images 2 (every image decoded):" in checked.stdout
    assert "scene_000003.jpg: cannot read image (the file is empty)" in checked.stdout
    assert "scene_000004.jpg: cannot read image (" in checked.stdout
    assert (broken / ".cache" / "image-checks.json").is_file()  # the next train or evaluate reuses it
    summary = json.loads(
        run_cli("data", "stats", "--data", "broken", "--check-images", "--json", cwd=tmp_path).stdout
    )
    assert summary["images_decoded"] is True
    names = [Path(b["item"]).name for b in summary["broken_images"]]
    assert names == ["scene_000003.jpg", "scene_000004.jpg"]


@pytest.mark.parametrize(
    "make_dir, expected",
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: root, "No caption dataset found"),
    ],
    ids=["missing-dir", "dir-without-dataset"],
)
def test_stats_on_an_unreadable_dir_prints_one_error_line_and_exits_2(tmp_path, make_dir, expected):
    (tmp_path / "notes.txt").write_text("not a dataset\n")
    result = run_cli("data", "stats", "--data", str(make_dir(tmp_path)), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_stats_with_no_images_left_exits_1_with_one_line(shapes_dir, tmp_path):
    empty = tmp_path / "empty"
    subprocess.run(["cp", "-r", str(shapes_dir), str(empty)], check=True)
    for image in (empty / "Flicker8k_Dataset").iterdir():
        image.unlink()

    result = run_cli("data", "stats", "--data", "empty", "--json", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout)["images"] == 0
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: empty: no usable images left (12 items skipped; most often: "
        "image file not found in Flicker8k_Dataset/)"
    ]


def test_make_shapes_with_too_few_images_is_a_one_line_error(tmp_path):
    result = run_cli("data", "make-shapes", "--out", "tiny", "--images", "2", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: make_shapes needs at least 3 images (one per split), got 2"
    ]


def test_missing_command_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


def test_run_command_turns_value_and_os_errors_into_one_line(capsys):
    def broken(args: argparse.Namespace) -> int:
        raise FileNotFoundError("weights.pt: no such file\n(check the path)")

    assert cli.run_command(broken, argparse.Namespace()) == 2
    assert capsys.readouterr().err == "error: weights.pt: no such file (check the path)\n"


def test_run_command_keeps_the_traceback_of_real_bugs():
    def buggy(args: argparse.Namespace) -> int:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        cli.run_command(buggy, argparse.Namespace())


def test_make_shapes_on_a_folder_it_did_not_make_is_refused_and_nothing_is_deleted(tmp_path):
    data = tmp_path / "data"
    (data / "flickr8k" / "Flicker8k_Dataset").mkdir(parents=True)
    (data / "README.md").write_text("what is in data/\n")
    (data / "flickr8k" / "Flicker8k_Dataset" / "a.jpg").write_bytes(b"a downloaded photo")
    # forgot "/shapes"
    result = run_cli("data", "make-shapes", "--out", "data", "--images", "3", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data is not empty") and "--force" in lines[0]
    assert (data / "README.md").read_text() == "what is in data/\n"
    assert (data / "flickr8k" / "Flicker8k_Dataset" / "a.jpg").read_bytes() == b"a downloaded photo"
    assert sorted(p.name for p in data.iterdir()) == ["README.md", "flickr8k"]


def test_make_shapes_on_a_file_is_one_error_line_and_the_file_is_kept(tmp_path):
    (tmp_path / "shapes").write_text("a file\n")
    result = run_cli("data", "make-shapes", "--out", "shapes", "--images", "3", "--force", cwd=tmp_path)
    assert result.returncode == 2 and "wrote" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: shapes is a file")
    assert (tmp_path / "shapes").read_text() == "a file\n"


def test_make_shapes_with_three_images_puts_one_in_each_split(tmp_path):
    result = run_cli("data", "make-shapes", "--out", "tiny", "--images", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 images (train 1, dev 1, test 1)" in result.stdout
    summary = json.loads(run_cli("data", "stats", "--data", "tiny", "--json", cwd=tmp_path).stdout)
    assert summary["splits"] == {"train": 1, "dev": 1, "test": 1}


FOLDER_OPTIONS = [  # (command line, {option: folder}): one spelling per concept
    (["data", "make-shapes", "--out", "d"], {"out": "d"}),
    (["data", "stats", "--data", "d"], {"data": "d"}),
    (["data", "download", "flickr8k", "--out", "d"], {"out": "d"}),
    (["train", "--data", "d", "--out", "r"], {"data": "d", "out": "r"}),
    (["caption", "--run", "r", "x.jpg"], {"run": "r"}),
    (["evaluate", "--run", "r", "--data", "d"], {"run": "r", "data": "d"}),
    (["diagrams", "--out", "d"], {"out": "d"}),
]


@pytest.mark.parametrize(("argv", "folders"), FOLDER_OPTIONS, ids=[" ".join(a) for a, _ in FOLDER_OPTIONS])
def test_folders_are_data_run_and_out_in_every_command(argv, folders):
    args = cli.build_parser().parse_args(argv)
    assert {name: str(getattr(args, name)) for name in folders} == folders


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "make-shapes", "--images", "3"], "the following arguments are required: --out"),
        (["data", "stats", "--json"], "the following arguments are required: --data"),
        (["data", "download", "flickr8k"], "the following arguments are required: --out"),
    ],
)
def test_a_missing_folder_is_a_usage_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_names_each_folder_option_dir(capsys):
    for argv in (
        ["data", "download", "--help"],
        ["data", "stats", "--help"],
        ["data", "make-shapes", "--help"],
    ):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(argv)
    shown = capsys.readouterr().out
    assert shown.count("--out DIR") == 4 and shown.count("--data DIR") == 2  # usage line and option line


DEVICE_COMMANDS = {
    "train": ["train", "--data", "shapes", "--out", "run"],
    "caption": ["caption", "--run", "run", "image.jpg"],
    "evaluate": ["evaluate", "--run", "run", "--data", "shapes"],
}


@pytest.mark.parametrize("name", DEVICE_COMMANDS)
def test_a_device_typo_is_a_usage_error_naming_the_choices(tmp_path, name):
    result = run_cli(*DEVICE_COMMANDS[name], "--device", "gpu", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [
        f"python -m helpers {name}: error: argument --device: invalid choice: 'gpu' "
        "(choose from auto, cpu, cuda, cuda:N, mps)"
    ]


@pytest.mark.parametrize("name", DEVICE_COMMANDS)
def test_a_device_this_machine_lacks_is_one_error_line(tmp_path, name):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result = run_cli(*DEVICE_COMMANDS[name], "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: device 'cuda' was asked for, but PyTorch sees no CUDA GPU here"
    ]
    assert list(tmp_path.iterdir()) == []  # nothing was written


def test_train_help_shows_the_defaults_the_code_uses(tmp_path):
    from helpers.config import TrainConfig

    cpu, gpu = TrainConfig.for_device("cpu"), TrainConfig.for_device("cuda", weights="imagenet")
    text = " ".join(run_cli("train", "--help", cwd=tmp_path).stdout.split())
    for flag, key in [
        ("--epochs", "epochs"),
        ("--image-size", "image_size"),
        ("--hidden-size", "hidden_size"),
    ]:
        shown = f"default: {getattr(cpu, key)} on a CPU, {getattr(gpu, key)} on a GPU"
        assert shown in text, (flag, shown)
    assert "default: 12 on a CPU, 15 on a GPU" in text  # what README's "Command line" section says


HELP_OF_EVERY_COMMAND = """
import argparse, contextlib, io, json, sys, time

start = time.perf_counter()
from helpers.cli import build_parser

def commands(parser, words):
    yield words
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, [*words, name])

shown = {}
for words in list(commands(build_parser(), [])):
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        build_parser().parse_args([*words, "--help"])
    shown[" ".join(words)] = out.getvalue()
print(json.dumps({"seconds": time.perf_counter() - start, "torch": "torch" in sys.modules, "help": shown}))
"""


def test_help_of_every_command_imports_no_torch():
    """``--help`` is what a learner types first: it must not wait seconds for torch (timed, not asserted)."""
    done = subprocess.run(
        [sys.executable, "-c", HELP_OF_EVERY_COMMAND], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    print(f"parser built and --help printed for {len(result['help'])} commands in {result['seconds']:.2f} s")
    assert result["torch"] is False
    assert sorted(result["help"]) == [
        *["", "caption", "data", "data download", "data make-shapes", "data stats"],
        *["diagnose", "diagrams", "evaluate", "train"],
    ]
    assert all(text.startswith("usage: python -m helpers") for text in result["help"].values())
    assert "default: 12 on a CPU, 15 on a GPU" in " ".join(result["help"]["train"].split())


def test_device_presets_are_plain_dicts_in_a_module_without_torch():
    code = "import sys, helpers.presets as p; print(type(p.DEVICE_PRESETS).__name__, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["dict", "False"], done.stderr
    from helpers import config, presets

    assert config.DEVICE_PRESETS is presets.DEVICE_PRESETS  # TrainConfig.for_device and --help read one table
    assert presets.DEVICE_PRESETS["cpu"]["epochs"] == config.TrainConfig.for_device("cpu").epochs


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "make-shapes", "--out", "d", "d"], "unrecognized arguments: d"),
        (["data", "stats", "--data", "d", "d", "--json"], "unrecognized arguments: d"),
        (["data", "download", "flickr8k", "--out", "d", "--dest", "d"], "unrecognized arguments: --dest d"),
    ],
    ids=["make-shapes DIR", "stats DIR", "download --dest"],
)
def test_old_folder_spellings_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
