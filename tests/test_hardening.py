"""What happens when things go wrong: broken inputs, interrupted training, untrusted checkpoints.

Each case here is listed in README's "When things go wrong" or "What each command may change on disk" table.
"""

import errno
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from shared import TINY_CONFIG as TINY

from helpers.config import TrainConfig
from helpers.prepare import prepare_data
from helpers.runs import CHECKPOINT, load_checkpoint, load_run
from helpers.scenes import IMAGE_DIR, make_shapes
from helpers.training import fit
from helpers.utils import atomic_save


def quiet(_):
    pass


@pytest.fixture()
def shapes(fresh_shapes):
    """Each test here breaks or trains on a set of its own (conftest's ``shapes`` is one per module)."""
    return fresh_shapes


def test_broken_images_in_a_dataset_are_reported_and_skipped_before_training(shapes, tmp_path):
    (shapes / IMAGE_DIR / "scene_000000.jpg").write_bytes(b"")  # zero bytes
    (shapes / IMAGE_DIR / "scene_000001.jpg").write_text("this is text")
    data = (shapes / IMAGE_DIR / "scene_000002.jpg").read_bytes()
    (shapes / IMAGE_DIR / "scene_000002.jpg").write_bytes(data[: len(data) // 3])  # truncated
    messages = []
    prepared = prepare_data(shapes, log=messages.append)
    assert "skipped 3 item(s):" in messages[0]
    assert {s.item.rsplit("/", 1)[-1] for s in prepared.skipped} == {
        "scene_000000.jpg",
        "scene_000001.jpg",
        "scene_000002.jpg",
    }
    assert prepared.table["image"].nunique() == 21 and len(prepared.table) == 21 * 5
    result = fit(shapes, tmp_path / "run", TrainConfig(**TINY), device="cpu", log=quiet)
    assert len(result.history) == 1  # the epoch ran to the end


@pytest.mark.parametrize("mode, suffix", [("CMYK", ".jpg"), ("P", ".gif"), ("L", ".png"), ("RGBA", ".png")])
def test_readable_modes_on_disk_are_captioned_as_rgb(tmp_path, mode, suffix):
    from helpers.data import load_image

    path = tmp_path / f"image{suffix}"
    Image.fromarray(np.full((8, 8, 3), (200, 30, 30), dtype=np.uint8)).convert(mode).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (8, 8)
    red, green, blue = (int(v) for v in np.asarray(image)[4, 4])
    if mode == "L":
        assert red == green == blue == 81  # the luminance of that red
    else:
        assert red > 150 and green < 80 and blue < 80


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    atomic_save({"model": {}, "vocab": ["<pad>"], "config": {}, "epoch": 1}, path)
    before = path.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpo")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_save({"model": {}, "vocab": [], "config": {}, "epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # no temporary file left behind


def test_a_checkpoint_carrying_pickled_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model": Payload(), "vocab": [], "config": {}, "epoch": 1}, handle)
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_checkpoint_from_another_architecture_gets_a_clear_error(shapes, tmp_path):
    fit(shapes, tmp_path / "run", TrainConfig(**TINY), device="cpu", log=quiet)
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    state["config"]["hidden_size"] = 32  # the weights are for 16
    atomic_save(state, tmp_path / "run" / CHECKPOINT)
    with pytest.raises(ValueError, match="does not fit the model"):
        load_run(tmp_path / "run", checkpoint="last")
    state["config"]["hidden_size"] = 16
    state["vocab"] = {"itos": state["vocab"]["itos"] + ["extra"]}
    atomic_save(state, tmp_path / "run" / CHECKPOINT)
    with pytest.raises(ValueError, match="words"):
        load_run(tmp_path / "run", checkpoint="last")


def test_training_killed_mid_epoch_resumes_from_the_last_checkpoint(tmp_path):
    data = make_shapes(tmp_path / "shapes", images=160, seed=0)
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "helpers",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--epochs",
        "3",
        "--image-size",
        "32",
        "--hidden-size",
        "16",
        "--batch-size",
        "8",
        "--weights",
        "random",
    ]
    env = {**os.environ, "CAPTION_PROGRESS": "0"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not (out / CHECKPOINT).exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert (out / CHECKPOINT).exists(), "no checkpoint appeared"
    time.sleep(0.3)  # well into epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    state = load_checkpoint(out / CHECKPOINT)  # intact, whatever moment the kill came
    assert 1 <= state["epoch"] < 3
    done = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"Resuming after epoch {state['epoch']}" in done.stdout
    assert load_checkpoint(out / CHECKPOINT)["epoch"] == 3
    assert [row["epoch"] for row in load_checkpoint(out / CHECKPOINT)["history"]] == [1, 2, 3]


def test_fit_resumed_with_more_epochs_follows_the_schedule_of_the_longer_run(shapes, tmp_path):
    fit(shapes, tmp_path / "short", TrainConfig(**TINY), device="cpu", log=quiet)
    messages = []
    longer = TrainConfig(**{**TINY, "epochs": 2})
    resumed = fit(shapes, tmp_path / "short", longer, device="cpu", resume=True, log=messages.append)
    straight = fit(shapes, tmp_path / "long", longer, device="cpu", log=quiet)
    assert list(resumed.history["epoch"]) == [1, 2]
    assert any("learning rate follows the one-cycle schedule of a 2-epoch run" in m for m in messages)
    # from epoch 2 on, each step gets the rate an uninterrupted 2-epoch run gives it
    assert resumed.history["lr"].iloc[1] == pytest.approx(straight.history["lr"].iloc[1], rel=1e-9)
    assert resumed.history["lr"].iloc[0] != pytest.approx(straight.history["lr"].iloc[0])


def test_fit_replaces_a_run_with_a_line_saying_so_and_refuses_when_told_not_to(shapes, tmp_path):
    fit(shapes, tmp_path / "run", TrainConfig(**TINY), device="cpu", log=quiet)
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    with pytest.raises(ValueError, match="already holds a run .*--overwrite"):
        fit(shapes, tmp_path / "run", TrainConfig(**TINY), device="cpu", overwrite=False, log=quiet)
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before
    messages = []
    fit(
        shapes, tmp_path / "run", TrainConfig(**{**TINY, "hidden_size": 8}), device="cpu", log=messages.append
    )
    assert messages[0] == (
        f"Replacing the run in {tmp_path / 'run'} (trained to epoch 1 of 1): "
        "its files are rewritten after epoch 1."
    )
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT)["config"]["hidden_size"] == 8


@pytest.mark.parametrize("name", ["config.json", "history.csv", CHECKPOINT])
def test_fit_never_overwrites_files_it_did_not_write(shapes, tmp_path, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("my own file\n")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="will not overwrite"):
            fit(shapes, out, TrainConfig(**TINY), device="cpu", overwrite=overwrite, log=quiet)
    assert [p.name for p in out.iterdir()] == [name]
    assert (out / name).read_text() == "my own file\n"
