"""Data ready for training: captions and images checked, the vocabulary, captions as tensors, shuffled
batches, and the backbone's features of every image, cached on disk.

:func:`prepare_data` reads a dataset in any supported format and leaves out what cannot be used before
training starts; :func:`encode_captions` and :func:`batches` give the tensors and the order of an epoch,
and :class:`TrainingSet` an epoch's batches; :func:`cached_features` computes the frozen backbone's
``[N, 2048]`` features once and reuses them while nothing they depend on changes.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from helpers.caption_files import Skipped, load_captions
from helpers.config import REAL_DATA_MIN_FREQ
from helpers.data import (
    IMAGE_CHECKS_FILE,
    ImageFolderDataset,
    check_images,
    image_transform,
    load_image,
    pad_captions,
)
from helpers.models import Captioner
from helpers.precision import autocast_dtype
from helpers.utils import atomic_save, progress_enabled
from helpers.vocabulary import Vocabulary

CACHE_VERSION = 1
SPLITS = ("train", "dev", "test")


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
    matter, and each is seen thousands of times), :data:`~helpers.config.REAL_DATA_MIN_FREQ` on anything
    else.

    The shapes set is recognised by the marker file :func:`helpers.scenes.make_shapes` writes into it
    (its captions are in the Flickr8k format, so the format alone cannot tell them apart).
    """
    from helpers.scenes import MARKER

    return 1 if (dataset_root(data_dir) / MARKER).is_file() else REAL_DATA_MIN_FREQ


def prepare_data(
    data_dir: Path | str,
    min_freq: int | None = None,
    log: Callable[[str], None] = print,
    splits: Sequence[str] = SPLITS,
) -> PreparedData:
    """Read a dataset in any supported format, check the images of ``splits`` once, build the vocabulary.

    Broken images are reported (with a count and reasons) and their captions left out *before* any
    training starts, so no epoch can crash halfway. Only the rows of ``splits`` are kept (``train`` needs
    train and dev, ``evaluate`` only the split it scores), and only their images are decoded: in
    parallel, with a progress bar, and remembered in ``<dataset>/.cache/image-checks.json`` until the
    files change (:func:`helpers.data.check_images`). The vocabulary comes from the training captions
    only (of images that decode, when ``splits`` includes train), with the words seen at least
    ``min_freq`` times (``None``: the dataset's own threshold, :func:`default_min_freq`).
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
    min_freq = default_min_freq(data_dir) if min_freq is None else min_freq
    vocab = Vocabulary.build(train["caption"], min_freq=min_freq)
    return PreparedData(data.format, table, skipped, vocab)


def encode_captions(
    table: pd.DataFrame, images: Sequence[str], vocab: Vocabulary, max_words: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Caption rows → ``(image_index [N], captions [N, T], lengths [N])``, ``image_index`` into ``images``."""
    position = {image: i for i, image in enumerate(images)}
    index = torch.tensor([position[image] for image in table["image"]], dtype=torch.long)
    captions, lengths = pad_captions(
        [torch.tensor(vocab.encode(c, max_words)) for c in table["caption"]]
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


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, captions [B, T], lengths [B]


@dataclass
class TrainingSet:
    """The training captions as tensors, and what each step feeds the model: the images' stored backbone
    features (``features``, with a frozen backbone), or the images themselves (fine-tuning)."""

    images: list[str]  # the training images
    image_index: torch.Tensor  # [N]: caption row → its image in ``images``
    captions: torch.Tensor  # [N, T]
    lengths: torch.Tensor  # [N]
    features: torch.Tensor | None = None  # [len(images), 2048] on the device; None: decode the images

    def batches(
        self,
        order: list[torch.Tensor],
        device: torch.device,
        image_size: int,
        num_workers: int = 0,
        label: str | None = None,
    ) -> Iterable[Batch]:
        """An epoch's ``(inputs, captions [B, T], lengths [B])`` in ``order`` (:func:`batches`), captions
        cut to each batch's longest. Inputs: stored features ``[B, 2048]``, or images ``[B, 3, S, S]``
        decoded in ``num_workers`` processes, channels-last as the fine-tuned backbone's weights are.
        ``label`` names a progress bar (None: no bar)."""
        if self.features is not None:
            inputs = (self.features[self.image_index[idx].to(device)] for idx in order)
        else:
            loader = DataLoader(
                _CaptionImages(self.images, self.image_index, image_transform(image_size)),
                batch_sampler=[b.tolist() for b in order],
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
            )
            layout = torch.channels_last
            inputs = (pixels.to(device, non_blocking=True, memory_format=layout) for pixels, _ in loader)

        def epoch():
            for idx, batch_inputs in zip(order, inputs, strict=True):
                lengths = self.lengths[idx]
                captions = self.captions[idx, : int(lengths.max())].to(device, non_blocking=True)
                yield batch_inputs, captions, lengths

        show = label is not None and progress_enabled()
        return tqdm(epoch(), total=len(order), desc=label, leave=False, disable=not show)


class _CaptionImages(Dataset):
    """Fine-tuning items: caption row ``i`` → ``(image [3, S, S], i)``, decoded in worker processes."""

    def __init__(self, images: Sequence[str], image_index: torch.Tensor, transform):
        self.images, self.image_index, self.transform = images, image_index, transform

    def __len__(self) -> int:
        return len(self.image_index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_image(self.images[int(self.image_index[i])])), i


@torch.no_grad()
def extract_features(
    model: Captioner,
    paths: Sequence[str],
    image_size: int,
    device: torch.device | str,
    batch_size: int = 64,
    num_workers: int = 0,
) -> torch.Tensor:
    """Backbone features of every image: ``paths`` (N files) → ``[N, 2048]`` float32 on the CPU.

    ``model`` must be on ``device`` already; it is left as it was (its mode and its weights' layout).
    The backbone runs on channels-last images with channels-last weights, the layout tensor cores (and,
    measured, a CPU too) run convolutions fastest on (on a copy, unless the weights are so already), in
    eval mode, and in the reduced precision that is fast on ``device`` (:func:`autocast_dtype`).
    """
    device = torch.device(device)
    encoder = model.encoder
    if not next(encoder.backbone.parameters()).is_contiguous(memory_format=torch.channels_last):
        encoder = copy.deepcopy(encoder).to(memory_format=torch.channels_last)
    was_training = encoder.training
    encoder.eval()  # BatchNorm layers that are being fine-tuned must use their running statistics here
    loader = DataLoader(
        ImageFolderDataset(paths, image_transform(image_size)),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    chunks = []
    dtype = autocast_dtype(device)
    try:
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            for images in tqdm(loader, desc="features", leave=False, disable=not progress_enabled()):
                images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
                chunks.append(encoder.backbone_features(images).float().cpu())
    finally:
        encoder.train(was_training)
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
    device: torch.device | str,
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
