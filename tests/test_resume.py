"""Resuming a run (issue #24): the schedule, the random state, best.pt; and the dataset's vocabulary
threshold."""

import random

import numpy as np
import pytest
import torch
from shared import TINY_CONFIG as TINY
from shared import copy_shapes

from helpers import runs, training
from helpers.config import TrainConfig
from helpers.prepare import prepare_data
from helpers.runs import BEST_CHECKPOINT, CHECKPOINT, load_checkpoint, load_run, save_run
from helpers.scenes import MARKER
from helpers.training import fit, make_optimizer
from helpers.vocabulary import Vocabulary


def quiet(_: str) -> None:
    pass


def stop_after(epoch: int, epochs: int):
    """A ``log`` that interrupts ``fit`` once the checkpoint of ``epoch`` is on disk."""

    def log(message: str) -> None:
        if message.startswith(f"epoch {epoch}/{epochs}"):
            raise KeyboardInterrupt

    return log


def assert_schedule_ends_with_the_run(run_dir, config: TrainConfig) -> None:
    """The saved schedule stepped once per batch and still had room: it was built for the steps taken."""
    scheduler = load_checkpoint(run_dir / CHECKPOINT)["scheduler"]
    assert scheduler["last_epoch"] <= scheduler["total_steps"] <= scheduler["last_epoch"] + config.epochs
    assert load_run(run_dir).config.epochs == config.epochs


@pytest.mark.slow
def test_resume_on_a_grown_training_set_rebuilds_the_schedule_for_the_steps_left(drawn_shapes, tmp_path):
    small = copy_shapes(drawn_shapes(24), tmp_path / "small")  # 18 train images: 6 batches of 16 captions
    grown = copy_shapes(drawn_shapes(60), tmp_path / "grown")  # about 2.5 times as many batches
    config = TrainConfig(**{**TINY, "epochs": 3})
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(small, run, config, device="cpu", log=stop_after(1, 3))
    messages = []
    resumed = fit(grown, run, config, device="cpu", resume=True, log=messages.append)
    assert list(resumed.history["epoch"]) == [1, 2, 3]
    rebuilt = [m for m in messages if "schedule is rebuilt" in m]
    assert len(rebuilt) == 1 and "took 6 steps in 1 epoch" in rebuilt[0]
    assert "training captions 90 → " in rebuilt[0]
    assert_schedule_ends_with_the_run(run, config)


@pytest.mark.slow
def test_resume_of_a_two_process_run_in_one_process_rebuilds_the_schedule(shapes, tmp_path, monkeypatch):
    """Rank 0 of 2, simulated in one process (the process group calls become no-ops), resumed alone."""
    config = TrainConfig(**{**TINY, "epochs": 3})
    run = tmp_path / "run"
    with monkeypatch.context() as two:
        two.setattr(training, "distributed_context", lambda device, *timeout: (0, 2, device))
        two.setattr(training, "DistributedDataParallel", lambda module, **_: module)
        two.setattr(training.dist, "barrier", lambda: None)
        two.setattr(training.dist, "all_reduce", lambda tensor: None)
        with pytest.raises(KeyboardInterrupt):
            fit(shapes, run, config, device="cpu", cache_dir=tmp_path, log=stop_after(1, 3))
    assert load_checkpoint(run / CHECKPOINT)["scheduler"]["last_epoch"] == 3  # half of 90 captions, by 16
    messages = []
    resumed = fit(shapes, run, config, device="cpu", cache_dir=tmp_path, resume=True, log=messages.append)
    assert list(resumed.history["epoch"]) == [1, 2, 3]
    assert any("took 3 steps in 1 epoch" in m and "processes 2 → 1" in m for m in messages), messages
    assert_schedule_ends_with_the_run(run, config)


def test_random_state_round_trips_python_numpy_and_torch_through_a_checkpoint(tmp_path):
    from helpers.utils import random_state, set_random_state

    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    config, vocab = TrainConfig(**TINY), Vocabulary(["a", "red", "circle"])
    model = runs.build_model(config, len(vocab))
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch=2)
    history = [{"epoch": 1, "dev_bleu4": 0.0}]
    save_run(tmp_path, model, optimizer, scheduler, 1, vocab, config, history, "random")
    expected = (random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3))
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    set_random_state(load_checkpoint(tmp_path / CHECKPOINT)["rng"])  # read back with weights_only=True
    drawn = (random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3))
    assert drawn[:3] == expected[:3] and torch.equal(drawn[3], expected[3])
    assert set(random_state()) >= {"python", "numpy", "torch"}


@pytest.fixture
def deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.slow
def test_a_resumed_run_with_dropout_gives_the_losses_of_an_uninterrupted_one(shapes, tmp_path, deterministic):
    config = TrainConfig(**{**TINY, "epochs": 4, "dropout": 0.3})
    straight = fit(shapes, tmp_path / "straight", config, device="cpu", cache_dir=tmp_path / "a", log=quiet)
    with pytest.raises(KeyboardInterrupt):
        fit(shapes, tmp_path / "cut", config, device="cpu", cache_dir=tmp_path / "b", log=stop_after(2, 4))
    resumed = fit(
        shapes, tmp_path / "cut", config, device="cpu", cache_dir=tmp_path / "b", resume=True, log=quiet
    )
    assert resumed.history["train_loss"].tolist() == straight.history["train_loss"].tolist()


def _epoch_run(tmp_path, monkeypatch):
    """Epoch 1 saved as best; epoch 2 (other weights) also best, but its best.pt write fails."""
    torch.manual_seed(0)
    config, vocab = TrainConfig(**TINY), Vocabulary(["a", "red", "circle"])
    model = runs.build_model(config, len(vocab))
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch=2)
    history = [{"epoch": 1, "dev_bleu4": 0.1}]
    save_run(tmp_path, model, optimizer, scheduler, 1, vocab, config, history, "random", best=True)
    with torch.no_grad():
        model.decoder.linear.weight.add_(1.0)
    history = [*history, {"epoch": 2, "dev_bleu4": 0.3}]
    real = runs.atomic_save

    def killed_at_best(obj, path):
        if path.name == BEST_CHECKPOINT:
            raise KeyboardInterrupt  # killed after checkpoint.pt, before best.pt
        real(obj, path)

    monkeypatch.setattr(runs, "atomic_save", killed_at_best)
    with pytest.raises(KeyboardInterrupt):
        save_run(tmp_path, model, optimizer, scheduler, 2, vocab, config, history, "random", best=True)
    monkeypatch.undo()
    return model


def test_a_kill_between_checkpoint_and_best_still_loads_the_best_epochs_weights(tmp_path, monkeypatch):
    model = _epoch_run(tmp_path, monkeypatch)
    best = load_run(tmp_path, checkpoint="best").model
    key = "decoder.linear.weight"
    assert torch.equal(best.state_dict()[key], model.state_dict()[key])  # epoch 2's, as its history says


@pytest.mark.slow
def test_a_kill_between_checkpoint_and_best_is_repaired_when_the_run_resumes(shapes, tmp_path, monkeypatch):
    scores = iter([0.2, 0.5, 0.3, 0.1])  # epoch 2 is the best
    real_bleu, real_save = training.evaluate_bleu, runs.atomic_save

    def scripted(*args, **kwargs):
        result, hypotheses = real_bleu(*args, **kwargs)
        return {**result, "bleu4": next(scores)}, hypotheses

    def killed_at_second_best(obj, path):
        if path.name == BEST_CHECKPOINT and obj["epoch"] == 2:
            raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(training, "evaluate_bleu", scripted)
    monkeypatch.setattr(runs, "atomic_save", killed_at_second_best)
    config = TrainConfig(**{**TINY, "epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        fit(shapes, tmp_path / "run", config, device="cpu", log=quiet)
    monkeypatch.setattr(runs, "atomic_save", real_save)
    messages = []
    fit(shapes, tmp_path / "run", config, device="cpu", resume=True, log=messages.append)
    best = load_checkpoint(tmp_path / "run" / BEST_CHECKPOINT)
    assert best["epoch"] == 2 and [row["epoch"] for row in best["history"]] == [1, 2]
    assert any(BEST_CHECKPOINT in m and "epoch 2" in m for m in messages), messages


def test_min_freq_defaults_to_the_datasets_own_threshold():
    assert TrainConfig().min_freq is None
    assert TrainConfig.for_device("cpu").min_freq is None
    assert TrainConfig.from_dict({"min_freq": None}).min_freq is None
    with pytest.raises(ValueError, match="min_freq must be 1 or more"):
        TrainConfig.from_dict({"min_freq": 0})


@pytest.mark.slow
def test_fit_with_a_for_device_config_uses_min_freq_5_on_real_data(fresh_shapes, tmp_path):
    (fresh_shapes / MARKER).unlink()  # the same captions, now an ordinary Flickr8k-format set
    config = TrainConfig.for_device("cpu", **{**TINY, "epochs": 1})
    result = fit(fresh_shapes, tmp_path / "run", config, device="cpu", log=quiet)
    assert result.config.min_freq == 5
    assert load_run(tmp_path / "run").config.min_freq == 5
    rare_words_kept = prepare_data(fresh_shapes, min_freq=1, log=quiet).vocab
    assert len(result.vocab) == len(prepare_data(fresh_shapes, log=quiet).vocab) < len(rare_words_kept)
