"""Training a captioner: one step, one epoch (:func:`train_epoch`), validation (:func:`validate`), and
:func:`fit`, which runs them for every epoch and writes the run.

:func:`fit` is notebook 05's sections in a loop: the data (:func:`helpers.prepare.prepare_data`), the
model (:func:`helpers.runs.build_model`), the backbone's features computed once
(:func:`helpers.features.cached_features`), Adam with the one-cycle schedule (:func:`make_optimizer`),
then every epoch: train, validate with greedy BLEU on the dev images, save (:func:`helpers.runs.save_run`).
Under ``torchrun`` every process trains on its own share of each epoch (DistributedDataParallel); only
rank 0 validates, logs and writes.

The attention decoder (``config.decoder == "attention"``) goes through the same steps: its features are
the cached grids of a frozen stage, its batches hold whole images with all their captions (the adapter
and the attention keys run once per image), and its loss is :func:`~helpers.attention.attention_loss`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from helpers.attention import attention_loss
from helpers.batches import Batch, TrainingSet, batches, encode_captions
from helpers.config import TrainConfig
from helpers.evaluation import evaluate_bleu
from helpers.features import cached_features, extract_features
from helpers.models import Captioner, packed_loss
from helpers.precision import training_precision, use_tf32
from helpers.prepare import PreparedData, dataset_root, default_min_freq, prepare_data
from helpers.resume import restore
from helpers.runs import build_model, checkpoint_vocab, existing_run, repair_best, resume_config, save_run
from helpers.utils import seed_everything
from helpers.vocabulary import Vocabulary

DIST_TIMEOUT_MINUTES = 60.0  # how long torchrun's processes wait for each other; see distributed_context
T = TypeVar("T")


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model (eval mode), its vocabulary, and the epoch table."""

    model: Captioner
    vocab: Vocabulary
    config: TrainConfig
    history: pd.DataFrame
    data: PreparedData


class TrainStep(nn.Module):
    """The loss of one batch, as one module (so DistributedDataParallel can wrap it).

    ``cached=True``: inputs are pooled backbone features ``[B, 2048]`` → projection → decoder. Otherwise
    inputs are ``(images [I, 3, S, S], image_of [B])``: each image goes through the backbone once, its
    pooled features are repeated for each of its captions (``image_of``: caption → its image's position
    among the ``I``), then projection → decoder. Either way, with ``captions [B, T]`` and ``lengths [B]``,
    ``→ the loss`` per caption token (:func:`~helpers.models.packed_loss`: the value of
    ``sequence_loss``, without scoring padding).

    ``penalty`` given (an :class:`~helpers.attention.AttentionCaptioner`): inputs are ``(grids [I, C, h, w],
    image_of [B])``, each image's stored grid through the adapter once and its attention keys computed
    once, shared by its captions; the loss is :func:`~helpers.attention.attention_loss` with λ =
    ``penalty`` (cross-entropy per caption token plus λ × the doubly stochastic regulariser).
    """

    def __init__(self, model: Captioner, cached: bool, penalty: float | None = None):
        super().__init__()
        self.model, self.cached, self.penalty = model, cached, penalty

    def forward(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        captions: torch.Tensor,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        encoder = self.model.encoder
        if self.penalty is not None:
            grids, image_of = inputs
            features = encoder.project_features(grids)  # [I, N, D]
            logits, alphas = self.model.decoder(features, captions, lengths, image_index=image_of)
            return attention_loss(logits, alphas, captions, lengths, self.penalty)
        if self.cached:
            pooled = inputs
        else:
            images, image_of = inputs
            pooled = encoder.backbone_features(images).index_select(0, image_of)
        return packed_loss(self.model.decoder, encoder.project_features(pooled), captions, lengths)


def train_epoch(
    step: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    grad_clip: float,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
    world: int = 1,
) -> float:
    """One pass over ``batches`` of ``(inputs, captions [B, T], lengths [B])``; the mean loss per caption.

    Each batch: the loss ``step(inputs, captions, lengths)`` (a :class:`TrainStep`; under autocast to
    ``amp_dtype`` when one is given), backward, gradients clipped to a total norm of ``grad_clip``, an
    optimiser step, a schedule step. ``scaler`` (fp16) scales the loss so that small gradients do not
    round to zero. With ``world`` processes the mean is over all of them.
    """
    device = next(step.parameters()).device
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    # loss sum and caption count, kept on the device: reading them every step would make the CPU
    # wait for the GPU each time, instead of queueing the next step while the GPU works
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    step.train()
    for inputs, captions, lengths in batches:
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            loss = step(inputs, captions, lengths)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(step.parameters(), grad_clip)
        scaler.step(optimizer)  # (skipped, with a smaller scale next time, if a gradient overflowed)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        totals[0] += loss.detach() * len(lengths)
        totals[1] += len(lengths)
    if world > 1:
        dist.all_reduce(totals)
    return float(totals[0] / totals[1])


def validate(
    model: Captioner,
    images: Sequence[str],
    references: Sequence[Sequence[str]],
    vocab: Vocabulary,
    config: TrainConfig,
    device: torch.device,
    features: torch.Tensor | None = None,
) -> dict[str, float]:
    """BLEU-1…4 of greedy captions for ``images`` against their ``references``, without teacher forcing.

    ``features``: the images' stored backbone features (pooled ``[N, 2048]``, or an attention model's grids
    ``[N, C, h, w]``); ``None`` extracts them now (when fine-tuning, the backbone has changed since the last
    epoch).
    """
    if features is None:
        features = extract_features(model, images, config.image_size, device)
    scores, _ = evaluate_bleu(model, features, references, vocab, device, config.max_decode)
    return scores


def make_optimizer(
    model: Captioner, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR]:
    """Adam over what trains, and the one-cycle schedule over ``config.epochs`` epochs.

    Two parameter groups (:meth:`~helpers.models.EncoderCNN.parameter_groups`): the encoder's head with the
    decoder at ``config.lr``, and the backbone's unfrozen layers, if any, at
    ``config.lr × config.backbone_lr_scale``.
    """
    encoder = model.encoder.parameter_groups()
    groups = [{"params": encoder["head"] + list(model.decoder.parameters()), "lr": config.lr}]
    if encoder["backbone"]:
        groups.append({"params": encoder["backbone"], "lr": config.lr * config.backbone_lr_scale})
    optimizer = torch.optim.Adam(groups)
    return optimizer, one_cycle(optimizer, config, steps_per_epoch)


def one_cycle(
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    steps_per_epoch: int,
    done_steps: int = 0,
    done_epochs: int | None = None,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule of a ``config.epochs``-epoch run, standing after ``done_steps`` steps.

    ``done_steps > 0`` is for a resumed run (the optimiser must then hold its saved state, where
    OneCycleLR keeps each group's rates). Resumed with more (or fewer) epochs than it was started with,
    each step from there on gets the learning rate an uninterrupted run of ``config.epochs`` epochs gives
    it. ``done_epochs`` given (a run resumed with another number of steps per epoch): the schedule spans
    the ``done_steps`` taken in those epochs and the ``config.epochs - done_epochs`` epochs left, of
    ``steps_per_epoch`` steps each.
    """
    # (a few steps more than needed: OneCycleLR cannot build its two phases from a handful of steps)
    if done_epochs is None:
        steps = max(8, (steps_per_epoch + 1) * config.epochs)
    else:
        steps = max(8, done_steps + done_epochs + (steps_per_epoch + 1) * (config.epochs - done_epochs))
    peaks = [config.lr, config.lr * config.backbone_lr_scale][: len(optimizer.param_groups)]
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=peaks, total_steps=steps, pct_start=0.25, last_epoch=done_steps - 1
    )


def fit(
    data_dir: Path | str, run_dir: Path | str, config: TrainConfig | None = None, *,
    device: torch.device | str, resume: bool = False, overwrite: bool = True,
    cache_dir: Path | str | None = None, log: Callable[[str], None] = print,
    dist_timeout: float = DIST_TIMEOUT_MINUTES, checkpoint: dict | None = None,
) -> FitResult:
    """Train a captioner on ``data_dir`` on ``device`` (as :func:`helpers.utils.get_device` gives it) and
    write the run to ``run_dir``; the module's docstring says what each step does.

    ``config=None``: :meth:`TrainConfig.for_device`. ``resume``, ``overwrite``, ``checkpoint`` (a run's
    checkpoint already read by the caller): :func:`_start_run`. ``cache_dir``: where backbone features are
    kept (default: ``.cache/`` beside the dataset). ``dist_timeout``: :func:`distributed_context`.
    """
    rank, world, device = distributed_context(torch.device(device), dist_timeout)
    log = log if rank == 0 else _silent
    run_dir, state, config = _start_run(run_dir, data_dir, config, device, resume, overwrite, checkpoint, log)
    if rank == 0:  # (only rank 0 writes the run)
        run_dir.mkdir(parents=True, exist_ok=True)
        if state:
            repair_best(run_dir, state, log)
    amp_dtype = _precision(device, world, config, log)
    # 1. the data, the model (seeded: the same weights every time), the captions as tensors
    seed_everything(config.seed)
    prepare = partial(prepare_data, data_dir, config.min_freq, log, ("train", "dev"))
    data = _rank_zero_first(prepare, rank, world)
    model, vocab, weights = _model(config, data, state, device, log)
    train, dev_images, references = _training_set(data, vocab, config, data_dir)
    # 2. the backbone's features, computed once (cached mode), and 3. the optimiser and its schedule
    cache_dir = dataset_root(data_dir) / ".cache" if cache_dir is None else cache_dir
    dev_features = _features(model, train, dev_images, config, device, cache_dir, rank, world, log)
    step = _train_step(model, train, config, world, device)
    per_batch = train.per_batch(config.batch_size)
    steps_per_epoch = math.ceil(math.ceil(train.examples / world) / per_batch)
    steps = {"captions": len(train.captions), "world": world, "per_epoch": steps_per_epoch}
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch)
    # fp16 gradients can underflow to zero: the scaler multiplies the loss first and divides it back out
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    rebuild = partial(one_cycle, optimizer, config, steps_per_epoch)
    scheduler, history, done = restore(state, optimizer, scheduler, scaler, config, steps, rebuild, log)
    generator = _shuffles(config.seed, train.examples, done)
    # 4. every epoch: train, then (rank 0) validate without teacher forcing and save the run
    for epoch in range(done + 1, config.epochs + 1):
        started = time.perf_counter()
        order = batches(train.examples, per_batch, generator, rank, world)
        label = f"epoch {epoch}" if rank == 0 else None
        inputs = train.batches(order, device, config.image_size, config.num_workers, label)
        loss = train_epoch(step, inputs, optimizer, config.grad_clip, scheduler, scaler, amp_dtype, world)
        if rank == 0:
            scores = validate(model, dev_images, references, vocab, config, device, dev_features)
            row = {"epoch": epoch, "train_loss": loss, **{f"dev_{name}": v for name, v in scores.items()}}
            row.update(lr=optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - started)
            best = row["dev_bleu4"] > max((h["dev_bleu4"] for h in history), default=-1.0)
            history.append(row)
            save_run(run_dir, model, optimizer, scheduler, epoch, vocab, config, history, weights, best,
                     scaler, steps)
            log(f"epoch {epoch}/{config.epochs}  loss {loss:.3f}  dev BLEU-4 {row['dev_bleu4']:.3f}  "
                f"({row['seconds']:.1f} s)")
        if world > 1:
            dist.barrier()
    return FitResult(model.eval(), vocab, config, pd.DataFrame(history), data)


def _train_step(
    model: Captioner, train: TrainingSet, config: TrainConfig, world: int, device: torch.device
) -> nn.Module:
    """The step ``train_epoch`` takes, wrapped for torchrun when ``world`` processes train together."""
    penalty = config.penalty if config.decoder == "attention" else None
    step = TrainStep(model, cached=train.features is not None, penalty=penalty)
    if world > 1:
        step = DistributedDataParallel(step, device_ids=[device] if device.type == "cuda" else None)
    return step


def _silent(_: str) -> None:
    """The log of processes other than rank 0."""


def _start_run(
    run_dir: Path | str, data_dir: Path | str, config: TrainConfig | None, device: torch.device,
    resume: bool, overwrite: bool, checkpoint: dict | None, log: Callable[[str], None],
) -> tuple[Path, dict | None, TrainConfig]:
    """The run folder, the checkpoint a resumed run continues from (or None), and the configuration.

    ``resume=True`` continues from the last completed epoch in ``run_dir``, with its saved configuration
    and vocabulary; of a ``config`` given with it, only more ``epochs`` and ``num_workers`` are taken,
    other differences are named in a line as ignored (:func:`~helpers.runs.resume_config`). A run
    already in ``run_dir`` is otherwise replaced, with a line saying so (re-running a notebook retrains
    its own run), unless ``overwrite=False``, which refuses (``ValueError``), as ``python -m helpers
    train`` does without ``--overwrite``. Files ``fit`` did not write are never overwritten
    (:func:`~helpers.runs.existing_run`). ``checkpoint``: the run's checkpoint, where the caller has
    read it already (so a large file is read once). ``config=None``: :meth:`TrainConfig.for_device`.
    ``min_freq=None`` becomes the dataset's own threshold (:func:`~helpers.prepare.default_min_freq`),
    stored with the run.
    """
    run_dir = Path(run_dir)
    state = checkpoint if checkpoint is not None else existing_run(run_dir)
    if state is not None and not resume:
        trained = f"epoch {state['epoch']} of {state['config'].get('epochs')}"
        if not overwrite:
            raise ValueError(
                f"{run_dir} already holds a run (trained to {trained}): add --resume to continue it or "
                "--overwrite to replace it (in Python: resume=True or overwrite=True); nothing was changed"
            )
        log(f"Replacing the run in {run_dir} (trained to {trained}): its files are rewritten after epoch 1.")
        state = None
    elif state is None and resume:
        log(f"No checkpoint in {run_dir} yet: training from epoch 1.")
    config = config or (None if state else TrainConfig.for_device(device))
    if config is not None and config.min_freq is None:
        config = replace(config, min_freq=default_min_freq(data_dir))
    if state:
        config = resume_config(TrainConfig.from_dict(state["config"]), config, log)
    return run_dir, state, config


def _precision(device: torch.device, world: int, config: TrainConfig, log: Callable[[str], None]):
    """Switch TF32 on where it helps, say how the run will train, and return the autocast dtype (or None)."""
    use_tf32(device)
    amp_dtype, precision = training_precision(device, config.mode)
    processes = f", {world} processes" if world > 1 else ""
    log(
        f"Device: {device}{processes}. Precision: {precision}. Mode: {config.mode}, "
        f"images at {config.image_size} px, {config.epochs} epochs. Decoder: {_decoder_name(config)}."
    )
    return amp_dtype


def _decoder_name(config: TrainConfig) -> str:
    """The decoder in a few words: ``show-tell``, or ``attention over layer1 grids, λ 0.0``."""
    if config.decoder != "attention":
        return config.decoder
    return f"attention over {config.stage} grids, λ {config.penalty}"


def _rank_zero_first(work: Callable[[], T], rank: int, world: int) -> T:
    """``work()`` on rank 0, and only then on the other processes, which find what it cached."""
    if rank == 0:
        result = work()
    if world > 1:
        dist.barrier()
        if rank != 0:
            result = work()
        dist.barrier()
    return result


def _model(
    config: TrainConfig, data: PreparedData, state: dict | None, device: torch.device, log
) -> tuple[Captioner, Vocabulary, str]:
    """The model to train on ``device``, its vocabulary, and its encoder's weights (``"imagenet"`` or
    ``"random"``): new, or as a resumed run's checkpoint left them."""
    vocab = checkpoint_vocab(state) if state else data.vocab
    model = build_model(config, len(vocab), weights="random" if state else None).to(device)
    if state:
        model.load_state_dict(state["model"])
    weights = state["weights"] if state else model.encoder.weights
    log(f"Encoder weights: {weights}. Vocabulary: {len(vocab)} words.")
    return model, vocab, weights


def _training_set(
    data: PreparedData, vocab: Vocabulary, config: TrainConfig, data_dir
) -> tuple[TrainingSet, list[str], list[list[str]]]:
    """The training captions as tensors (by whole images for the attention decoder), the dev images
    validation scores (``config.val_images``), and their references."""
    dev_images = data.images("dev")[: config.val_images]
    if not dev_images:
        raise ValueError(f"{data_dir}: the dev split is empty; validation needs it")
    dev_refs = data.references("dev")
    train_images = data.images("train")
    captions = encode_captions(data.split("train"), train_images, vocab, config.max_words)
    train = TrainingSet(train_images, *captions, by_image=config.decoder == "attention")
    return train, dev_images, [dev_refs[image] for image in dev_images]


def _features(model, train: TrainingSet, dev_images, config, device, cache_dir, rank, world, log):
    """With a frozen backbone, the training and dev images' features, computed once and cached: rank 0
    stores them, the other processes then read its cache. Sets ``train.features``; returns the dev
    features (rank 0) or None. Fine-tuning: the backbone goes channels-last instead (what tensor cores,
    and CPUs too, run convolutions fastest on)."""
    if config.mode != "cached":
        model.encoder.backbone.to(memory_format=torch.channels_last)
        return None
    extract = partial(cached_features, model, train.images, config.image_size, device, cache_dir, log)
    train.features = _rank_zero_first(partial(extract, config.num_workers), rank, world).to(device)
    if rank != 0:
        return None
    return cached_features(model, dev_images, config.image_size, device, cache_dir, log)


def _shuffles(seed: int, n: int, epochs_done: int) -> torch.Generator:
    """The generator of the epochs' shuffles, standing where an uninterrupted run would be now."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs_done):
        torch.randperm(n, generator=generator)
    return generator


def distributed_context(
    device: torch.device, timeout_minutes: float = DIST_TIMEOUT_MINUTES
) -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; under ``torchrun`` this joins the process group first.

    torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; each process then takes the GPU of its
    local rank (NCCL), or stays on the CPU (gloo). Without torchrun: ``(0, 1, device)``.
    ``timeout_minutes`` is how long a process waits for the others at a barrier: while rank 0 checks
    COCO's 118k images and computes their features the others wait, well past NCCL's default 10 minutes.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=timeout_minutes)
        )
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device
