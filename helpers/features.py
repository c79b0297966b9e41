"""The frozen backbone's features of every image, computed once and cached on disk: pooled ``[N, 2048]``
(float32) for :class:`~helpers.models.Captioner`, or the grids ``[N, C, h, w]`` of a ResNet50 stage (fp16:
8,000 scenes at 16×16×256 are about 1 GB) for :class:`~helpers.attention.AttentionCaptioner`.

:func:`extract_features` runs the backbone over image files; :func:`cached_features` reuses what an
earlier run computed while nothing the numbers depend on has changed (the key: :data:`CACHE_VERSION`, the
images, the weights, the image size and transform, the backbone's cut (for grids: the stage), the device
type and the precision).
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from helpers.attention import GridEncoder
from helpers.data import ImageFolderDataset, image_transform
from helpers.models import Captioner
from helpers.precision import autocast_dtype
from helpers.utils import atomic_save, progress_enabled

CACHE_VERSION = 2  # 2: the key names the device type and the autocast dtype


@torch.no_grad()
def extract_features(
    model: Captioner,
    paths: Sequence[str],
    image_size: int,
    device: torch.device | str,
    batch_size: int = 64,
    num_workers: int = 0,
) -> torch.Tensor:
    """Backbone features of every image: ``paths`` (N files) → ``[N, 2048]`` float32 on the CPU, or for a
    :class:`~helpers.attention.GridEncoder` the grids ``[N, C, h, w]`` in fp16 (:func:`stored_dtype`).

    ``model`` must be on ``device`` already; it is left as it was (its mode and its weights' layout).
    The backbone runs on channels-last images with channels-last weights, the layout tensor cores (and
    CPUs too) run convolutions fastest on (on a copy, unless the weights are so already), in eval mode,
    and in the reduced precision that is fast on ``device`` (:func:`autocast_dtype`).
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
    dtype, stored = autocast_dtype(device), stored_dtype(model)
    try:
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            for images in tqdm(loader, desc="features", leave=False, disable=not progress_enabled()):
                images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
                features = encoder.backbone_features(images).to(stored)
                chunks.append(features.contiguous().cpu())  # (not channels-last: rows are read one by one)
    finally:
        encoder.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, 2048, dtype=stored)


def stored_dtype(model: Captioner) -> torch.dtype:
    """How a model's backbone features are stored: fp16 for grids (a grid holds 64 or more cells per
    image: half the memory, and the adapter standardises them), float32 for pooled features."""
    return torch.float16 if isinstance(model.encoder, GridEncoder) else torch.float32


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
    kind = "grids" if isinstance(model.encoder, GridEncoder) else "features"
    path = Path(cache_dir) / f"{kind}-{key}.pt"
    if path.exists():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored["key"] == key and len(stored["features"]) == len(paths):
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
