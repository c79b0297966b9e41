"""Training a captioner: data preparation, feature caching, the loop, validation, checkpoints.

One :func:`fit` serves the notebooks and the command line. Two modes:

- ``"cached"`` (the default, fast): the ResNet50 backbone is frozen, so its pooled ``[N, 2048]`` features
  are computed once per image, stored on disk, and every epoch trains only the projection and the
  decoder on them.
- ``"fine-tune"``: images go through the backbone every batch and its last block (or all of it) learns.

A run folder holds ``checkpoint.pt`` (written atomically at the end of every epoch: weights as a
``state_dict``, optimiser and schedule state, the vocabulary and the configuration — never a pickled
module), plus ``vocab.json``, ``config.json`` and ``history.csv`` for people to read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from helpers.caption_files import Skipped, load_captions
from helpers.data import (
    IMAGE_CHECKS_FILE,
    ImageFolderDataset,
    check_images,
    image_transform,
    load_image,
    pad_captions,
)
from helpers.decoding import greedy
from helpers.metrics import corpus_bleu_scores
from helpers.models import Captioner, packed_loss, resolve_weights
from helpers.utils import get_device, progress_enabled, seed_everything
from helpers.vocabulary import Vocabulary

CHECKPOINT = "checkpoint.pt"
BEST_CHECKPOINT = "best.pt"  # the epoch with the best dev BLEU-4 so far: weights only, no optimiser state
RUN_FILES = (CHECKPOINT, BEST_CHECKPOINT, "vocab.json", "config.json", "history.csv")  # what fit writes
RESUMABLE = ("epochs", "num_workers")  # what a resumed run takes from a new configuration
CACHE_VERSION = 1
SPLITS = ("train", "dev", "test")
REAL_DATA_MIN_FREQ = 5  # the usual vocabulary threshold on real captions: rare words become <unk>
FINE_TUNE_GPU_BATCH = 64  # captions (each with its image) per fine-tuning batch on a GPU; see for_device
DIST_TIMEOUT_MINUTES = 60.0  # how long torchrun's processes wait for each other; see distributed_context
# The course's configuration per kind of device (TrainConfig.for_device explains the choice). Plain literals,
# so that the command line's --help can show them without importing torch (which takes seconds).
# "gpu-random": a GPU without ImageNet weights, where frozen random features cannot tell shapes apart.
DEVICE_PRESETS = {
    "cpu": {"image_size": 64, "hidden_size": 256, "epochs": 12, "batch_size": 128, "lr": 4e-3},
    "gpu": {"image_size": 224, "hidden_size": 512, "epochs": 15, "batch_size": 256, "lr": 3e-3},
    "gpu-random": {
        "image_size": 128,
        "hidden_size": 512,
        "epochs": 15,
        "batch_size": 64,
        "lr": 3e-3,
        "mode": "fine-tune",
        "train_backbone": "all",
    },
}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Stored in every checkpoint and in ``config.json``."""

    embed_size: int = 300
    hidden_size: int = 512
    num_layers: int = 1
    image_size: int = 224
    mode: str = "cached"  # "cached" or "fine-tune"
    train_backbone: str = "last"  # with mode="fine-tune": "last" (layer4) or "all"
    weights: str = "auto"  # "auto", "imagenet" or "random"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3  # the peak of the one-cycle schedule
    backbone_lr_scale: float = 0.1  # fine-tuned backbone layers learn this much slower
    grad_clip: float = 5.0
    min_freq: int = 1  # train's default: 5 on real data, 1 on the shapes set (default_min_freq)
    max_words: int = 30
    max_decode: int = 25
    val_images: int = 500  # dev images scored after every epoch (greedy, no teacher forcing)
    seed: int = 0
    num_workers: int = 0
    dropout: float = 0.0  # in the decoder, on the LSTM's inputs and outputs; 0 leaves it out

    @classmethod
    def for_device(cls, device: torch.device | str, **overrides) -> TrainConfig:
        """The course's configuration for a device: small and quick on a CPU, the full one on a GPU.

        CPU (``DEVICE_PRESETS["cpu"]``): images at 64 px (ResNet50's adaptive pooling accepts any size,
        and a 64 px image costs a small fraction of a 224 px one: notebook 03 measures it), cached
        features, an LSTM of 256 hidden units and 12 epochs: with fewer, colour (the attribute frozen
        random features do carry) is not yet learnt reliably. Notebook 05 and benchmarks/README.md give
        the measured time and scores.

        GPU with ImageNet weights (``"gpu"``): 224 px, cached features, 512 hidden units, 15 epochs.
        GPU without them (``"gpu-random"``; ``weights`` ``"auto"`` is resolved here, and the result is
        stored): frozen random features do not tell a circle from a square, so the whole backbone
        is trained too, at 128 px, in batches of :data:`FINE_TUNE_GPU_BATCH`.

        Fine-tuning on a GPU (``mode="fine-tune"`` among ``overrides``) takes batches of
        :data:`FINE_TUNE_GPU_BATCH`: every caption then sends its image through the backbone, whose
        activations are kept for backpropagation, and 256 images at 224 px do not fit a 16 GB T4.
        """
        if torch.device(device).type == "cpu":
            base = cls(**DEVICE_PRESETS["cpu"])
        else:
            weights = resolve_weights(overrides.get("weights", "auto"))
            preset = "gpu-random" if weights == "random" and "mode" not in overrides else "gpu"
            base = cls(**DEVICE_PRESETS[preset], weights=weights, num_workers=min(8, os.cpu_count() or 1))
            overrides = {**overrides, "weights": weights}
            if overrides.get("mode") == "fine-tune" and "batch_size" not in overrides:
                base.batch_size = FINE_TUNE_GPU_BATCH
        return cls.from_dict({**asdict(base), **overrides})

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict, refusing unknown keys (a typo should not be silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
        config = cls(**values)
        if config.mode not in ("cached", "fine-tune"):
            raise ValueError(f"mode must be 'cached' or 'fine-tune', got {config.mode!r}")
        if not 0 <= config.dropout < 1:
            raise ValueError(f"dropout must be at least 0 and below 1, got {config.dropout}")
        if config.min_freq < 1:
            raise ValueError(f"min_freq must be 1 or more, got {config.min_freq}")
        return config


@dataclass
class PreparedData:
    """Captions and images ready for training: only rows whose image decodes are kept."""

    format: str
    table: pd.DataFrame  # image, caption, split
    skipped: list[Skipped]
    vocab: Vocabulary

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name].reset_index(drop=True)

    def images(self, name: str) -> list[str]:
        """The unique images of a split, in file order."""
        return list(dict.fromkeys(self.split(name)["image"]))

    def references(self, name: str) -> dict[str, list[str]]:
        """Image → its captions, for BLEU."""
        return self.split(name).groupby("image", sort=False)["caption"].apply(list).to_dict()


def dataset_root(data_dir: Path | str) -> Path:
    """The folder a dataset lives in: ``data_dir`` itself, or the folder of a caption file given by path
    (Karpathy's ``dataset_coco.json``). Caches go in its ``.cache/``: beside the dataset, never "under" a
    file.
    """
    path = Path(data_dir).expanduser()
    return path.parent if path.is_file() else path


def default_min_freq(data_dir: Path | str) -> int:
    """The vocabulary threshold ``train`` uses unless told: 1 on the offline shapes set (all 40-odd words
    matter, and each is seen thousands of times), :data:`REAL_DATA_MIN_FREQ` on anything else.

    The shapes set is recognised by the marker file :func:`helpers.scenes.make_shapes` writes into it
    (its captions are in the Flickr8k format, so the format alone cannot tell them apart).
    """
    from helpers.scenes import MARKER

    return 1 if (dataset_root(data_dir) / MARKER).is_file() else REAL_DATA_MIN_FREQ


def prepare_data(
    data_dir: Path | str,
    min_freq: int = 1,
    log: Callable[[str], None] = print,
    splits: Sequence[str] = SPLITS,
) -> PreparedData:
    """Read a dataset in any supported format, check the images of ``splits`` once, build the vocabulary.

    Broken images are reported (with a count and reasons) and their captions left out *before* any
    training starts, so no epoch can crash halfway. Only the rows of ``splits`` are kept (``train`` needs
    train and dev, ``evaluate`` only the split it scores), and only their images are decoded: in
    parallel, with a progress bar, and remembered in ``<dataset>/.cache/image-checks.json`` until the
    files change (:func:`helpers.data.check_images`). The vocabulary comes from the training captions
    only (of images that decode, when ``splits`` includes train).
    """
    data = load_captions(data_dir)
    used = data.table[data.table["split"].isin(list(splits))]
    readable, broken = check_images(
        list(dict.fromkeys(used["image"])),
        cache_file=dataset_root(data_dir) / ".cache" / IMAGE_CHECKS_FILE,
        progress=progress_enabled(),
        log=log,
    )
    table = used[used["image"].isin(set(readable))].reset_index(drop=True)
    skipped = list(data.skipped) + broken
    log(
        f"Read {table['image'].nunique()} images and {len(table)} captions ({data.format}); "
        f"skipped {len(skipped)} item(s)" + (":" if skipped else ".")
    )
    for item in skipped[:5]:
        log(f"  skipped {item.item}: {item.reason}")
    if len(skipped) > 5:
        log(f"  ... and {len(skipped) - 5} more")
    # (without train among the splits, e.g. for evaluate, the vocabulary comes from every train caption)
    train = (table if "train" in splits else data.table).query("split == 'train'")
    if train.empty and "train" in splits:
        raise ValueError(f"{data_dir}: no usable training captions left")
    vocab = Vocabulary.build(train["caption"], min_freq=min_freq)
    return PreparedData(data.format, table, skipped, vocab)


FAST_BF16_CAPABILITY = (8, 0)
"""CUDA compute capability from which bf16 and TF32 run on tensor cores (Ampere: A100, RTX 30xx, L4, H100)."""


def _capability(device: torch.device) -> tuple[int, int]:
    """The CUDA compute capability of ``device`` (a T4 is ``(7, 5)``); ``(0, 0)`` when not a CUDA device."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return (0, 0)
    return tuple(torch.cuda.get_device_capability(device))


def use_bf16(device: torch.device) -> bool:
    """bf16 autocast only where it measurably helps the ResNet50 forward.

    On CUDA, only from compute capability 8.0: below that (a T4 is 7.5) cuDNN has no fast bf16
    convolutions, and bf16 would take PyTorch's slow path; fp16 is used there instead
    (:func:`autocast_dtype`). On a CPU it helps only with AMX units (about 3× on such a CPU); on CPUs
    without them it was measured *20× slower* than fp32 here, so plain fp32 is used.
    """
    if device.type == "cuda":
        return _capability(device) >= FAST_BF16_CAPABILITY
    return device.type == "cpu" and "AMX" in torch.backends.cpu.get_cpu_capability()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision that runs fast on ``device``, or ``None`` for plain fp32.

    bf16 where :func:`use_bf16` says so; fp16 on older CUDA GPUs (a T4's tensor cores run fp16 only);
    ``None`` elsewhere (CPUs without AMX, Apple's MPS).
    """
    if use_bf16(device):
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else None


def training_precision(device: torch.device, mode: str) -> tuple[torch.dtype | None, str]:
    """How :func:`fit` runs its training steps on ``device`` in ``mode``: ``(autocast dtype or None, why)``.

    - fp16 autocast on CUDA below compute capability 8.0 (a T4), in both modes: such a GPU has no TF32,
      and fp16 is what its tensor cores run; :func:`fit` then scales the loss (``torch.amp.GradScaler``)
      so that small fp16 gradients do not round to zero.
    - bf16 autocast from 8.0 when fine-tuning: the backbone's convolutions dominate, and bf16 has fp32's
      range, so no scaling is needed. With cached features the decoder stays fp32 with TF32 products
      (measured: 0.44 s for a Flickr8k-sized epoch on an H200).
    - fp32 on a CPU or MPS.
    """
    cap = _capability(device)
    if device.type != "cuda":
        return None, f"fp32 (on {device.type}, reduced precision would not be faster for training)"
    name = f"compute capability {cap[0]}.{cap[1]}"
    if cap < FAST_BF16_CAPABILITY:
        return torch.float16, f"fp16 autocast with gradient scaling ({name}: no fast bf16 or TF32 below 8.0)"
    if mode == "fine-tune":
        return torch.bfloat16, f"bf16 autocast ({name}: bf16 tensor cores)"
    return None, f"fp32 with TF32 matrix products ({name}; the backbone's features are extracted in bf16)"


def use_tf32(device: torch.device) -> bool:
    """On a CUDA GPU that has TF32 (compute capability 8.0 and up), let float32 matrix products use it;
    returns whether it did.

    PyTorch already does this for convolutions, not for matrix products. The decoder is mostly matrix
    products (the LSTM's gates, the vocabulary layer), so this is where its GPU time goes. TF32 keeps
    float32's range with a 10-bit mantissa: plenty for training. A global PyTorch setting, so a run
    where it does not apply (a CPU, a T4) leaves it alone.
    """
    if device.type != "cuda" or _capability(device) < FAST_BF16_CAPABILITY:
        return False
    torch.set_float32_matmul_precision("high")
    return True


@torch.no_grad()  # not inference_mode: the channels-last copy of the weights must stay usable for training
def extract_features(
    model: Captioner,
    paths: Sequence[str],
    image_size: int,
    device: torch.device,
    batch_size: int = 64,
    num_workers: int = 0,
) -> torch.Tensor:
    """Backbone features of every image: ``paths`` (N files) → ``[N, 2048]`` float32 on the CPU."""
    device = torch.device(device)
    backbone = model.encoder.backbone.eval()
    was_channels_last = next(backbone.parameters()).is_contiguous(memory_format=torch.channels_last)
    backbone.to(device, memory_format=torch.channels_last)
    loader = DataLoader(
        ImageFolderDataset(paths, image_transform(image_size)),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    chunks = []
    dtype = autocast_dtype(device)
    with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for images in tqdm(loader, desc="features", leave=False, disable=not progress_enabled()):
            images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
            chunks.append(backbone(images).flatten(1).float().cpu())
    if not was_channels_last:  # (fine-tuning keeps its backbone channels-last throughout)
        backbone.to(memory_format=torch.contiguous_format)
    return torch.cat(chunks) if chunks else torch.empty(0, 2048)


def _fingerprint(model: Captioner, paths: Sequence[str], image_size: int) -> str:
    """A key that changes when the images, the transform or the backbone's weights change."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{image_size}".encode())
    for path in paths:  # resolved: "data/x.png" from the repository and its absolute path are one image
        stat = os.stat(path)
        digest.update(f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for tensor in model.encoder.backbone.state_dict().values():
        digest.update(tensor.detach().cpu().flatten()[:64].numpy().tobytes())
    return digest.hexdigest()[:20]


def cached_features(
    model: Captioner,
    paths: Sequence[str],
    image_size: int,
    device: torch.device,
    cache_dir: Path | str | None,
    log: Callable[[str], None] = print,
    num_workers: int = 0,
) -> torch.Tensor:
    """:func:`extract_features`, stored in ``cache_dir`` and reused while nothing it depends on changed.

    The file is written to a temporary name and renamed only when complete, and checked on reading
    (key and row count), so a cache left half-written by an interrupted run is rebuilt, never used.
    """
    device = torch.device(device)
    if cache_dir is None:
        return extract_features(model, paths, image_size, device, num_workers=num_workers)
    key = _fingerprint(model, paths, image_size)
    path = Path(cache_dir) / f"features-{key}.pt"
    if path.exists():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored["key"] == key and stored["features"].shape == (len(paths), 2048):
                log(f"Reusing cached features for {len(paths)} images ({path.name}).")
                return stored["features"]
        except Exception:  # a damaged cache is rebuilt below; it holds nothing that cannot be recomputed
            pass
        log(f"Cached features in {path.name} are incomplete or damaged: computing them again.")
    path.parent.mkdir(parents=True, exist_ok=True)  # a cache that cannot be written fails now, not in an hour
    start = time.perf_counter()
    features = extract_features(model, paths, image_size, device, num_workers=num_workers)
    atomic_save({"key": key, "features": features}, path)
    log(
        f"Computed features for {len(paths)} images in {time.perf_counter() - start:.1f} s, "
        f"cached as {path.name}."
    )
    return features


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    The rename is atomic, so ``path`` always holds either the previous complete file or the new one,
    even if the process is killed or the disk fills up while writing.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def encode_captions(
    table: pd.DataFrame, images: Sequence[str], vocab: Vocabulary, max_words: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Caption rows → ``(image_index [N], captions [N, T], lengths [N])``, ``image_index`` into ``images``."""
    position = {image: i for i, image in enumerate(images)}
    index = torch.tensor([position[image] for image in table["image"]], dtype=torch.long)
    captions, lengths = pad_captions(
        [torch.tensor(vocab.encode(c, max_len=max_words)) for c in table["caption"]]
    )
    return index, captions, lengths


def batches(
    n: int, batch_size: int, generator: torch.Generator, rank: int = 0, world: int = 1
) -> list[torch.Tensor]:
    """A shuffled split of ``range(n)`` into batches; a last batch of one joins the one before it.

    (BatchNorm cannot train on one example, and dropping it would silently lose data.) With ``world``
    processes, process ``rank`` takes every ``world``-th example of the same shuffle; the shuffle is
    padded by wrapping around so every process gets the same number of batches, as DistributedSampler
    does.
    """
    order = torch.randperm(n, generator=generator)
    if world > 1:
        padded = math.ceil(n / world) * world
        order = torch.cat([order, order[: padded - n]])[rank::world]
    chunks = list(order.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = torch.cat([chunks[-1], last])
    return chunks


def evaluate_bleu(
    model: Captioner,
    features: torch.Tensor,
    references: Sequence[Sequence[str]],
    vocab: Vocabulary,
    device: torch.device,
    max_len: int = 25,
) -> tuple[dict[str, float], list[str]]:
    """Greedy captions from backbone features ``[N, 2048]`` (no teacher forcing) and their BLEU-1…4."""
    hypotheses = decode_features(model, features, vocab, device, max_len=max_len)
    return corpus_bleu_scores(references, hypotheses), hypotheses


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


def build_model(config: TrainConfig, vocab_size: int, weights: str | None = None) -> Captioner:
    """The captioner a configuration describes (``weights`` overrides ``config.weights``)."""
    return Captioner(
        vocab_size,
        config.embed_size,
        config.hidden_size,
        config.num_layers,
        weights=weights or config.weights,
        train_backbone=config.train_backbone if config.mode == "fine-tune" else "none",
        dropout=config.dropout,
    )


def load_run(
    run_dir: Path | str, device: torch.device | str = "cpu", checkpoint: str = "last"
) -> tuple[Captioner, Vocabulary, TrainConfig]:
    """The trained model of a run folder, in eval mode, with its vocabulary and configuration.

    ``checkpoint="last"`` reads ``checkpoint.pt`` (the last completed epoch, what ``--resume`` continues);
    ``"best"`` reads ``best.pt`` (the epoch with the best dev BLEU-4).
    """
    if checkpoint not in ("last", "best"):
        raise ValueError(f"checkpoint must be 'last' or 'best', got {checkpoint!r}")
    state = load_checkpoint(Path(run_dir) / (CHECKPOINT if checkpoint == "last" else BEST_CHECKPOINT), device)
    config = TrainConfig.from_dict(state["config"])
    vocab = Vocabulary(state["vocab"][4:])
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
    return model.to(device).eval(), vocab, config


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model (eval mode), its vocabulary, and the epoch table."""

    model: Captioner
    vocab: Vocabulary
    config: TrainConfig
    history: pd.DataFrame
    data: PreparedData


class _TrainStep(nn.Module):
    """What one training step runs, as one module (so DistributedDataParallel can wrap it).

    Cached mode: pooled backbone features ``[B, 2048]`` → projection → decoder. Fine-tuning: images
    ``[B, 3, S, S]`` → the whole encoder → decoder. Either way: ``→ the loss`` (:func:`packed_loss`: the
    value of ``sequence_loss``, without scoring padding).
    """

    def __init__(self, model: Captioner, cached: bool):
        super().__init__()
        self.model, self.cached = model, cached

    def forward(self, inputs: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        encoder = self.model.encoder
        features = encoder.project_features(inputs) if self.cached else encoder(inputs)
        return packed_loss(self.model.decoder, features, captions, lengths)


class _CaptionImages(Dataset):
    """Fine-tuning items: caption row ``i`` → ``(image [3, S, S], i)``, decoded in worker processes."""

    def __init__(self, images: Sequence[str], image_index: torch.Tensor, transform):
        self.images, self.image_index, self.transform = images, image_index, transform

    def __len__(self) -> int:
        return len(self.image_index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_image(self.images[int(self.image_index[i])])), i


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


def make_optimizer(
    model: Captioner, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR]:
    """Adam over what trains, and the one-cycle schedule over ``config.epochs`` epochs.

    Two parameter groups: the encoder's head (projection, BatchNorm) with the decoder at ``config.lr``,
    and the backbone's unfrozen layers, if any, at ``config.lr × config.backbone_lr_scale``.
    """
    encoder_head = list(model.encoder.project.parameters()) + list(model.encoder.bn.parameters())
    groups = [{"params": encoder_head + list(model.decoder.parameters()), "lr": config.lr}]
    backbone_params = [p for p in model.encoder.backbone.parameters() if p.requires_grad]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": config.lr * config.backbone_lr_scale})
    optimizer = torch.optim.Adam(groups)
    return optimizer, one_cycle(optimizer, config, steps_per_epoch)


def one_cycle(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int, done_steps: int = 0
) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule of a ``config.epochs``-epoch run, standing after ``done_steps`` steps.

    ``done_steps > 0`` is for a run resumed with more (or fewer) epochs than it was started with: from
    there on, each step gets the learning rate an uninterrupted run of ``config.epochs`` epochs gives
    it. (The optimiser must then hold its saved state, where OneCycleLR keeps each group's rates.)
    """
    # (a few steps more than needed: OneCycleLR cannot build its two phases from a handful of steps)
    steps = max(8, (steps_per_epoch + 1) * config.epochs)
    peaks = [config.lr, config.lr * config.backbone_lr_scale][: len(optimizer.param_groups)]
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=peaks, total_steps=steps, pct_start=0.25, last_epoch=done_steps - 1
    )


def existing_run(run_dir: Path) -> dict | None:
    """The checkpoint of the run in ``run_dir``, or None where there is none; refuses a folder that is no run.

    ``ValueError`` (one line, naming the path) when ``run_dir`` is a file, when its ``checkpoint.pt`` is
    not a checkpoint of this course, or when it holds ``vocab.json``, ``config.json`` or ``history.csv``
    without a checkpoint: :func:`fit` would overwrite files it did not write.
    """
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
    taken (more epochs: see :func:`one_cycle`; DataLoader workers). Any other setting in which
    ``wanted`` differs is named in one ``log`` line as ignored.
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


def _epoch_inputs(order, cached: bool, train_features, image_index, loader_items, config, device):
    """One epoch's ``(caption rows, inputs)`` per step: stored features, or images from a DataLoader."""
    if cached:
        return ((idx, train_features[image_index[idx].to(device)]) for idx in order)
    loader = DataLoader(
        loader_items,
        batch_sampler=[b.tolist() for b in order],
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    layout = torch.channels_last  # as the fine-tuned backbone's weights are (see fit)
    return ((idx, pixels.to(device, non_blocking=True, memory_format=layout)) for pixels, idx in loader)


def fit(
    data_dir: Path | str,
    run_dir: Path | str,
    config: TrainConfig | None = None,
    device: str = "auto",
    resume: bool = False,
    cache_dir: Path | str | None = None,
    log: Callable[[str], None] = print,
    dist_timeout: float = DIST_TIMEOUT_MINUTES,
    overwrite: bool = True,
) -> FitResult:
    """Train a captioner on ``data_dir`` and write the run to ``run_dir``.

    ``config=None`` takes :meth:`TrainConfig.for_device` (with :func:`default_min_freq`).
    ``resume=True`` continues from the last completed epoch in ``run_dir``, with its saved configuration
    and vocabulary; of a ``config`` given with it, only more ``epochs`` and ``num_workers`` are taken,
    other differences are named in a line as ignored (:func:`resume_config`). A run already in
    ``run_dir`` is otherwise replaced, with a line saying so (re-running a notebook retrains its own
    run), unless ``overwrite=False``, which refuses (``ValueError``), as ``python -m helpers train`` does
    without ``--overwrite``. Files ``fit`` did not write are never overwritten (:func:`existing_run`).
    ``cache_dir`` stores backbone features between runs (default: ``.cache/`` in the dataset's folder,
    :func:`dataset_root`). Under ``torchrun`` every process trains on its own share of each epoch
    (DistributedDataParallel); only rank 0 validates, logs and writes; the others wait for its image
    checks and features at most ``dist_timeout`` minutes. Precision follows the device
    (:func:`training_precision`). Every epoch rewrites ``checkpoint.pt``; an epoch with a better dev
    BLEU-4 than all before it also writes ``best.pt``.
    """
    run_dir = Path(run_dir)
    rank, world, device = distributed_context(get_device(device), dist_timeout)
    if rank != 0:
        log = _silent
    state = existing_run(run_dir)
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
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    if state:
        config = resume_config(TrainConfig.from_dict(state["config"]), config, log)
    config = config or TrainConfig.for_device(device, min_freq=default_min_freq(data_dir))
    processes = f", {world} processes" if world > 1 else ""
    use_tf32(device)
    amp_dtype, precision = training_precision(device, config.mode)
    log(
        f"Device: {device}{processes}. Precision: {precision}. Mode: {config.mode}, "
        f"images at {config.image_size} px, {config.epochs} epochs."
    )

    seed_everything(config.seed)
    for turn in (0, 1) if world > 1 else (0,):  # rank 0 checks the images; the others then read its cache
        if (rank == 0) == (turn == 0):
            data = prepare_data(data_dir, config.min_freq, log=log, splits=("train", "dev"))
        if world > 1:
            dist.barrier()
    vocab = Vocabulary(state["vocab"][4:]) if state else data.vocab
    model = build_model(config, len(vocab), weights="random" if state else None).to(device)
    if state:
        model.load_state_dict(state["model"])
    weights = state["weights"] if state else model.encoder.weights
    log(f"Encoder weights: {weights}. Vocabulary: {len(vocab)} words.")

    train_images, dev_images = data.images("train"), data.images("dev")[: config.val_images]
    if not dev_images:
        raise ValueError(f"{data_dir}: the dev split is empty; validation needs it")
    dev_refs = data.references("dev")
    references = [dev_refs[image] for image in dev_images]
    image_index, captions, lengths = encode_captions(
        data.split("train"), train_images, vocab, config.max_words
    )

    cache_dir = dataset_root(data_dir) / ".cache" if cache_dir is None else cache_dir
    cached = config.mode == "cached"
    if cached:  # rank 0 computes and stores the features; the other processes then read the cache
        for turn in (0, 1) if world > 1 else (0,):
            if (rank == 0) == (turn == 0):
                train_features = cached_features(
                    model, train_images, config.image_size, device, cache_dir, log, config.num_workers
                )
            if world > 1:
                dist.barrier()
        train_features, loader_items = train_features.to(device), None
    else:  # channels-last: what tensor cores (and, measured, a CPU too) run convolutions fastest on
        model.encoder.backbone.to(memory_format=torch.channels_last)
        train_features = None
        loader_items = _CaptionImages(train_images, image_index, image_transform(config.image_size))
    dev_features = None
    if rank == 0:
        dev_features = cached_features(
            model, dev_images, config.image_size, device, cache_dir if cached else None, log
        )

    step_module = _TrainStep(model, cached)
    if world > 1:
        step_module = DistributedDataParallel(
            step_module, device_ids=[device] if device.type == "cuda" else None
        )
    per_process = math.ceil(len(captions) / world)
    steps_per_epoch = math.ceil(per_process / config.batch_size)
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch)
    # fp16 gradients can underflow to zero: the scaler multiplies the loss first and divides it back out
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    history: list[dict] = []
    start_epoch = 1
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, start_epoch = list(state["history"]), int(state["epoch"]) + 1
        log(f"Resuming after epoch {state['epoch']} of {config.epochs}.")
        planned = int(state["config"]["epochs"])
        if config.epochs < start_epoch:
            log(f"Nothing left to train: the run has {state['epoch']} epochs; ask for more with --epochs.")
        elif config.epochs != planned:
            scheduler = one_cycle(optimizer, config, steps_per_epoch, done_steps=scheduler.last_epoch)
            log(
                f"The run was started for {planned} epochs; it now trains to {config.epochs}, and the "
                f"learning rate follows the one-cycle schedule of a {config.epochs}-epoch run from here on."
            )
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(start_epoch - 1):  # the same shuffles as an uninterrupted run
        torch.randperm(len(captions), generator=generator)

    for epoch in range(start_epoch, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        # loss sum and caption count, kept on the device: reading them every step would make the CPU
        # wait for the GPU each time, instead of queueing the next step while the GPU works
        totals = torch.zeros(2, dtype=torch.float64, device=device)
        order = batches(len(captions), config.batch_size, generator, rank, world)
        steps_iter = _epoch_inputs(order, cached, train_features, image_index, loader_items, config, device)
        progress = tqdm(
            steps_iter,
            total=len(order),
            desc=f"epoch {epoch}",
            leave=False,
            disable=rank != 0 or not progress_enabled(),
        )
        for idx, inputs in progress:
            batch_lengths = lengths[idx]
            batch_captions = captions[idx, : int(batch_lengths.max())].to(device, non_blocking=True)
            autocast_on = amp_dtype is not None
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=autocast_on):
                loss = step_module(inputs, batch_captions, batch_lengths)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)  # (skipped, with a smaller scale next time, if a gradient overflowed)
            scaler.update()
            scheduler.step()
            totals[0] += loss.detach() * len(idx)
            totals[1] += len(idx)
        if world > 1:
            dist.all_reduce(totals)
        if rank == 0:
            if not cached:
                dev_features = extract_features(model, dev_images, config.image_size, device)
            scores, _ = evaluate_bleu(model, dev_features, references, vocab, device, config.max_decode)
            row = {
                "epoch": epoch,
                "train_loss": float(totals[0] / totals[1]),
                **{f"dev_{name}": value for name, value in scores.items()},
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            }
            best = row["dev_bleu4"] > max((h["dev_bleu4"] for h in history), default=-1.0)
            history.append(row)
            save_run(
                run_dir, model, optimizer, scheduler, epoch, vocab, config, history, weights, best, scaler
            )
            log(
                f"epoch {epoch}/{config.epochs}  loss {row['train_loss']:.3f}  "
                f"dev BLEU-4 {row['dev_bleu4']:.3f}  ({row['seconds']:.1f} s)"
            )
        if world > 1:
            dist.barrier()
    return FitResult(model.eval(), vocab, config, pd.DataFrame(history), data)


def _silent(_: str) -> None:
    """The log of processes other than rank 0."""


def save_run(
    run_dir: Path,
    model,
    optimizer,
    scheduler,
    epoch,
    vocab,
    config,
    history,
    weights: str,
    best: bool = False,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write the checkpoint atomically, then the human-readable files beside it.

    ``best``: this epoch's dev score beats every earlier one, so its weights also go to ``best.pt``
    (without the optimiser's state, which only resuming needs, and which would double the file).
    """
    run = {
        "model": model.state_dict(),
        "epoch": epoch,
        "vocab": vocab.itos,
        "config": asdict(config),
        "weights": weights,
        "history": history,
    }
    atomic_save(
        {
            **run,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        },
        run_dir / CHECKPOINT,
    )
    if best:
        atomic_save(run, run_dir / BEST_CHECKPOINT)
    vocab.save(run_dir / "vocab.json")
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    pd.DataFrame(history).to_csv(run_dir / "history.csv", index=False)


def decode_features(
    model: Captioner,
    features: torch.Tensor,
    vocab: Vocabulary,
    device: torch.device,
    beam: int = 1,
    max_len: int = 25,
    batch_size: int = 500,
) -> list[str]:
    """Captions for backbone features ``[N, 2048]``: greedy when ``beam == 1``, else beam search."""
    from helpers.decoding import beam_search

    model.eval()
    captions = []
    with torch.no_grad():
        for chunk in features.split(batch_size):
            embedded = model.encoder.project_features(chunk.to(device))
            if beam == 1:
                captions += greedy(model.decoder, embedded, vocab, max_len=max_len).captions
            else:
                captions += beam_search(model.decoder, embedded, vocab, beam=beam, max_len=max_len).captions
    return captions


def evaluate_split(
    model: Captioner,
    vocab: Vocabulary,
    config: TrainConfig,
    data: PreparedData,
    split: str = "test",
    beam: int = 1,
    device: torch.device | str = "cpu",
    cache_dir: Path | str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, float], pd.DataFrame]:
    """BLEU-1…4 (0–1) of a trained model on every image of a split, and a table of its captions.

    The table has one row per image: ``image``, ``generated``, ``references`` (a list).
    """
    device = torch.device(device)
    images = data.images(split)
    if not images:
        raise ValueError(f"the {split!r} split has no usable images")
    references = data.references(split)
    features = cached_features(model, images, config.image_size, device, cache_dir, log)
    generated = decode_features(model, features, vocab, device, beam=beam, max_len=config.max_decode)
    refs = [references[image] for image in images]
    table = pd.DataFrame({"image": images, "generated": generated, "references": refs})
    return corpus_bleu_scores(refs, generated), table
