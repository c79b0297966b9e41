"""Resuming a run (issue #24): the schedule."""

import pytest
from shared import TINY_CONFIG as TINY
from shared import copy_shapes

from helpers import training
from helpers.config import TrainConfig
from helpers.runs import CHECKPOINT, load_checkpoint, load_run
from helpers.training import fit


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
