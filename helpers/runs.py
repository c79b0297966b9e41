"""Run folders and checkpoints: what :func:`helpers.training.fit` writes, and a :class:`Run` that reads it
back and captions images.

A run folder holds ``checkpoint.pt`` (written atomically at the end of every epoch: weights as a
``state_dict``, optimiser and schedule state, the random generators' states, the vocabulary and the
configuration — never a pickled module), ``best.pt`` (the weights of the epoch with the best dev BLEU-4:
the model a run's figures come from), plus ``vocab.json``, ``config.json`` and ``history.csv`` for people
to read. ``checkpoint.pt`` is written first and says whether its epoch is the best (``"best"``): a run
killed before ``best.pt`` followed still has that epoch's weights, in ``checkpoint.pt``, and
:func:`load_run` and a resumed run find them there::

    run = Run.load("runs/shapes", device)
    run.caption(["a.png", "b.png"])  # → ["a red circle on the left", ...]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from helpers.attention import AttentionCaptioner
from helpers.config import TrainConfig
from helpers.data import image_transform, load_image, to_rgb
from helpers.decoding import decode_features
from helpers.models import Captioner
from helpers.utils import atomic_save, random_state
from helpers.vocabulary import Vocabulary

CHECKPOINT = "checkpoint.pt"
BEST_CHECKPOINT = "best.pt"  # the epoch with the best dev BLEU-4 so far: weights only, no optimiser state
RUN_FILES = (CHECKPOINT, BEST_CHECKPOINT, "vocab.json", "config.json", "history.csv")  # what fit writes
RESUMABLE = ("epochs", "num_workers")  # what a resumed run takes from a new configuration
BEST_KEYS = ("model", "epoch", "vocab", "config", "weights", "history")  # what best.pt holds


def build_model(
    config: TrainConfig, vocab_size: int, weights: str | None = None
) -> Captioner | AttentionCaptioner:
    """The captioner a configuration describes (``weights`` overrides ``config.weights``): a
    :class:`~helpers.models.Captioner` for ``decoder="show-tell"``, an
    :class:`~helpers.attention.AttentionCaptioner` for ``"attention"``. Both have ``encoder`` (with
    ``backbone_features``, ``project_features``, ``parameter_groups`` and ``weights``) and ``decoder``
    (the protocol of :mod:`helpers.decoding`)."""
    if config.decoder == "attention":
        return AttentionCaptioner(
            vocab_size,
            stage=config.stage,
            feature_size=config.feature_size,
            strides=tuple(config.strides),
            embed_size=config.embed_size,
            hidden_size=config.hidden_size,
            attention_size=config.attention_size,
            weights=weights or config.weights,
        )
    return Captioner(
        vocab_size,
        config.embed_size,
        config.hidden_size,
        config.num_layers,
        weights=weights or config.weights,
        train_backbone=config.train_backbone,
        dropout=config.dropout,
        standardize=config.standardize,
    )


def load_checkpoint(path: Path | str, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint safely: ``weights_only=True`` refuses pickled code, never runs it.

    Any problem (truncated file, not a checkpoint, a pickled module) raises ``ValueError`` naming the file.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no checkpoint there (train first, or check --run)") from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a loadable checkpoint ({first_line})") from None
    needed = {"model", "vocab", "config", "epoch"}
    if not isinstance(state, dict) or not needed <= set(state):
        raise ValueError(f"{path}: not a checkpoint of this course (expected keys {sorted(needed)})")
    return state


def checkpoint_vocab(state: dict) -> Vocabulary:
    """The vocabulary a checkpoint holds, stored in :meth:`Vocabulary.to_dict`'s form."""
    return Vocabulary.from_dict(state["vocab"])


def save_run(
    run_dir: Path,
    model: Captioner,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    vocab: Vocabulary,
    config: TrainConfig,
    history: list[dict],
    weights: str,
    best: bool = False,
    scaler: torch.amp.GradScaler | None = None,
    steps: dict | None = None,
) -> None:
    """Write the checkpoint atomically, then ``best.pt``, then the human-readable files beside it.

    The checkpoint holds, besides the weights and what travels with them (:data:`BEST_KEYS`), the
    optimiser's, schedule's and scaler's states, the random generators' states as they stand now
    (:func:`helpers.utils.random_state`: the next epoch starts from them), ``best``, and ``steps`` (what
    the schedule's steps per epoch were computed from: ``{"captions", "world", "per_epoch"}``).
    ``best``: this epoch's dev score beats every earlier one, so its weights also go to ``best.pt``
    (without the optimiser's state, which only resuming needs, and which would double the file).
    """
    run = {
        "model": model.state_dict(),
        "epoch": epoch,
        "vocab": vocab.to_dict(),
        "config": config.to_dict(),
        "weights": weights,
        "history": history,
    }
    atomic_save(
        {
            **run,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            "rng": random_state(),
            "best": best,
            "steps": steps,
        },
        run_dir / CHECKPOINT,
    )
    if best:
        atomic_save(run, run_dir / BEST_CHECKPOINT)
    vocab.save(run_dir / "vocab.json")
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    pd.DataFrame(history).to_csv(run_dir / "history.csv", index=False, encoding="utf-8")


def repair_best(run_dir: Path | str, state: dict, log: Callable[[str], None] = print) -> None:
    """Write ``best.pt`` again from ``state`` (the run's ``checkpoint.pt``) where the run was stopped after
    the checkpoint of a best epoch and before its ``best.pt``; otherwise do nothing.
    """
    if not state.get("best"):
        return
    path = Path(run_dir) / BEST_CHECKPOINT
    if _peek(path).get("epoch") == state["epoch"]:
        return
    atomic_save({key: state[key] for key in BEST_KEYS}, path)
    log(f"{path} missed epoch {state['epoch']}, the best so far: written again from {CHECKPOINT}.")


def existing_run(run_dir: Path | str) -> dict | None:
    """The checkpoint of the run in ``run_dir``, or None where there is none; refuses a folder that is no run.

    ``ValueError`` (one line, naming the path) when ``run_dir`` is a file, when its ``checkpoint.pt`` is
    not a checkpoint of this course, or when it holds ``vocab.json``, ``config.json`` or ``history.csv``
    without a checkpoint: :func:`~helpers.training.fit` would overwrite files it did not write.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file, not a run folder: choose another --out (nothing was changed)")
    if (run_dir / CHECKPOINT).exists():
        try:
            return load_checkpoint(run_dir / CHECKPOINT)
        except ValueError as error:
            raise ValueError(
                f"{error}; training will not overwrite it: choose another --out (nothing was changed)"
            ) from None
    others = [name for name in RUN_FILES if (run_dir / name).exists()]
    if others:
        raise ValueError(
            f"{run_dir} holds {', '.join(others)} but no {CHECKPOINT}, so no run of train made them; "
            "training will not overwrite them: choose another --out (nothing was changed)"
        )
    return None


def resume_config(
    saved: TrainConfig, wanted: TrainConfig | None, log: Callable[[str], None] = print
) -> TrainConfig:
    """The configuration a resumed run trains with: ``saved``, with what of ``wanted`` a resume can honour.

    A resumed run keeps its model, vocabulary, data and batches, so only :data:`RESUMABLE` settings are
    taken (more epochs: see :func:`~helpers.training.one_cycle`; DataLoader workers). Any other setting
    in which ``wanted`` differs is named in one ``log`` line as ignored.
    """
    if wanted is None:
        return saved
    changed = {f.name for f in fields(TrainConfig) if getattr(wanted, f.name) != getattr(saved, f.name)}
    ignored = sorted(changed - set(RESUMABLE))
    if ignored:
        log(
            "Ignored with resume (the run keeps its saved configuration): "
            + ", ".join(
                f"{name}={getattr(wanted, name)!r} (saved {getattr(saved, name)!r})" for name in ignored
            )
            + "."
        )
    return replace(saved, **{name: getattr(wanted, name) for name in changed & set(RESUMABLE)})


def load_run(run_dir: Path | str, device: torch.device | str = "cpu", checkpoint: str = "best") -> Run:
    """The trained model of a run folder, in eval mode on ``device``, with its vocabulary and configuration.

    The course's one rule for which model a run's figures come from: ``checkpoint="best"`` (the default)
    reads the epoch with the best dev BLEU-4, chosen without looking at the test split: ``best.pt``, or
    ``checkpoint.pt`` where that says its own epoch is the best (a run stopped before ``best.pt`` was
    written). The notebooks, ``evaluate`` and ``caption`` all use it. ``"last"`` reads ``checkpoint.pt``
    (the last completed epoch, what ``--resume`` continues). :meth:`Run.load` is the same.
    """
    if checkpoint not in ("last", "best"):
        raise ValueError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    device = torch.device(device)
    state = load_checkpoint(Path(run_dir) / CHECKPOINT, device) if checkpoint == "last" else None
    if checkpoint == "best":
        state = _best_state(Path(run_dir), device)
    config = TrainConfig.from_dict(state["config"])
    vocab = checkpoint_vocab(state)
    model = build_model(config, len(vocab), weights="random")  # the checkpoint holds every weight
    saved = state["model"].get("decoder.embed.weight")
    if saved is not None and saved.shape[0] != len(vocab):
        raise ValueError(
            f"{run_dir}: checkpoint weights are for {saved.shape[0]} words, its vocabulary has {len(vocab)}"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise ValueError(
            f"{run_dir}: checkpoint does not fit the model its configuration describes ({error})"
        ) from None
    return Run(model.to(device).eval(), vocab, config, device)


def _best_state(run_dir: Path, device: torch.device) -> dict:
    """The checkpoint of a run's best epoch: ``checkpoint.pt`` where it is marked best, else ``best.pt``."""
    last = run_dir / CHECKPOINT
    return load_checkpoint(last if _peek(last).get("best") else run_dir / BEST_CHECKPOINT, device)


def _peek(path: Path) -> dict:
    """A checkpoint's small values, memory-mapped (its tensors are not read); ``{}`` where there is no
    loadable checkpoint (:func:`load_checkpoint` names the problem where it matters)."""
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:
        return {}
    return state if isinstance(state, dict) else {}


@dataclass
class Run:
    """A trained captioner with what travels with it: its vocabulary, its configuration, its device."""

    model: Captioner
    vocab: Vocabulary
    config: TrainConfig
    device: torch.device

    @classmethod
    def load(cls, run_dir: Path | str, device: torch.device | str = "cpu", checkpoint: str = "best") -> Run:
        """Read a run folder written by :func:`~helpers.training.fit` (see :func:`load_run`)."""
        return load_run(run_dir, device, checkpoint)

    def pixels(self, images: Sequence[Path | str | Image.Image]) -> torch.Tensor:
        """Image files or PIL images (any mode: :func:`helpers.data.to_rgb`) → ``[N, 3, S, S]`` on the run's
        device, at the configuration's ``image_size``.

        A file that cannot be read raises :class:`helpers.data.ImageLoadError`, naming it.
        """
        transform = image_transform(self.config.image_size)
        rgb = [to_rgb(image) if isinstance(image, Image.Image) else load_image(image) for image in images]
        return torch.stack([transform(image) for image in rgb]).to(self.device)

    def caption(
        self,
        images: Sequence[Path | str | Image.Image],
        beam_size: int | None = None,
        max_len: int | None = None,
        batch_size: int = 64,
    ) -> list[str]:
        """One caption per image (files or PIL images): greedy, or beam search with ``beam_size`` > 1.

        ``max_len`` words at most (default: the configuration's ``max_decode``). Images are encoded
        ``batch_size`` at a time, so a long list does not need its pixels in memory all at once.
        """
        if beam_size is not None and beam_size < 1:
            raise ValueError(f"beam_size must be 1 or more, got {beam_size}")
        self.model.eval()
        with torch.no_grad():
            pooled = [
                self.model.encoder.backbone_features(self.pixels(images[i : i + batch_size]))
                for i in range(0, len(images), batch_size)
            ]
        if not pooled:
            return []
        return decode_features(
            self.model,
            torch.cat(pooled),
            self.vocab,
            self.device,
            beam=beam_size or 1,
            max_len=self.config.max_decode if max_len is None else max_len,
        )
