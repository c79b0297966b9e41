"""The training epoch: the textbook pipeline (a DataLoader that reads and transforms every image every
batch, the frozen ResNet50 forward under no_grad, then the step) against the course's (backbone features
computed once, each step indexes them, then the same step), per epoch and with the one-time extraction
spread over the course's epochs for the device.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from benchmarks.common import (
    GRAD_CLIP,
    Captions,
    Row,
    Side,
    Sizes,
    bench_captions,
    cached_epoch,
    measure,
    model_and_optimizer,
    seconds_text,
    timed_with_peak,
)
from helpers.batches import encode_captions
from helpers.data import CaptionDataset, collate_captions, image_transform
from helpers.features import extract_features
from helpers.training import TrainStep, train_epoch


class TrainingBench:
    """One training epoch over the same captions: textbook (images every batch) vs cached features."""

    def __init__(self, captions: Captions, sizes: Sizes, device: torch.device):
        self.sizes, self.device = sizes, device
        vocab = captions.vocab
        self.dataset = CaptionDataset(
            captions.images, captions.texts, vocab, image_transform(sizes.image_size), sizes.max_words
        )
        self.images = list(dict.fromkeys(captions.images))
        table = pd.DataFrame({"image": captions.images, "caption": captions.texts})
        self.image_index, self.captions, self.lengths = encode_captions(
            table, self.images, vocab, sizes.max_words
        )
        self.textbook, self.textbook_opt = model_and_optimizer(len(vocab), sizes, device)
        self.cached, self.cached_opt = model_and_optimizer(len(vocab), sizes, device)
        self.textbook_step = TrainStep(self.textbook, cached=False)  # images through the whole encoder
        self.cached_step = TrainStep(self.cached, cached=True)
        self.generator = torch.Generator().manual_seed(0)
        self.features: torch.Tensor | None = None

    def textbook_epoch(self, limit: int | None = None) -> None:
        """Every batch: read and transform its images, ResNet50 forward (frozen, no_grad), then the step."""
        loader = DataLoader(
            self.dataset,
            batch_size=self.sizes.batch_size,
            shuffle=True,
            num_workers=self.sizes.num_workers,
            collate_fn=collate_captions,
            pin_memory=self.device.type == "cuda",
            generator=self.generator,
        )
        # (train_epoch puts the model in training mode; its frozen backbone stays in eval: EncoderCNN.train)
        # (each caption's image is its own: image_of is 0, 1, 2, ...)
        inputs = (
            (
                (images.to(self.device, non_blocking=True), torch.arange(len(images), device=self.device)),
                captions.to(self.device),
                lengths,
            )
            for images, captions, lengths in itertools.islice(loader, limit)
        )
        train_epoch(self.textbook_step, inputs, self.textbook_opt, GRAD_CLIP)

    def extract(self) -> None:
        """The cached side's one-time cost: backbone features of every image, ``[images, 2048]``."""
        self.features = extract_features(
            self.cached, self.images, self.sizes.image_size, self.device, num_workers=self.sizes.num_workers
        ).to(self.device)

    def cached_epoch(self, limit: int | None = None) -> None:
        """Every batch: index the stored features, then projection and the same step."""
        if self.features is None:
            self.extract()
        cached_epoch(
            self.cached_step,
            self.cached_opt,
            self.features,
            self.image_index,
            self.captions,
            self.lengths,
            self.sizes.batch_size,
            self.generator,
            limit,
        )

    def sides(self) -> list[Side]:
        """The textbook epoch, the cached epoch, and the cached side's extraction, timed like the others.

        Extraction gets no warm-up of its own: :func:`run_benchmarks` runs it once, cold, beforehand.
        """
        return [
            Side("textbook", self.textbook_epoch, lambda: self.textbook_epoch(limit=1)),
            Side(
                "cached",
                self.cached_epoch,
                lambda: self.cached_epoch(limit=1),
                once=lambda: (self.extract(), self.cached_epoch()),
            ),
            Side("extract", self.extract, lambda: None),
        ]


def run(sizes: Sizes, data_dir: Path, device: torch.device, log: Callable[[str], None]) -> tuple[dict, dict]:
    """Time both epochs and the extraction; ``(result keys train_*, raw samples)``."""
    captions = bench_captions("train", sizes, data_dir)
    log(f"training epoch: {len(captions.texts)} captions of {len(set(captions.images))} images ...")
    train = TrainingBench(captions, sizes, device)
    extract_s, extract_peak = timed_with_peak(train.extract, device)
    times, peaks, samples = measure(train, sizes, device)
    if peaks["cached"] is not None and extract_peak is not None:  # CUDA: the features stay on the GPU
        features_mb = train.features.numel() * train.features.element_size() / 2**20
        peaks["cached"] = max(extract_peak, features_mb + peaks["cached"])
    # the one-time extraction, spread over the course's epochs for the device; its median, like the others
    amortised = times["cached"] + times["extract"] / sizes.epochs
    result = dict(
        train_captions=len(captions.texts),
        train_image_size=sizes.image_size,
        train_images=len(train.images),
        train_textbook_epoch_s=times["textbook"],
        train_cached_epoch_s=times["cached"],
        train_cached_extract_s=times["extract"],
        train_cached_extract_cold_s=extract_s,
        train_amortised_over_epochs=sizes.epochs,
        train_cached_amortised_epoch_s=amortised,
        # the target's figure is per epoch; amortised, the speed-up can never pass
        # (captions per image) x epochs, however fast the cached epoch is: extraction reads each image once
        train_speedup_cached_vs_textbook=times["textbook"] / times["cached"],
        train_speedup_cached_vs_textbook_per_epoch=times["textbook"] / times["cached"],
        train_speedup_cached_vs_textbook_amortised=times["textbook"] / amortised,
        train_textbook_peak_mb=peaks["textbook"],
        train_cached_peak_mb=peaks["cached"],
    )
    return result, samples


def rows(result: dict) -> list[Row]:
    """The table's lines for this comparison: per epoch, then with the extraction amortised."""
    textbook, peak = result["train_textbook_epoch_s"], result["train_textbook_peak_mb"]
    extraction = seconds_text(result["train_cached_extract_s"])
    return [
        Row(
            f"training epoch ({result['train_captions']} captions, {result['train_image_size']} px)",
            "textbook",
            textbook,
            peak,
            "cached, per epoch",
            result["train_cached_epoch_s"],
            result["train_cached_peak_mb"],
            "train_speedup_cached_vs_textbook",
        ),
        Row(
            f"  + extraction {extraction} / {result['train_amortised_over_epochs']} epochs (caching)",
            "textbook",
            textbook,
            None,
            "cached, amortised",
            result["train_cached_amortised_epoch_s"],
            None,
            "train_speedup_cached_vs_textbook_amortised",
        ),
    ]
