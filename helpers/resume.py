"""Resuming a run: the optimiser, the schedule, the gradient scaler and the random generators as the
checkpoint left them, and a schedule rebuilt where the run's number of epochs or steps per epoch changed.
"""

from __future__ import annotations

from helpers.config import TrainConfig
from helpers.utils import set_random_state


def restore(state, optimizer, scheduler, scaler, config: TrainConfig, steps: dict, rebuild, log):
    """A resumed run's optimiser, schedule, scaler and random generators: ``(scheduler, history, epochs
    done)``. ``steps``: ``{"captions", "world", "per_epoch"}`` of this run; ``rebuild(done_steps=,
    done_epochs=)`` makes a one-cycle schedule that continues after the steps taken
    (:func:`resumed_schedule`).

    The global generators (Python, NumPy, torch) continue from where the checkpoint's epoch left them,
    so that dropout draws what an uninterrupted run draws.
    """
    if not state:
        return scheduler, [], 0
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_random_state(state["rng"])
    done = int(state["epoch"])
    log(f"Resuming after epoch {done} of {config.epochs}.")
    if config.epochs <= done:
        log(f"Nothing left to train: the run has {done} epochs; ask for more with --epochs.")
        return scheduler, list(state["history"]), done
    scheduler = resumed_schedule(state, scheduler, config, steps, rebuild, log)
    return scheduler, list(state["history"]), done


def resumed_schedule(state, scheduler, config: TrainConfig, steps: dict, rebuild, log):
    """The schedule a resumed run continues with: the saved one where nothing it depends on changed.

    More (or fewer) epochs: that of a run of that many epochs, from where it stopped. Another number of
    steps per epoch (the training set, or the number of torchrun processes, changed): one spanning the
    steps taken and those left.
    """
    done, planned, taken = int(state["epoch"]), int(state["config"]["epochs"]), scheduler.last_epoch
    saved = state["steps"]
    if saved["per_epoch"] != steps["per_epoch"]:
        names = {"captions": "training captions", "world": "processes"}
        what = [f"{names[key]} {saved[key]} → {steps[key]}" for key in names if saved[key] != steps[key]]
        log(
            f"The run took {taken} steps in {done} epoch(s) and now has {steps['per_epoch']} steps per "
            f"epoch ({', '.join(what) or 'the training set or the number of processes changed'}): the "
            f"one-cycle schedule is rebuilt for the steps left of {config.epochs} epochs."
        )
        return rebuild(done_steps=taken, done_epochs=done)
    if config.epochs != planned:
        log(
            f"The run was started for {planned} epochs; it now trains to {config.epochs}, and the "
            f"learning rate follows the one-cycle schedule of a {config.epochs}-epoch run from here on."
        )
        return rebuild(done_steps=taken)
    return scheduler
