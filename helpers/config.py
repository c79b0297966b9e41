"""What defines a training run: :class:`TrainConfig`, and the course's configuration for each kind of device.

A configuration is stored in every checkpoint and in a run's ``config.json``. Which part of the encoder
learns is one setting, ``train_backbone``:

- ``"none"`` (cached features, the default and the fast way): the ResNet50 backbone is frozen, so its
  pooled ``[N, 2048]`` features are computed once per image, stored on disk, and every epoch trains only
  the projection and the decoder on them;
- ``"last"`` or ``"all"`` (fine-tuning): images go through the backbone every batch, and its last block
  (``layer4``) or all of it learns too.

Which decoder reads the image is another, ``decoder``: ``"show-tell"``
(:class:`~helpers.models.Captioner`, the pooled vector as the LSTM's first input) or ``"attention"``
(:class:`~helpers.attention.AttentionCaptioner`: the grid of a frozen ResNet50 ``stage``, cached, then a
trained adapter and soft attention at every word).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

import torch

from helpers.attention import STAGES
from helpers.models import TRAIN_BACKBONE_CHOICES, resolve_weights
from helpers.presets import DEVICE_PRESETS

REAL_DATA_MIN_FREQ = 5  # the usual vocabulary threshold on real captions: rare words become <unk>
# captions per fine-tuning batch on a GPU (whole images with all their captions): as many optimizer steps
# per epoch as the fine-tuning run of benchmarks/README.md ("How well it captions") took
FINE_TUNE_GPU_BATCH = 256
# The most words a generated caption may have (<start> and <end> not counted): the decoding loops run at
# most MAX_DECODE + 1 steps, so that a caption of exactly MAX_DECODE words can still say <end>. Training
# captions have their own limit, TrainConfig.max_words.
MAX_DECODE = 25
DECODERS = ("show-tell", "attention")


@dataclass
class TrainConfig:
    """Everything that defines a training run. Stored in every checkpoint and in ``config.json``."""

    embed_size: int = 300
    hidden_size: int = 512
    num_layers: int = 1
    image_size: int = 224
    train_backbone: str = "none"  # "none" (cached features), "last" (layer4 learns) or "all"
    weights: str = "auto"  # "auto", "imagenet" or "random"
    standardize: bool = True  # standardise the pooled features before the projection (EncoderCNN)
    epochs: int = 10
    batch_size: int = 128  # captions per batch (fine-tuning: whole images, about this many captions)
    lr: float = 3e-3  # the peak of the one-cycle schedule
    backbone_lr_scale: float = 0.1  # fine-tuned backbone layers learn this much slower
    grad_clip: float = 5.0
    # None: the dataset's own (default_min_freq: 5 on real data, 1 on the shapes set), which fit stores
    min_freq: int | None = None
    max_words: int = 30  # words kept of a training caption (<start>/<end> not counted)
    max_decode: int = MAX_DECODE  # the most words a generated caption may have (<start>/<end> not counted)
    val_images: int = 500  # dev images scored after every epoch (greedy, no teacher forcing)
    seed: int = 0
    num_workers: int = 0
    dropout: float = 0.0  # in the decoder, on the LSTM's inputs and outputs; 0 leaves it out
    decoder: str = "show-tell"  # "show-tell" (pooled features) or "attention" (a grid, a map per word)
    # the attention decoder's (decoder="attention"; the show-tell decoder ignores them):
    stage: str = "layer1"  # the frozen ResNet50 stage whose grid [C, h, w] is cached
    strides: tuple[int, int] = (2, 2)  # the adapter's two 3×3 convolutions: h/(s1·s2) × w/(s1·s2) cells
    feature_size: int = 128  # D, the adapter's output per cell
    attention_size: int = 128  # A, the size of the additive attention's keys and queries
    penalty: float = 0.0  # λ of the doubly stochastic regulariser λ·Σ_i(1 − Σ_t α_ti)²

    @property
    def mode(self) -> str:
        """``"cached"`` (frozen backbone, stored features) or ``"fine-tune"``, as ``train_backbone`` says."""
        return "cached" if self.train_backbone == "none" else "fine-tune"

    @classmethod
    def for_device(cls, device: torch.device | str, **overrides) -> TrainConfig:
        """The course's configuration for a device: small and quick on a CPU, the full one on a GPU.

        CPU (``DEVICE_PRESETS["cpu"]``): images at 64 px (ResNet50's adaptive pooling accepts any size,
        and a 64 px image costs a small fraction of a 224 px one: notebook 03 measures it), cached
        features, an LSTM of 256 hidden units and 12 epochs: with fewer, colour (the attribute frozen
        random features do carry) is not yet learnt reliably. Notebook 05 and benchmarks/README.md give
        the time and scores, measured.

        GPU with ImageNet weights (``"gpu"``): 224 px, cached features, 512 hidden units, 15 epochs.
        GPU without them (``"gpu-random"``; ``weights`` ``"auto"`` is resolved here, and the result is
        stored): frozen random features do not tell a circle from a square, so the whole backbone
        is trained too, at 128 px, in batches of :data:`FINE_TUNE_GPU_BATCH`.

        Fine-tuning on a GPU (``train_backbone`` ``"last"`` or ``"all"`` among ``overrides``) takes batches
        of :data:`FINE_TUNE_GPU_BATCH` captions: the backbone's activations are kept for backpropagation.
        A batch holds whole images with all their captions, each image through the backbone once: on a
        set of five captions per image it holds about a fifth as many images, and an epoch takes about
        ``captions / FINE_TUNE_GPU_BATCH`` optimizer steps, as when each caption brought its own image.

        ``decoder="attention"`` (on any device): ``DEVICE_PRESETS["cpu-attention"]``, the recipe
        benchmarks/attention_grid.py measured (layer1 grids at 64 px, 16 cells, 8 epochs).
        """
        if overrides.get("decoder") == "attention":
            base = cls(**DEVICE_PRESETS["cpu-attention"])
            if torch.device(device).type != "cpu":
                base.num_workers = min(8, os.cpu_count() or 1)
        elif torch.device(device).type == "cpu":
            base = cls(**DEVICE_PRESETS["cpu"])
        else:
            weights = resolve_weights(overrides.get("weights", "auto"))
            chosen = "train_backbone" in overrides
            preset = "gpu-random" if weights == "random" and not chosen else "gpu"
            base = cls(**DEVICE_PRESETS[preset], weights=weights, num_workers=min(8, os.cpu_count() or 1))
            overrides = {**overrides, "weights": weights}
            if overrides.get("train_backbone", "none") != "none" and "batch_size" not in overrides:
                base.batch_size = FINE_TUNE_GPU_BATCH
        return cls.from_dict({**asdict(base), **overrides})

    def to_dict(self) -> dict:
        """The configuration as plain JSON values (``strides`` as a list), as a checkpoint and
        ``config.json`` store it; :meth:`from_dict` reads it back."""
        return {**asdict(self), "strides": list(self.strides)}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict, refusing unknown keys (a typo should not be silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
        if "strides" in values:  # (JSON stores a tuple as a list)
            values = {**values, "strides": tuple(values["strides"])}
        config = cls(**values)
        if config.train_backbone not in TRAIN_BACKBONE_CHOICES:
            raise ValueError(
                f"train_backbone must be one of {TRAIN_BACKBONE_CHOICES}, got {config.train_backbone!r}"
            )
        if not 0 <= config.dropout < 1:
            raise ValueError(f"dropout must be at least 0 and below 1, got {config.dropout}")
        if config.min_freq is not None and config.min_freq < 1:
            raise ValueError(f"min_freq must be 1 or more, got {config.min_freq}")
        _check_decoder(config)
        return config


def _check_decoder(config: TrainConfig) -> None:
    """``ValueError`` for a decoder kind, stage or strides the model cannot be built from."""
    if config.decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {config.decoder!r}")
    if config.stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {config.stage!r}")
    if len(config.strides) != 2 or min(config.strides) < 1:
        raise ValueError(f"strides must be two numbers of 1 or more, got {config.strides!r}")
    if config.decoder == "attention" and config.train_backbone != "none":
        raise ValueError(
            "the attention decoder trains on cached grids of a frozen stage: train_backbone must be "
            f"'none', got {config.train_backbone!r}"
        )
