"""The two GPU-scale checks of ``--extras`` (``gpu.sh``): a cached decoder epoch on a Flickr8k-sized caption
set, and the JPEG loader end to end.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from benchmarks.common import Side, Sizes, cached_epoch, compare, median, model_and_optimizer
from helpers.config import TrainConfig
from helpers.data import ImageFolderDataset, image_transform
from helpers.training import TrainStep


def flickr_scale_decoder(sizes: Sizes, device: torch.device) -> dict[str, float]:
    """Cached-feature training on a Flickr8k-sized caption set: captions/s and seconds per epoch.

    Synthetic: ``flickr_images`` random ``[2048]`` features, ``flickr_captions`` random captions of
    10–24 tokens (Flickr8k's are 12 on average) over ``flickr_vocab`` words; the course's cached epoch.
    """
    generator = torch.Generator().manual_seed(0)
    n = sizes.flickr_captions
    lengths = torch.randint(10, 25, (n,), generator=generator)
    captions = torch.randint(4, sizes.flickr_vocab, (n, int(lengths.max())), generator=generator)
    captions *= torch.arange(captions.shape[1]) < lengths.unsqueeze(1)
    image_index = torch.randint(0, sizes.flickr_images, (n,), generator=generator)
    features = torch.randn(sizes.flickr_images, 2048, generator=generator).to(device)
    model, optimizer = model_and_optimizer(sizes.flickr_vocab, sizes, device)
    step = TrainStep(model, cached=True)

    def epoch(limit: int | None = None) -> None:
        cached_epoch(
            step, optimizer, features, image_index, captions, lengths, sizes.flickr_batch, generator, limit
        )

    samples, _ = compare([Side("epoch", epoch, lambda: epoch(limit=2))], sizes.repeats, device)
    seconds = median(samples["epoch"])
    return {"flickr_decoder_epoch_s": seconds, "flickr_decoder_captions_s": n / seconds}


def _write_jpeg(args: tuple[Path, int, int, int]) -> str:
    """One photo-like JPEG (smooth colour fields plus grain), deterministic from its index."""
    path, index, width, height = args
    rng = np.random.default_rng(index)
    coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-12, 13, size=(height, width, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    return str(path)


def jpeg_loader_throughput(sizes: Sizes, device: torch.device) -> dict[str, float]:
    """Images/s through the real DataLoader (workers, the real transform at 224 px) to the device."""
    from multiprocessing import Pool

    workers = TrainConfig.for_device(device).num_workers or 0
    with tempfile.TemporaryDirectory(prefix="bench-jpegs-") as folder:
        jobs = [
            (Path(folder) / f"{i:05d}.jpg", i, sizes.jpeg_width, sizes.jpeg_height)
            for i in range(sizes.jpeg_images)
        ]
        with Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
            paths = pool.map(_write_jpeg, jobs, chunksize=64)
        loader = DataLoader(
            ImageFolderDataset(paths, image_transform(sizes.encoder_size)),
            batch_size=min(256, len(paths)),
            num_workers=workers,
            pin_memory=device.type == "cuda",
        )

        def one_pass():
            for images in loader:
                images.to(device, non_blocking=True)

        samples, _ = compare([Side("pass", one_pass, lambda: None)], sizes.repeats, device)
    seconds = median(samples["pass"])
    return {"loader_img_s_jpeg": len(paths) / seconds, "loader_workers": workers}


def summary(result: dict) -> str:
    return (
        f"Flickr8k-sized cached epoch: {result['flickr_decoder_epoch_s']:.2f} s "
        f"({result['flickr_decoder_captions_s']:,.0f} captions/s); JPEG loader "
        f"{result['loader_img_s_jpeg']:,.0f} img/s with {result['loader_workers']} workers"
    )
