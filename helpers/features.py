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
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from helpers.caption_files import Skipped, load_captions
from helpers.config import REAL_DATA_MIN_FREQ
from helpers.data import (
    IMAGE_CHECKS_FILE,
    ImageFolderDataset,
    check_images,
    image_transform,
    pad_captions,
)
from helpers.models import Captioner
from helpers.precision import autocast_dtype
from helpers.utils import atomic_save, progress_enabled
from helpers.vocabulary import Vocabulary

CACHE_VERSION = 2  # 2: the key names the device type and the autocast dtype
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


# inputs, captions [B, T], lengths [B]; inputs: features [B, 2048], or (images [I, 3, S, S], image_of [B])
Batch = tuple[torch.Tensor | tuple[torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]


@dataclass
class TrainingSet:
    """The training captions as tensors, and what each step feeds the model: the images' stored backbone
    features (``features``, with a frozen backbone), or the images themselves (fine-tuning).

    Fine-tuning batches whole images (an epoch shuffles images, not captions): each image goes through
    the backbone once per step, and all its captions share its features."""

    images: list[str]  # the training images
    image_index: torch.Tensor  # [N]: caption row → its image in ``images``
    captions: torch.Tensor  # [N, T]
    lengths: torch.Tensor  # [N]
    features: torch.Tensor | None = None  # [len(images), 2048] on the device; None: decode the images

    def __post_init__(self):
        counts = torch.bincount(self.image_index, minlength=len(self.images))
        # caption rows grouped by image: image i's rows are _rows[_starts[i] : _starts[i] + _counts[i]]
        self._counts, self._starts = counts, counts.cumsum(0) - counts
        self._rows = torch.argsort(self.image_index, stable=True)

    @property
    def examples(self) -> int:
        """What an epoch shuffles and splits into batches (:func:`batches`): caption rows with stored
        features, images when fine-tuning."""
        return len(self.captions) if self.features is not None else len(self.images)

    def per_batch(self, batch_size: int) -> int:
        """Examples per batch for ``batch_size`` captions: that many caption rows with stored features;
        when fine-tuning, as many images as hold about ``batch_size`` captions (2 at least, for
        BatchNorm)."""
        if self.features is not None:
            return batch_size
        return max(2, round(batch_size * len(self.images) / len(self.captions)))

    def caption_rows(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images [I]`` (indices into ``self.images``) → ``(rows [B], image_of [B])``: every caption row
        of those images, grouped by image, and each row's image as a position in ``images``."""
        counts = self._counts[images]
        image_of = torch.repeat_interleave(torch.arange(len(images)), counts)
        within = torch.arange(len(image_of)) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        return self._rows[self._starts[images][image_of] + within], image_of

    def batches(
        self,
        order: list[torch.Tensor],
        device: torch.device,
        image_size: int,
        num_workers: int = 0,
        label: str | None = None,
    ) -> Iterable[Batch]:
        """An epoch's ``(inputs, captions [B, T], lengths [B])`` in ``order`` (:func:`batches` of
        :attr:`examples`), captions cut to each batch's longest. With stored features ``order`` holds
        caption rows and inputs are their features ``[B, 2048]``. Fine-tuning, it holds images, and
        inputs are ``(images [I, 3, S, S], image_of [B])``: the images, decoded in ``num_workers``
        processes, channels-last as the fine-tuned backbone's weights are, and each caption's image as
        a position among them. ``label`` names a progress bar (None: no bar)."""
        if self.features is not None:
            rows = order
            inputs = (self.features[self.image_index[idx].to(device)] for idx in order)
        else:
            grouped = [self.caption_rows(images) for images in order]
            rows, image_of = [r for r, _ in grouped], [of for _, of in grouped]
            loader = DataLoader(
                ImageFolderDataset(self.images, image_transform(image_size)),
                batch_sampler=[b.tolist() for b in order],
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
            )
            layout = torch.channels_last
            inputs = (
                (pixels.to(device, non_blocking=True, memory_format=layout), of.to(device, non_blocking=True))
                for pixels, of in zip(loader, image_of, strict=True)
            )

        def epoch():
            for idx, batch_inputs in zip(rows, inputs, strict=True):
                lengths = self.lengths[idx]
                captions = self.captions[idx, : int(lengths.max())].to(device, non_blocking=True)
                yield batch_inputs, captions, lengths

        show = label is not None and progress_enabled()
        return tqdm(epoch(), total=len(order), desc=label, leave=False, disable=not show)


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


def _fingerprint(
    model: Captioner, paths: Sequence[str], image_size: int, device: torch.device, dtype: torch.dtype | None
) -> str:
    """A key that changes with everything that changes the features: the images, the transform, the
    backbone (its layers up to the cut, and its weights), and the device type and autocast ``dtype``
    (``None``: fp32) they are computed in. bf16 on a GPU and fp32 on a CPU give other numbers."""
    backbone = model.encoder.backbone
    setting = f"v{CACHE_VERSION}:{image_transform(image_size)!r}:{backbone!r}:{device.type}:{dtype}"
    digest = hashlib.sha256(setting.encode())
    for path in paths:  # resolved: "data/x.png" from the repository and its absolute path are one image
        stat = os.stat(path)
        digest.update(f"{os.path.realpath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
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
    key = _fingerprint(model, paths, image_size, device, autocast_dtype(device))
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
