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


class Recorder:
    """An optimiser, schedule or scaler stand-in that records the state it is given."""

    def __init__(self, last_epoch: int = 0):
        self.last_epoch, self.loaded = last_epoch, None

    def load_state_dict(self, state) -> None:
        self.loaded = state


def _saved(epoch=1, epochs=3, per_epoch=6, captions=90, world=1, scaler=None) -> dict:
    """A checkpoint's resume fields as :func:`~helpers.resume.restore` reads them, after seeding 5."""
    from helpers.utils import random_state

    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    return {
        "optimizer": {"name": "optimizer"},
        "scheduler": {"name": "scheduler"},
        "scaler": scaler,
        "rng": random_state(),
        "epoch": epoch,
        "config": {"epochs": epochs},
        "steps": {"captions": captions, "world": world, "per_epoch": per_epoch},
        "history": ({"epoch": 1, "dev_bleu4": 0.25},),
    }


def _restore(state, epochs=3, steps=None):
    """``restore`` on stand-ins: ``(result, optimizer, scheduler, scaler, rebuilds, messages)``."""
    from helpers.resume import restore

    optimizer, scheduler, scaler, rebuilds, messages = Recorder(), Recorder(6), Recorder(), [], []

    def rebuild(**kwargs):
        rebuilds.append(kwargs)
        return "rebuilt"

    steps = steps or {"captions": 90, "world": 1, "per_epoch": 6}
    config = TrainConfig(**{**TINY, "epochs": epochs})
    result = restore(state, optimizer, scheduler, scaler, config, steps, rebuild, messages.append)
    return result, optimizer, scheduler, scaler, rebuilds, messages


def test_restore_without_a_checkpoint_keeps_the_new_schedule_and_starts_at_epoch_0():
    result, optimizer, scheduler, scaler, rebuilds, messages = _restore({})
    assert result == (scheduler, [], 0) and result[0] is scheduler
    assert optimizer.loaded is scaler.loaded is scheduler.loaded is None and not rebuilds and not messages


def test_restore_loads_the_optimizer_schedule_scaler_and_random_state_of_the_checkpoint():
    state = _saved(scaler={"scale": 1024.0})
    expected = (random.random(), float(np.random.rand()), torch.rand(2))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    (scheduler, history, done), optimizer, saved, scaler, rebuilds, messages = _restore(state)
    assert (random.random(), float(np.random.rand())) == expected[:2]
    assert torch.equal(torch.rand(2), expected[2])
    assert optimizer.loaded == {"name": "optimizer"} and saved.loaded == {"name": "scheduler"}
    assert scaler.loaded == {"scale": 1024.0}
    assert scheduler is saved and history == [{"epoch": 1, "dev_bleu4": 0.25}] and done == 1
    assert messages == ["Resuming after epoch 1 of 3."] and not rebuilds


def test_restore_leaves_the_scaler_alone_where_the_checkpoint_saved_none():
    _, _, _, scaler, _, _ = _restore(_saved(scaler={}))
    assert scaler.loaded is None


def test_restore_of_a_finished_run_trains_nothing_and_says_how_to_train_more():
    (scheduler, history, done), _, saved, _, rebuilds, messages = _restore(_saved(epoch=3), epochs=3)
    assert scheduler is saved and history == [{"epoch": 1, "dev_bleu4": 0.25}] and done == 3
    assert messages == [
        "Resuming after epoch 3 of 3.",
        "Nothing left to train: the run has 3 epochs; ask for more with --epochs.",
    ]
    assert not rebuilds


def test_resume_with_more_epochs_continues_the_schedule_of_a_run_that_long():
    (scheduler, _, done), _, _, _, rebuilds, messages = _restore(_saved(epoch=1, epochs=3), epochs=5)
    assert scheduler == "rebuilt" and done == 1 and rebuilds == [{"done_steps": 6}]
    assert messages[1] == (
        "The run was started for 3 epochs; it now trains to 5, and the learning rate follows the one-cycle "
        "schedule of a 5-epoch run from here on."
    )


def test_resume_with_other_steps_per_epoch_rebuilds_the_schedule_naming_what_changed():
    grown = {"captions": 225, "world": 2, "per_epoch": 8}
    (scheduler, _, done), *_, rebuilds, messages = _restore(_saved(epoch=1), epochs=3, steps=grown)
    assert scheduler == "rebuilt" and done == 1 and rebuilds == [{"done_steps": 6, "done_epochs": 1}]
    assert messages[1] == (
        "The run took 6 steps in 1 epoch(s) and now has 8 steps per epoch (training captions 90 → 225, "
        "processes 1 → 2): the one-cycle schedule is rebuilt for the steps left of 3 epochs."
    )


def test_resume_with_other_steps_per_epoch_but_the_same_captions_and_processes_says_so():
    same = {"captions": 90, "world": 1, "per_epoch": 3}
    *_, rebuilds, messages = _restore(_saved(epoch=2, epochs=3), epochs=4, steps=same)
    assert rebuilds == [{"done_steps": 6, "done_epochs": 2}]
    assert "(the training set or the number of processes changed)" in messages[1]
    assert "of 4 epochs." in messages[1]


def test_repair_best_writes_best_pt_again_from_the_checkpoint_of_a_best_epoch(tmp_path, monkeypatch):
    model = _epoch_run(tmp_path, monkeypatch)
    state = load_checkpoint(tmp_path / CHECKPOINT)
    messages = []
    runs.repair_best(tmp_path, state, messages.append)
    best = load_checkpoint(tmp_path / BEST_CHECKPOINT)
    assert sorted(best) == sorted(runs.BEST_KEYS) and best["epoch"] == 2
    assert [row["epoch"] for row in best["history"]] == [1, 2]
    key = "decoder.linear.weight"
    assert torch.equal(best["model"][key], model.state_dict()[key])
    assert messages == [
        f"{tmp_path / BEST_CHECKPOINT} missed epoch 2, the best so far: written again from {CHECKPOINT}."
    ]


def test_repair_best_leaves_a_best_pt_of_the_same_epoch_or_a_checkpoint_not_best_alone(tmp_path, monkeypatch):
    _epoch_run(tmp_path, monkeypatch)
    state = load_checkpoint(tmp_path / CHECKPOINT)
    before = (tmp_path / BEST_CHECKPOINT).read_bytes()
    messages = []
    runs.repair_best(tmp_path, {**state, "best": False}, messages.append)
    runs.repair_best(tmp_path, {**state, "epoch": 1}, messages.append)  # best.pt holds epoch 1
    assert (tmp_path / BEST_CHECKPOINT).read_bytes() == before and messages == []


def test_random_state_keeps_numpys_cached_normal_draw():
    from helpers.utils import random_state, set_random_state

    np.random.seed(4)
    np.random.randn()  # the legacy generator draws normals in pairs and keeps the second for the next call
    saved = random_state()
    assert saved["numpy"]["has_gauss"] == 1
    expected = np.random.randn(3).tolist()
    np.random.seed(0)
    set_random_state(saved)
    assert np.random.randn(3).tolist() == expected


def _gpus(monkeypatch, count: int):
    """``count`` CUDA GPUs as torch.cuda reports them; ``set_rng_state_all`` records what it is given."""
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.full((4,), i) for i in range(count)])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    return restored


def test_random_state_takes_and_restores_the_cuda_generators_of_as_many_gpus(monkeypatch):
    from helpers.utils import random_state, set_random_state

    restored = _gpus(monkeypatch, 2)
    state = random_state()
    assert [t.tolist() for t in state["cuda"]] == [[0, 0, 0, 0], [1, 1, 1, 1]]
    set_random_state(state)
    assert restored == [state["cuda"]]


def test_cuda_generators_are_left_alone_for_another_gpu_count_or_a_cpu_checkpoint(monkeypatch):
    from helpers.utils import random_state, set_random_state

    one_gpu = {**random_state(), "cuda": [torch.zeros(4)]}
    restored = _gpus(monkeypatch, 2)
    set_random_state(one_gpu)
    set_random_state({key: value for key, value in one_gpu.items() if key != "cuda"})
    assert restored == []
