"""Which grid and adapter let the attention captioner read the shapes: train and score each configuration.

    python benchmarks/attention_grid.py --stage layer1 --epochs 6 --penalty 0 1 --uniform-control

For every ResNet50 stage asked for, the frozen stage's grids of the train and test images are computed
once (fp16, cached in ``--cache`` under a name that holds the stage, image size and seed, which draws the
random weights) and reused; then for every combination of ``--epochs`` × ``--penalty`` (λ of the doubly
stochastic regulariser) an adapter (:class:`helpers.attention.GridAdapter`) and an
:class:`~helpers.attention.AttentionDecoder` are trained from the same seed on every training caption,
in batches of ``--batch-images`` images with all their captions (the adapter and the attention keys run
once per image), with Adam and the one-cycle schedule; the last epoch is scored. Scores: greedy captions
of every test image, BLEU-4 (:func:`helpers.metrics.corpus_bleu_scores`, 0–1) and every attribute
(:func:`helpers.attributes.attribute_accuracy`). ``--uniform-control`` scores the same trained model
again with every α replaced by the uniform map (the maps are used if the scores drop). Times are
seconds of CPU time of the process (on one thread: the wall time of a quiet machine), with the wall
time of this run in brackets; ``extract s`` is the time the grids of the train and test images took when
they were computed (the stored value when they are reused).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.attention import STAGES, AttentionDecoder, GridAdapter, attention_loss, frozen_stage
from helpers.attributes import attribute_accuracy, read_scenes, scenes_for
from helpers.batches import encode_captions
from helpers.data import ImageFolderDataset, image_transform
from helpers.decoding import greedy
from helpers.metrics import corpus_bleu_scores
from helpers.prepare import prepare_data
from helpers.utils import seed_everything

SCORES = ("bleu4", "colour", "count", "kind", "object", "relation", "all")


@dataclass(frozen=True)
class Recipe:
    """One configuration: the grid, the adapter, the decoder and the training schedule."""

    stage: str
    strides: tuple[int, int]
    feature_size: int
    epochs: int
    penalty: float
    embed_size: int
    hidden_size: int
    attention_size: int
    batch_images: int
    lr: float
    seed: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data/shapes", help="the shapes dataset (default: data/shapes)")
    parser.add_argument("--cache", default=None, help="where grids are kept (default: <data>/.cache/grids)")
    parser.add_argument("--stage", nargs="+", default=["layer1"], choices=STAGES)
    parser.add_argument("--strides", type=int, nargs=2, default=[2, 2], help="the adapter's two convs'")
    parser.add_argument("--feature-size", type=int, default=128, help="D, the adapter's channels")
    parser.add_argument("--epochs", type=int, nargs="+", default=[6])
    parser.add_argument("--penalty", type=float, nargs="+", default=[0.0], help="λ, one run per value")
    parser.add_argument("--embed-size", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--attention-size", type=int, default=128)
    parser.add_argument("--batch-images", type=int, default=32, help="images per batch, all their captions")
    parser.add_argument("--lr", type=float, default=4e-3, help="the peak of the one-cycle schedule")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-images", type=int, default=None, help="use only the first N (a quick look)")
    parser.add_argument("--test-images", type=int, default=None, help="score only the first N")
    parser.add_argument("--uniform-control", action="store_true", help="also score with uniform maps")
    parser.add_argument("--json", default=None, help="write every row here")
    return parser.parse_args(argv)


def extract_grids(stage: str, paths: list[str], image_size: int, seed: int) -> torch.Tensor:
    """The frozen stage's grid of every image, ``[N, C, h, w]`` in fp16 (the random weights from ``seed``)."""
    seed_everything(seed)
    backbone, _ = frozen_stage(stage, weights="random")
    backbone = backbone.to(memory_format=torch.channels_last)
    loader = DataLoader(ImageFolderDataset(paths, image_transform(image_size)), batch_size=64)
    chunks = []
    with torch.no_grad():
        for images in loader:
            chunks.append(backbone(images.to(memory_format=torch.channels_last)).half().contiguous())
    return torch.cat(chunks)


def cached_grids(stage: str, paths: list[str], args: argparse.Namespace) -> tuple[torch.Tensor, dict]:
    """:func:`extract_grids`, stored in ``args.cache`` and reused; also the seconds the extraction took
    (``{"wall": …, "cpu": …}``, CPU time of this process: on one thread, the wall time of a quiet machine)."""
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:12]
    name = f"grids-{stage}-{args.image_size}px-seed{args.seed}-{digest}.pt"
    path = Path(args.cache or Path(args.data) / ".cache" / "grids") / name
    if path.exists():
        stored = torch.load(path, weights_only=True)
        if stored["grids"].shape[0] == len(paths):
            return stored["grids"], stored["seconds"]
    started, cpu = time.perf_counter(), time.process_time()
    grids = extract_grids(stage, paths, args.image_size, args.seed)
    seconds = {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"grids": grids, "seconds": seconds}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    return grids, seconds


class Model(torch.nn.Module):
    """The trainable part: the adapter on cached grids, then the attention decoder."""

    def __init__(self, recipe: Recipe, channels: int, vocab_size: int):
        super().__init__()
        self.adapter = GridAdapter(channels, recipe.feature_size, recipe.strides)
        self.decoder = AttentionDecoder(
            recipe.feature_size, recipe.embed_size, recipe.hidden_size, vocab_size, recipe.attention_size
        )


def image_batches(n_images: int, batch_images: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A shuffled split of the image indices into batches (a last batch of one joins the one before)."""
    chunks = list(torch.randperm(n_images, generator=generator).split(batch_images))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = torch.cat([chunks[-2], chunks.pop()])
    return chunks


def train(recipe: Recipe, grids: torch.Tensor, captions, vocab_size: int) -> tuple[Model, dict]:
    """Train a :class:`Model` on ``grids [I, C, h, w]`` and ``captions`` (image_index, tokens, lengths);
    returns it in eval mode and the seconds training took (``{"wall": …, "cpu": …}``)."""
    image_index, tokens, lengths = captions
    rows_of = [[] for _ in range(grids.shape[0])]
    for row, image in enumerate(image_index.tolist()):
        rows_of[image].append(row)
    rows_of = [torch.tensor(rows) for rows in rows_of]
    seed_everything(recipe.seed)
    model = Model(recipe, grids.shape[1], vocab_size).train()
    steps = math.ceil(grids.shape[0] / recipe.batch_images) * recipe.epochs
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, recipe.lr, total_steps=steps + 1, pct_start=0.25
    )
    generator = torch.Generator().manual_seed(recipe.seed)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(recipe.epochs):
        for images in image_batches(grids.shape[0], recipe.batch_images, generator):
            counts = torch.tensor([len(rows_of[i]) for i in images.tolist()])
            rows = torch.cat([rows_of[i] for i in images.tolist()])
            local = torch.arange(len(images)).repeat_interleave(counts)  # caption → image in the batch
            n = int(lengths[rows].max())
            caps, lens = tokens[rows, :n], lengths[rows]
            logits, alphas = model.decoder(model.adapter(grids[images]), caps, lens, image_index=local)
            loss = attention_loss(logits, alphas, caps, lens, recipe.penalty)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            schedule.step()
    return model.eval(), {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu}


def caption_grids(model: Model, grids: torch.Tensor, vocab, uniform: bool = False) -> list[str]:
    """Greedy captions of ``grids [N, C, h, w]``, with learnt maps or (``uniform``) the uniform map."""
    model.decoder.uniform_attention = uniform
    captions = []
    with torch.no_grad():
        for chunk in grids.split(500):
            captions += greedy(model.decoder, model.adapter(chunk), vocab).captions
    model.decoder.uniform_attention = False
    return captions


def score(captions: list[str], references: list[list[str]], scenes) -> dict[str, float]:
    """BLEU-4 (0–1) and every attribute's accuracy of ``captions`` against the test split."""
    bleu4 = corpus_bleu_scores(references, captions)["bleu4"]
    return {"bleu4": bleu4, **attribute_accuracy(captions, scenes)}


def load_splits(args: argparse.Namespace):
    """The vocabulary, the train images and their captions, the test images, references and scenes."""
    data = prepare_data(args.data, 1, log=lambda _: None, splits=("train", "test"))
    train_images = data.images("train")[: args.train_images]
    table = data.split("train")
    table = table[table["image"].isin(set(train_images))]
    captions = encode_captions(table, train_images, data.vocab, max_words=30)
    test_images = data.images("test")[: args.test_images]
    references = data.references("test")
    scenes = scenes_for(test_images, read_scenes(args.data))
    return data.vocab, train_images, captions, test_images, [references[i] for i in test_images], scenes


def recipes(args: argparse.Namespace, stage: str) -> list[Recipe]:
    """Every ``--epochs`` × ``--penalty`` combination for one stage."""
    return [
        Recipe(stage, tuple(args.strides), args.feature_size, epochs, penalty, args.embed_size,
               args.hidden_size, args.attention_size, args.batch_images, args.lr, args.seed)
        for epochs, penalty in itertools.product(args.epochs, args.penalty)
    ]


def run(args: argparse.Namespace) -> list[dict]:
    """Train and score every configuration; one row per (configuration, maps) with times and scores."""
    torch.set_num_threads(args.threads)
    vocab, train_images, captions, test_images, references, scenes = load_splits(args)
    rows = []
    for stage in args.stage:
        grids, extract_seconds = cached_grids(stage, train_images + test_images, args)
        train_grids, test_grids = grids[: len(train_images)], grids[len(train_images) :]
        for recipe in recipes(args, stage):
            model, train_seconds = train(recipe, train_grids, captions, len(vocab))
            cells = model.adapter(test_grids[:1]).shape[1]
            base = {**asdict(recipe), "cells": cells, "threads": args.threads}
            base.update(extract_s=extract_seconds["wall"], extract_cpu_s=extract_seconds["cpu"])
            base.update(train_s=train_seconds["wall"], train_cpu_s=train_seconds["cpu"])
            for maps in ("learnt", "uniform") if args.uniform_control else ("learnt",):
                generated = caption_grids(model, test_grids, vocab, uniform=maps == "uniform")
                rows.append({**base, "maps": maps, **score(generated, references, scenes)})
                print(format_row(rows[-1]), flush=True)
    return rows


HEADER = (
    f"{'stage':6} {'cells':>5} {'D':>4} {'ep':>3} {'λ':>5} {'maps':7} {'extract s':>13} {'train s':>13} "
    + " ".join(f"{name:>8}" for name in SCORES)
)


def format_row(row: dict) -> str:
    """One line of the table, in :data:`HEADER`'s columns."""
    return (
        f"{row['stage']:6} {row['cells']:5d} {row['feature_size']:4d} {row['epochs']:3d} "
        f"{row['penalty']:5.2f} "
        f"{row['maps']:7} {row['extract_cpu_s']:5.0f} ({row['extract_s']:5.0f}) "
        f"{row['train_cpu_s']:5.0f} ({row['train_s']:5.0f}) "
        + " ".join(f"{row[name]:8.3f}" for name in SCORES)
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"threads {args.threads}, {args.image_size} px, seed {args.seed}, greedy, test split")
    print(HEADER, flush=True)
    rows = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
