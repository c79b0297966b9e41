"""Fine-tuning batched by image against batched by caption: one training epoch each, on the same captions.

Fine-tuning (``train_backbone="last"`` or ``"all"``) sends images through the backbone at every step.
Batched by caption, each caption brings its own copy of its image, so an image with five captions goes
through the backbone five times an epoch. Batched by image (what ``fit`` does,
:class:`helpers.batches.TrainingSet`), a batch holds whole images with all their captions: each image
goes through once, and its captions share its features.

    python benchmarks/fine_tune.py [--images 200] [--image-size 64] [--batch-size 128] [--repeats 3]

Both sides run ``fit``'s step (:class:`helpers.training.TrainStep` in :func:`helpers.training.train_epoch`)
on the same model, built the same way, with about the same number of captions per batch. Each side is
warmed up with one batch, then the sides are timed alternately and the medians printed
(``common.compare``, as in ``benchmarks/run.py``), with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

# `python benchmarks/fine_tune.py` puts benchmarks/ first on the path, not the repository: add it
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DEFAULT_DATA, Side, compare, load_train_captions, machine, median  # noqa: E402
from helpers.batches import TrainingSet, batches, encode_captions  # noqa: E402
from helpers.config import DEVICE_PRESETS, TrainConfig  # noqa: E402
from helpers.data import ImageFolderDataset, image_transform  # noqa: E402
from helpers.runs import build_model  # noqa: E402
from helpers.training import TrainStep, make_optimizer, train_epoch  # noqa: E402
from helpers.utils import get_device  # noqa: E402

CPU = DEVICE_PRESETS["cpu"]


@dataclass
class FineTuneSizes:
    """What a run measures: the first ``images`` training scenes with all their captions."""

    images: int = 200
    image_size: int = CPU["image_size"]
    batch_size: int = CPU["batch_size"]  # captions per batch, as TrainConfig counts them
    embed_size: int = 300
    hidden_size: int = CPU["hidden_size"]
    train_backbone: str = "last"
    num_workers: int = 0
    repeats: int = 3


class FineTuneBench:
    """One fine-tuning epoch over the same captions: by caption (an image per caption) vs by image."""

    def __init__(self, data_dir: Path, sizes: FineTuneSizes, device: torch.device):
        self.sizes, self.device = sizes, device
        captions = load_train_captions(data_dir, 0, sizes.batch_size)
        images = list(dict.fromkeys(captions.images))[: sizes.images]
        table = pd.DataFrame({"image": captions.images, "caption": captions.texts})
        table = table[table["image"].isin(set(images))]
        self.config = TrainConfig(
            embed_size=sizes.embed_size,
            hidden_size=sizes.hidden_size,
            image_size=sizes.image_size,
            batch_size=sizes.batch_size,
            train_backbone=sizes.train_backbone,
            weights="random",  # speed does not depend on the weights, and nothing is downloaded
        )
        encoded = encode_captions(table, images, captions.vocab, self.config.max_words)
        self.train = TrainingSet(images, *encoded)  # no features: fine-tuning, batched by image
        self.by_caption_step, self.by_caption_opt = self._step(len(captions.vocab))
        self.by_image_step, self.by_image_opt = self._step(len(captions.vocab))
        self.generator = torch.Generator().manual_seed(0)

    def _step(self, vocab_size: int) -> tuple[TrainStep, torch.optim.Optimizer]:
        """A fine-tuning step and its optimiser, as ``fit`` builds them (channels-last backbone)."""
        torch.manual_seed(0)
        model = build_model(self.config, vocab_size).to(self.device)
        model.encoder.backbone.to(memory_format=torch.channels_last)
        optimizer, _ = make_optimizer(model, self.config, steps_per_epoch=1)
        return TrainStep(model, cached=False), optimizer

    def by_caption_epoch(self, limit: int | None = None) -> None:
        """Batches of ``batch_size`` captions, each with its own copy of its image."""
        train, device = self.train, self.device
        order = batches(len(train.captions), self.sizes.batch_size, self.generator)[:limit]
        per_caption = [train.images[int(i)] for i in train.image_index]
        loader = DataLoader(
            ImageFolderDataset(per_caption, image_transform(self.sizes.image_size)),
            batch_sampler=[b.tolist() for b in order],
            num_workers=self.sizes.num_workers,
        )
        inputs = (
            (
                (pixels.to(device, memory_format=torch.channels_last), torch.arange(len(idx), device=device)),
                train.captions[idx, : int(train.lengths[idx].max())].to(device),
                train.lengths[idx],
            )
            for idx, pixels in zip(order, loader, strict=True)
        )
        train_epoch(self.by_caption_step, inputs, self.by_caption_opt, self.config.grad_clip)

    def by_image_epoch(self, limit: int | None = None) -> None:
        """``fit``'s batches: whole images, about ``batch_size`` captions each (:class:`TrainingSet`)."""
        train = self.train
        order = batches(train.examples, train.per_batch(self.sizes.batch_size), self.generator)[:limit]
        inputs = train.batches(order, self.device, self.sizes.image_size, self.sizes.num_workers)
        train_epoch(self.by_image_step, inputs, self.by_image_opt, self.config.grad_clip)

    def sides(self) -> list[Side]:
        return [
            Side("by_caption", self.by_caption_epoch, lambda: self.by_caption_epoch(limit=1)),
            Side("by_image", self.by_image_epoch, lambda: self.by_image_epoch(limit=1)),
        ]


def run_fine_tune(sizes: FineTuneSizes, data_dir: Path, device: torch.device) -> dict[str, object]:
    """Both epochs' medians and their ratio, with what was measured and on what."""
    result: dict[str, object] = {"machine": machine(device), "sizes": asdict(sizes)}
    bench = FineTuneBench(data_dir, sizes, device)
    samples, _ = compare(bench.sides(), sizes.repeats, device)
    by_caption, by_image = median(samples["by_caption"]), median(samples["by_image"])
    result.update(
        images=len(bench.train.images),
        captions=len(bench.train.captions),
        images_per_batch=bench.train.per_batch(sizes.batch_size),
        by_caption_epoch_s=by_caption,
        by_image_epoch_s=by_image,
        speedup_by_image_vs_by_caption=by_caption / by_image,
        samples_s=samples,
    )
    result["machine"]["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return result


def report(result: dict) -> str:
    """The readable lines: what ran, on what, both epoch times and their ratio."""
    m, s = result["machine"], result["sizes"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), {m['device']}"]
    if m.get("load_average_start") is not None:
        start, end = m["load_average_start"], m["load_average_end"]
        lines.append(f"Load average: {start:.1f} at start, {end:.1f} at end.")
    lines += [
        f"Fine-tuning ({s['train_backbone']}) one epoch: {result['images']} images, {result['captions']} "
        f"captions, {s['image_size']} px, batches of {s['batch_size']} captions "
        f"({result['images_per_batch']} images by image); medians of {s['repeats']} alternating repetitions.",
        f"  by caption (each caption's image through the backbone): {result['by_caption_epoch_s']:.2f} s",
        f"  by image (each image once, its captions share it):      {result['by_image_epoch_s']:.2f} s",
        f"  ratio: {result['speedup_by_image_vs_by_caption']:.1f}x",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    defaults = FineTuneSizes()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=defaults.images, help="training scenes (default 200)")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="pixels (default 64)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="captions per batch")
    parser.add_argument("--fine-tune", default="last", choices=["last", "all"], help="what learns")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed epochs per side")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="default: cpu")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shapes dataset (drawn if missing)")
    args = parser.parse_args(argv)
    os.environ.setdefault("CAPTION_PROGRESS", "0")
    sizes = FineTuneSizes(
        images=args.images,
        image_size=args.image_size,
        batch_size=args.batch_size,
        train_backbone=args.fine_tune,
        repeats=args.repeats,
    )
    print(report(run_fine_tune(sizes, args.data, get_device(args.device))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
