"""Every writer that promises an atomic write: a failure halfway leaves the previous file (or none), whole.

Each test makes the writer's own serialiser write part of its bytes and then fail, as a full disk or a
kill would: a writer that wrote straight to its destination would leave those bytes there.
(``download`` keeps its bytes in ``.part`` until they are checked: tests/test_download.py; make_shapes'
replacement of an existing set: tests/test_scenes.py.)
"""

import errno
import json

import pytest
import torch

from helpers import data, features, runs, scenes
from helpers.config import TrainConfig
from helpers.runs import CHECKPOINT, load_checkpoint, save_run
from helpers.training import make_optimizer
from helpers.utils import atomic_save
from helpers.vocabulary import Vocabulary

TINY = dict(embed_size=8, hidden_size=16, image_size=32, weights="random")


def half_written_torch_save(obj, f, *args, **kwargs):
    with open(f, "wb") as handle:
        handle.write(b"half a fi")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_save_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    atomic_save({"epoch": 1}, path)
    monkeypatch.setattr(torch, "save", half_written_torch_save)
    with pytest.raises(OSError, match="No space"):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_save_run_writes_the_checkpoint_atomically(tmp_path, monkeypatch):
    torch.manual_seed(0)
    config, vocab = TrainConfig(**TINY), Vocabulary(["a", "red", "circle"])
    model = runs.build_model(config, len(vocab))
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch=2)
    first = [{"epoch": 1, "dev_bleu4": 0.1}]
    save_run(tmp_path, model, optimizer, scheduler, 1, vocab, config, first, "random")
    monkeypatch.setattr(torch, "save", half_written_torch_save)
    history = [{"epoch": 1, "dev_bleu4": 0.1}, {"epoch": 2, "dev_bleu4": 0.2}]
    with pytest.raises(OSError, match="No space"):
        save_run(tmp_path, model, optimizer, scheduler, 2, vocab, config, history, "random", best=True)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / CHECKPOINT)["epoch"] == 1  # the last complete epoch, readable
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_feature_cache_is_never_left_half_written(tmp_path, monkeypatch):
    monkeypatch.setattr(features, "extract_features", lambda *args, **kwargs: torch.zeros(2, 2048))
    monkeypatch.setattr(torch, "save", half_written_torch_save)
    images = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for image in images:
        image.write_bytes(b"pixels")
    model = runs.build_model(TrainConfig(**TINY), vocab_size=5)
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="No space"):
        features.cached_features(model, [str(p) for p in images], 32, "cpu", cache, log=lambda _: None)
    assert list(cache.iterdir()) == []


def test_the_image_checks_file_is_never_left_half_written(tmp_path, monkeypatch):
    cache = tmp_path / data.IMAGE_CHECKS_FILE
    assert data._write_checks(cache, {"a.jpg": [1, 2, None]}) is None
    before = cache.read_text(encoding="utf-8")
    real = data.Path.write_text

    def half_written_text(path, text, *args, **kwargs):
        real(path, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data.Path, "write_text", half_written_text)
    reason = data._write_checks(cache, {"b.jpg": [3, 4, "truncated"]})
    monkeypatch.undo()
    assert reason is not None and str(cache) in reason
    assert cache.read_text(encoding="utf-8") == before
    assert json.loads(before)["images"] == {"a.jpg": [1, 2, None]}
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]


def test_make_shapes_interrupted_while_drawing_leaves_no_dataset_behind(tmp_path, monkeypatch):
    drawn = []
    real = scenes.render

    def killed_at_the_third_image(*args, **kwargs):
        if len(drawn) == 2:
            raise KeyboardInterrupt
        drawn.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(scenes, "render", killed_at_the_third_image)
    with pytest.raises(KeyboardInterrupt):
        scenes.make_shapes(tmp_path / "shapes", images=5, seed=0)
    assert list(tmp_path.iterdir()) == []  # neither the set nor its staging folder
