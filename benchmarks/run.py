"""The course's pipeline against the textbook way of doing the same work, on the same data, in one run.

"The textbook" is how the classic captioning tutorials (yunjey/pytorch-tutorial, and the lessons that
follow it) do each job: a DataLoader that reads and transforms every image at 224 px every batch, one
training example per caption prefix, a greedy loop that re-feeds the whole caption at every step.

    python benchmarks/run.py [--quick] [--json PATH] [--device cpu|cuda|auto] [--extras]

Four measurements, each on the offline shapes dataset (``data/shapes``, drawn if missing) with the sizes
the course trains with on this device (:meth:`helpers.config.TrainConfig.for_device`):

- training epoch: the textbook pipeline (a DataLoader that reads and transforms every image every batch,
  the frozen ResNet50 forward under no_grad, then projection + decoder step) against the course's
  (backbone features computed once, each step indexes them, then the same projection + decoder step),
  per epoch and with the extraction amortised over the course's epochs for the device;
- loss: the textbook's prefix → next-word loss (one forward per prefix) against all positions at once;
- decoding: the textbook's greedy loop (re-feeds the caption) and carried-state greedy, each one image at a
  time and batched: the whole speed-up, and carrying state and batching each on its own;
- encoder throughput: ResNet50 images/s at 224 px in fp32, channels-last, and bf16 where it helps.

Every comparison warms both sides up, then alternates them (A B, B A, …) so that a slow spell of a busy
machine hits both, and reports medians. Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above
what was allocated before; elsewhere, after all the timing, each side runs once more in a fresh
process (forked from one new Python that imported everything) that reports how far its resident set
(RSS) rose above where it stood before the work began. ``benchmarks/README.md``
explains why each comparison is fair.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader

# `python benchmarks/run.py` puts benchmarks/ first on the path, not the repository: add it, so the script
# also runs where the course is not pip-installed (a GPU machine with its own PyTorch, say).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.caption_files import load_captions
from helpers.config import TrainConfig
from helpers.data import CaptionDataset, ImageFolderDataset, collate_captions, image_transform
from helpers.decoding import greedy, greedy_naive
from helpers.features import batches, encode_captions, extract_features
from helpers.models import Captioner, DecoderRNN, EncoderCNN, packed_loss, prefix_loss, sequence_loss
from helpers.precision import use_bf16, use_tf32
from helpers.scenes import TOKEN_FILE, make_shapes
from helpers.training import TrainStep, train_epoch
from helpers.utils import get_device
from helpers.vocabulary import Vocabulary

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "data" / "shapes"
TARGETS = {  # on the course's 2-core reference CPU
    "train_speedup_cached_vs_textbook": 30.0,
    "decode_speedup_batched_vs_naive": 20.0,
    "loss_speedup_full_vs_prefix": 5.0,
}


@dataclass
class Sizes:
    """What a run measures. ``sizes_for`` gives the quick and full sets; the tests use a toy one."""

    embed_size: int = 300
    hidden_size: int = 512
    batch_size: int = 128
    image_size: int = 224  # training images (the textbook's size); the encoder check uses encoder_size
    epochs: int = 6  # the course's epochs on this device: the one-time extraction is spread over them
    num_workers: int = 0
    max_words: int = 30
    train_captions: int = 512  # the first N training captions (whole images, 5 captions each); 0 = all
    decode_images: int = 64
    decode_max_len: int = 20
    encoder_size: int = 224
    encoder_batch: int = 8
    bf16_on_cpu: bool = False  # measure bf16 once on a CPU without AMX anyway, to show why it is off
    repeats: int = 3
    memory: bool = True
    # --extras (gpu.sh): a Flickr8k-sized caption set and a JPEG loader
    flickr_captions: int = 40_000
    flickr_images: int = 8_000
    flickr_vocab: int = 8_000
    flickr_batch: int = 512
    jpeg_images: int = 8_000
    jpeg_width: int = 500
    jpeg_height: int = 375


def sizes_for(device: torch.device, quick: bool) -> Sizes:
    """The quick (< 2 min on a 2-core CPU) or full sizes, with the course's model sizes for ``device``.

    Both train at the textbook's 224 px: that is the pipeline the classic tutorial runs, and the one
    caching replaces. (At the CPU configuration's 64 px a ResNet50 forward costs a twelfth of its
    multiply-adds at 224 px, which caps the ratio: README, "Why training is compared at 224 px".)
    """
    config = TrainConfig.for_device(device)
    cpu = device.type != "cuda"
    return Sizes(
        embed_size=config.embed_size,
        hidden_size=config.hidden_size,
        batch_size=config.batch_size,
        image_size=224,
        epochs=config.epochs,
        num_workers=config.num_workers,
        max_words=config.max_words,
        # quick: one batch of 50 captions (10 images), because the textbook side's ResNet50 at 224 px is
        # slow on a CPU and runs 5 times (warm-up, 3 repetitions, memory); README: "Figures the code's
        # comments rest on".
        train_captions=(50 if quick else 512) if cpu else 0,
        encoder_batch=(8 if quick else 32) if cpu else 128,
        bf16_on_cpu=not quick,
        flickr_batch=config.batch_size if cpu else 512,
    )


# ---------------------------------------------------------------------------------------------------------
# Timing and memory
# ---------------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, all device work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def timed_with_peak(fn: Callable[[], object], device: torch.device) -> tuple[float, float | None]:
    """:func:`timed`, and on CUDA also the peak memory ``fn`` allocated above what was there before."""
    if device.type != "cuda":
        return timed(fn, device), None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    seconds = timed(fn, device)
    return seconds, (torch.cuda.max_memory_allocated(device) - before) / 2**20


def _status_kb(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in kB (None where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_rise_mb(fn: Callable[[], object]) -> float:
    """How far this process's peak resident memory rises above its current level while ``fn`` runs.

    On Linux the peak is reset first (``/proc/self/clear_refs``), so it is the peak of ``fn`` alone.
    Elsewhere ``ru_maxrss`` is used, which can only say something when ``fn`` sets a new peak. Memory
    freed earlier is first handed back to the system (``malloc_trim``), so that ``fn`` cannot reuse
    it unseen.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    before = _status_kb("VmRSS")
    try:
        # reset VmHWM (and ru_maxrss) to the current RSS
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
        reset = True
    except OSError:
        reset = False
    if not reset or before is None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            before //= 1024  # macOS reports bytes
    fn()
    peak = _status_kb("VmHWM") if reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
    return max(0, peak - before) / 1024


@dataclass
class Side:
    """One way of doing the work: ``run`` is one timed repetition, ``once`` what the memory check runs."""

    name: str
    run: Callable[[], object]
    warmup: Callable[[], object]
    once: Callable[[], object] | None = None


def compare(
    sides: list[Side], repeats: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, float | None]]:
    """Warm every side up, then time them in alternating order.

    Returns ``({name: [seconds per repetition]}, {name: peak MB on CUDA, else None})``.
    """
    for side in sides:
        side.warmup()
    samples: dict[str, list[float]] = {side.name: [] for side in sides}
    peaks: dict[str, float | None] = {side.name: None for side in sides}
    for rep in range(repeats):
        shift = rep % len(sides)
        for side in sides[shift:] + sides[:shift]:  # A B, B A, … (rotated for three sides)
            seconds, peak = timed_with_peak(side.run, device)
            samples[side.name].append(seconds)
            if peak is not None:
                peaks[side.name] = max(peak, peaks[side.name] or 0.0)
    return samples, peaks


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------------------------------------------
# The data: the shapes dataset's training captions
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Captions:
    """The first ``n`` training captions: one image path and one caption text per row."""

    images: list[str]  # per caption
    texts: list[str]
    vocab: Vocabulary  # from the whole training split, as the course builds it


def bench_captions(bench: str, sizes: Sizes, data_dir: Path) -> Captions:
    """The captions a comparison uses: ``train_captions`` for training; at least a batch for the others."""
    n = sizes.train_captions
    if bench != "train" and n:
        n = max(n, sizes.batch_size)
    return load_train_captions(data_dir, n, sizes.batch_size)


def load_train_captions(data_dir: Path, n: int, batch_size: int) -> Captions:
    """The first ``n`` training captions of ``data_dir`` (all when ``n`` is 0), drawing the set if missing.

    A final batch of one would break BatchNorm in the textbook loader, so such a count loses one caption.
    """
    if not (data_dir / TOKEN_FILE).exists():
        print(f"Drawing the shapes dataset in {data_dir} (once) ...", flush=True)
        make_shapes(data_dir)
    table = load_captions(data_dir).table
    train = table[table["split"] == "train"].reset_index(drop=True)
    vocab = Vocabulary.build(train["caption"])
    rows = train if n == 0 else train.iloc[:n]
    if len(rows) % batch_size == 1:
        rows = rows.iloc[:-1]
    return Captions(list(rows["image"]), list(rows["caption"]), vocab)


# ---------------------------------------------------------------------------------------------------------
# The comparisons
# ---------------------------------------------------------------------------------------------------------


GRAD_CLIP = TrainConfig.grad_clip  # the course's: both training sides run fit's step (train_epoch)


def cached_epoch(
    step: TrainStep,
    optimizer,
    features: torch.Tensor,
    image_index: torch.Tensor,
    captions: torch.Tensor,
    lengths: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    limit: int | None = None,
) -> None:
    """The course's epoch (:func:`helpers.training.train_epoch`, as ``fit`` runs it): index stored
    features, then the step (projection, decoder, packed loss, backward, clip, update).

    ``step``: a cached :class:`~helpers.training.TrainStep`; ``features [images, 2048]`` on the device,
    ``image_index [N]`` into them, ``captions [N, T]``, ``lengths [N]``; ``limit`` stops after that many
    batches (the warm-up).
    """
    device = features.device
    inputs = (
        (
            features[image_index[idx].to(device)],
            captions[idx, : int(lengths[idx].max())].to(device, non_blocking=True),
            lengths[idx],
        )
        for idx in batches(len(captions), batch_size, generator)[:limit]
    )
    train_epoch(step, inputs, optimizer, GRAD_CLIP)


def _model_and_optimizer(vocab_size: int, sizes: Sizes, device: torch.device):
    """A captioner with a frozen backbone, and Adam over what trains (projection, BatchNorm, decoder).

    Random weights: speed does not depend on them, and nothing has to be downloaded.
    """
    torch.manual_seed(0)
    model = Captioner(vocab_size, sizes.embed_size, sizes.hidden_size, weights="random").to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.Adam(trainable, lr=1e-3)


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
        self.textbook, self.textbook_opt = _model_and_optimizer(len(vocab), sizes, device)
        self.cached, self.cached_opt = _model_and_optimizer(len(vocab), sizes, device)
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
        inputs = (
            (images.to(self.device, non_blocking=True), captions.to(self.device), lengths)
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


class LossBench:
    """Forward + backward of the loss on one batch: the textbook's prefix loss vs all positions at once."""

    def __init__(self, captions: Captions, sizes: Sizes, device: torch.device):
        self.device = device
        vocab = captions.vocab
        torch.manual_seed(0)
        self.decoder = DecoderRNN(sizes.embed_size, sizes.hidden_size, len(vocab)).to(device)
        table = pd.DataFrame({"image": captions.images, "caption": captions.texts}).iloc[: sizes.batch_size]
        _, padded, self.lengths = encode_captions(
            table, list(dict.fromkeys(table["image"])), vocab, sizes.max_words
        )
        self.captions = padded.to(device)
        self.features = torch.randn(len(self.lengths), sizes.embed_size, device=device, requires_grad=True)

    def full(self) -> torch.Tensor:
        logits = self.decoder(self.features, self.captions, self.lengths)
        return sequence_loss(logits, self.captions, self.lengths.to(self.device))

    def prefix(self) -> torch.Tensor:
        return prefix_loss(self.decoder, self.features, self.captions, self.lengths)

    def packed(self) -> torch.Tensor:
        return packed_loss(self.decoder, self.features, self.captions, self.lengths)

    def _backward(self, loss_fn: Callable[[], torch.Tensor]) -> None:
        self.decoder.zero_grad(set_to_none=True)
        self.features.grad = None
        loss_fn().backward()

    def agree(self) -> tuple[bool, float, float, float]:
        """The three losses on the same batch, and whether they are equal (``allclose``)."""
        with torch.no_grad():
            full, prefix, packed = self.full(), self.prefix(), self.packed()
        same = all(torch.allclose(full, other, rtol=1e-4, atol=1e-5) for other in (prefix, packed))
        return same, float(full), float(prefix), float(packed)

    def sides(self) -> list[Side]:
        prefix, full = (lambda: self._backward(self.prefix)), (lambda: self._backward(self.full))
        packed = lambda: self._backward(self.packed)  # noqa: E731
        return [Side("prefix", prefix, prefix), Side("full", full, full), Side("packed", packed, packed)]


class DecodeBench:
    """Greedy captions for a batch of images, four ways, to separate the two speed-ups of the course's loop.

    The textbook's loop re-feeds the whole caption every step (``greedy_naive``); the course's carries the
    LSTM state (``greedy``). Each runs one image at a time and as one batch: carrying state alone, and
    batching alone, are each one ratio. The decoder is untrained, and its ``<end>`` score is pushed far
    down so it never says ``<end>``: every loop runs exactly ``max_len + 1`` word steps for every image.
    """

    def __init__(self, captions: Captions, sizes: Sizes, device: torch.device):
        self.vocab, self.max_len = captions.vocab, sizes.decode_max_len
        torch.manual_seed(0)
        self.decoder = DecoderRNN(sizes.embed_size, sizes.hidden_size, len(self.vocab)).to(device).eval()
        with torch.no_grad():
            self.decoder.linear.bias[self.vocab.end_id] = -1e4
        self.features = torch.randn(sizes.decode_images, sizes.embed_size, device=device)

    def _one_by_one(self, decode) -> list[list[int]]:
        return [
            decode(self.decoder, self.features[i : i + 1], self.vocab, self.max_len).ids[0]
            for i in range(len(self.features))
        ]

    def naive(self) -> list[list[int]]:
        """The textbook's loop: re-feed the caption so far, one image at a time."""
        return self._one_by_one(greedy_naive)

    def carried(self) -> list[list[int]]:
        """State carried, one image at a time."""
        return self._one_by_one(greedy)

    def naive_batched(self) -> list[list[int]]:
        """Re-feed the caption so far, all images as one batch."""
        return greedy_naive(self.decoder, self.features, self.vocab, self.max_len).ids

    def batched(self) -> list[list[int]]:
        """The course: state carried, all images as one batch."""
        return greedy(self.decoder, self.features, self.vocab, self.max_len).ids

    def sides(self) -> list[Side]:
        """No separate warm-up: the check that all give the same captions runs each side first."""
        return [
            Side(name, getattr(self, name), lambda: None) for name in BENCH_SIDES["decode"]
        ]


BENCHES = {"train": TrainingBench, "loss": LossBench, "decode": DecodeBench}
BENCH_SIDES = {
    "train": ("textbook", "cached", "extract"),
    "loss": ("prefix", "full", "packed"),
    "decode": ("naive", "carried", "naive_batched", "batched"),
}


def child_memories(
    specs: list[tuple[str, str]], sizes: Sizes, data_dir: Path
) -> dict[tuple[str, str], float]:
    """Run each ``(comparison, side)`` once in a fresh process; ``{spec: MB its RSS rose}``.

    One new Python imports PyTorch and the course (seconds: see README), then forks one process per side,
    before any tensor work: each starts from the same clean state without importing again. Where there
    is no ``fork`` (Windows), each side gets a Python of its own.
    """
    joined = ",".join(f"{bench}:{side}" for bench, side in specs)
    if hasattr(os, "fork"):
        groups = [joined]
    else:
        groups = [f"{bench}:{side}" for bench, side in specs]
    peaks: dict[tuple[str, str], float] = {}
    for group in groups:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", group, "--sizes"]
        command += [json.dumps(asdict(sizes)), "--data", str(data_dir), "--device", "cpu"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"memory check {group} failed:\n{result.stderr[-2000:]}")
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                peaks[tuple(record["spec"].split(":"))] = float(record["peak_mb"])
    missing = [spec for spec in specs if spec not in peaks]
    if missing:
        raise RuntimeError(f"memory check: no figure came back for {missing}")
    return peaks


def _measure_side(spec: str, sizes: Sizes, captions: Captions) -> float:
    """Set up one comparison as the parent does, run one side once; how far the RSS rose (MB)."""
    bench_name, side_name = spec.split(":")
    bench = BENCHES[bench_name](captions, sizes, torch.device("cpu"))
    side = next(s for s in bench.sides() if s.name == side_name)
    return rss_rise_mb(side.once or side.run)


def run_children(specs: str, sizes: Sizes, data_dir: Path) -> None:
    """The fresh process of :func:`child_memories`: one forked process per side, all at once.

    A process's peak is its own, whatever runs beside it; the timing is over by then. Prints one JSON
    line per side.
    """
    specs_list = specs.split(",")
    # the captions (pandas, no tensor work) are read once, before forking
    captions = {name: bench_captions(name, sizes, data_dir) for name in {s.split(":")[0] for s in specs_list}}
    if len(specs_list) == 1 or not hasattr(os, "fork"):
        for spec in specs_list:
            peak = _measure_side(spec, sizes, captions[spec.split(":")[0]])
            print(json.dumps({"spec": spec, "peak_mb": peak}), flush=True)
        return
    children = {}
    for spec in specs_list:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: measure, report through the pipe, leave without Python's clean-up
            os.close(read_end)
            code = 1
            try:
                peak = _measure_side(spec, sizes, captions[spec.split(":")[0]])
                os.write(write_end, json.dumps({"spec": spec, "peak_mb": peak}).encode())
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(write_end)
        children[pid] = (spec, read_end)
    failed = []
    for pid, (spec, read_end) in children.items():
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not report:
            failed.append(spec)
        else:
            print(report, flush=True)
    if failed:
        sys.exit(f"memory check failed for {failed} (its traceback is above)")


def measure(
    name: str, bench, sizes: Sizes, device: torch.device, data_dir: Path
) -> tuple[dict[str, float], dict[str, float | None], dict[str, list[float]]]:
    """Medians, peak memory and raw samples of both sides of one comparison."""
    sides = bench.sides()
    samples, peaks = compare(sides, sizes.repeats, device)
    if not sizes.memory:
        peaks = dict.fromkeys(peaks)
    return {k: median(v) for k, v in samples.items()}, peaks, samples


def cpu_memory_children(sizes: Sizes, data_dir: Path, log: Callable[[str], None]) -> dict[str, float]:
    """Every side's peak memory on a CPU, each in a fresh process: ``{bench_side_peak_mb: MB}``.

    They run after all the timing, so they cannot slow it.
    """
    specs = [(bench, side) for bench in BENCHES for side in BENCH_SIDES[bench]]
    log(f"peak memory: {len(specs)} fresh processes, one per side ...")
    peaks = child_memories(specs, sizes, data_dir)
    return {f"{bench}_{side}_peak_mb": peaks[(bench, side)] for bench, side in specs}


# ---------------------------------------------------------------------------------------------------------
# Encoder throughput
# ---------------------------------------------------------------------------------------------------------


def encoder_throughput(sizes: Sizes, device: torch.device) -> dict[str, object]:
    """ResNet50 backbone images/s at ``encoder_size`` px: fp32, channels-last, and bf16 where it helps."""
    torch.manual_seed(0)
    backbone = EncoderCNN(sizes.embed_size, weights="random").backbone.eval().to(device)
    last = copy.deepcopy(backbone).to(memory_format=torch.channels_last)
    images = torch.randn(sizes.encoder_batch, 3, sizes.encoder_size, sizes.encoder_size, device=device)
    images_last = images.contiguous(memory_format=torch.channels_last)

    def forward(model, x, bf16=False):
        def run():
            with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                model(x)

        return run

    variants = [
        Side("fp32", forward(backbone, images), forward(backbone, images)),
        Side("channels_last", forward(last, images_last), forward(last, images_last)),
    ]
    result: dict[str, object] = {"encoder_batch": sizes.encoder_batch, "encoder_size": sizes.encoder_size}
    bf16 = forward(last, images_last, bf16=True)
    if use_bf16(device):
        variants.append(Side("bf16", bf16, bf16))
        result["encoder_bf16_note"] = "bf16 autocast + channels-last (helpers.precision.use_bf16: on)"
    else:
        reason = f"skipped: {device.type} without AMX, where helpers.precision.use_bf16 keeps fp32"
        result["encoder_img_s_bf16"] = None
        if device.type == "cpu" and sizes.bf16_on_cpu:
            small = images_last[:2]
            seconds = timed(forward(last, small, bf16=True), device)
            result["encoder_img_s_bf16_measured_once"] = len(small) / seconds
            reason += f"; measured once anyway: {len(small) / seconds:.2f} img/s"
        result["encoder_bf16_note"] = reason
    samples, _ = compare(variants, sizes.repeats, device)
    for name, values in samples.items():
        result[f"encoder_img_s_{name}"] = sizes.encoder_batch / median(values)
    return result


# ---------------------------------------------------------------------------------------------------------
# Extras (gpu.sh): a Flickr8k-sized decoder epoch, and the JPEG loader end to end
# ---------------------------------------------------------------------------------------------------------


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
    model, optimizer = _model_and_optimizer(sizes.flickr_vocab, sizes, device)
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


# ---------------------------------------------------------------------------------------------------------
# The run, the table, the command line
# ---------------------------------------------------------------------------------------------------------


def machine(device: torch.device) -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "load_average_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_benchmarks(
    sizes: Sizes,
    data_dir: Path,
    device: torch.device,
    extras: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Every comparison; returns the flat dictionary that ``--json`` writes."""
    result: dict[str, object] = {"machine": machine(device), "sizes": asdict(sizes), "targets": dict(TARGETS)}
    result["machine"]["tf32_matmul"] = use_tf32(device)  # the course's GPU setting (fit's), for every side
    captions = bench_captions("train", sizes, data_dir)
    samples: dict[str, dict[str, list[float]]] = {}

    log(f"training epoch: {len(captions.texts)} captions of {len(set(captions.images))} images ...")
    train = TrainingBench(captions, sizes, device)
    extract_s, extract_peak = timed_with_peak(train.extract, device)
    times, peaks, samples["train"] = measure("train", train, sizes, device, data_dir)
    if peaks["cached"] is not None and extract_peak is not None:  # CUDA: the features stay on the GPU
        features_mb = train.features.numel() * train.features.element_size() / 2**20
        peaks["cached"] = max(extract_peak, features_mb + peaks["cached"])
    # the one-time extraction, spread over the course's epochs for the device; its median, like the others
    amortised = times["cached"] + times["extract"] / sizes.epochs
    result.update(
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

    log("loss ...")
    captions = bench_captions("loss", sizes, data_dir)  # a whole batch, even when training used fewer
    loss = LossBench(captions, sizes, device)
    agree, full_value, prefix_value, packed_value = loss.agree()
    times, peaks, samples["loss"] = measure("loss", loss, sizes, device, data_dir)
    result.update(
        loss_batch=len(loss.lengths),
        loss_prefix_s=times["prefix"],
        loss_full_s=times["full"],
        loss_packed_s=times["packed"],
        loss_speedup_full_vs_prefix=times["prefix"] / times["full"],
        loss_speedup_packed_vs_prefix=times["prefix"] / times["packed"],
        loss_values_agree=agree,
        loss_full_value=full_value,
        loss_prefix_value=prefix_value,
        loss_packed_value=packed_value,
        loss_prefix_peak_mb=peaks["prefix"],
        loss_full_peak_mb=peaks["full"],
        loss_packed_peak_mb=peaks["packed"],
    )

    log("decoding ...")
    decode = DecodeBench(captions, sizes, device)
    ids = {side.name: side.run() for side in decode.sides()}
    words = {len(row) for rows in ids.values() for row in rows}  # max_len words, after max_len + 1 steps
    if any(rows != ids["naive"] for rows in ids.values()) or words != {sizes.decode_max_len}:
        raise AssertionError(f"the greedy loops disagree (or stopped early: word counts {words})")
    times, peaks, samples["decode"] = measure("decode", decode, sizes, device, data_dir)
    result.update(
        decode_images=sizes.decode_images,
        decode_steps=sizes.decode_max_len + 1,
        decode_naive_s=times["naive"],
        decode_carried_s=times["carried"],
        decode_naive_batched_s=times["naive_batched"],
        decode_batched_s=times["batched"],
        # the whole way from the textbook's loop to the course's, then its two parts, each on its own
        decode_speedup_batched_vs_naive=times["naive"] / times["batched"],
        decode_speedup_state_one_by_one=times["naive"] / times["carried"],
        decode_speedup_batching_naive=times["naive"] / times["naive_batched"],
        decode_speedup_state_batched=times["naive_batched"] / times["batched"],
        decode_speedup_batching_carried=times["carried"] / times["batched"],
        decode_captions_identical=True,
        **{f"decode_{name}_peak_mb": peaks[name] for name in BENCH_SIDES["decode"]},
    )

    log("encoder throughput ...")
    result.update(encoder_throughput(sizes, device))
    if extras:
        log("extras: Flickr8k-sized decoder epoch ...")
        result.update(flickr_scale_decoder(sizes, device))
        log("extras: JPEG loader ...")
        result.update(jpeg_loader_throughput(sizes, device))

    if device.type != "cuda" and sizes.memory:
        result.update(cpu_memory_children(sizes, data_dir, log))

    # the targets are set for the course's 2-core CPU; a GPU run reports its ratios without judging them
    on_cpu = device.type != "cuda"
    result["met"] = {key: result[key] >= target for key, target in TARGETS.items()} if on_cpu else {}
    result["samples_s"] = samples
    result["machine"]["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return result


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def _s(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def table(result: dict) -> str:
    """The readable report: machine, then one row per comparison, then encoder throughput."""
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads, "
        f"{m['cpu_capability']}), torch {m['torch']}, device {m['device']}"
        + (f" ({m['gpu']})" if "gpu" in m else "")
    ]
    if m.get("load_average_start") is not None:
        lines.append(
            f"Load average: {m['load_average_start']:.1f} at start, {m['load_average_end']:.1f} at end "
            f"(above 0: other processes were running too)."
        )
    lines += [
        f"Medians of {result['sizes']['repeats']} alternating repetitions; peak = memory the side added.",
        "",
    ]
    rows = [
        (
            f"training epoch ({result['train_captions']} captions, {result['train_image_size']} px)",
            "textbook",
            result["train_textbook_epoch_s"],
            result["train_textbook_peak_mb"],
            "cached, per epoch",
            result["train_cached_epoch_s"],
            result["train_cached_peak_mb"],
            "train_speedup_cached_vs_textbook",
        ),
        (
            f"  + extraction {_s(result['train_cached_extract_s'])} "
            f"/ {result['train_amortised_over_epochs']} epochs (caching)",
            "textbook",
            result["train_textbook_epoch_s"],
            None,
            "cached, amortised",
            result["train_cached_amortised_epoch_s"],
            None,
            "train_speedup_cached_vs_textbook_amortised",
        ),
        (
            f"loss fwd+bwd (batch {result['loss_batch']})",
            "prefix",
            result["loss_prefix_s"],
            result["loss_prefix_peak_mb"],
            "full",
            result["loss_full_s"],
            result["loss_full_peak_mb"],
            "loss_speedup_full_vs_prefix",
        ),
        (
            "  packed: only real positions scored",
            "prefix",
            result["loss_prefix_s"],
            result["loss_prefix_peak_mb"],
            "packed (fit's)",
            result["loss_packed_s"],
            result["loss_packed_peak_mb"],
            "loss_speedup_packed_vs_prefix",
        ),
        (
            f"greedy ({result['decode_images']} images, {result['decode_steps']} steps)",
            "naive, 1 by 1",
            result["decode_naive_s"],
            result["decode_naive_peak_mb"],
            "batched",
            result["decode_batched_s"],
            result["decode_batched_peak_mb"],
            "decode_speedup_batched_vs_naive",
        ),
        (
            "  state carried, one image at a time",
            "naive, 1 by 1",
            result["decode_naive_s"],
            result["decode_naive_peak_mb"],
            "carried, 1 by 1",
            result["decode_carried_s"],
            result["decode_carried_peak_mb"],
            "decode_speedup_state_one_by_one",
        ),
        (
            "  batching, caption re-fed",
            "naive, 1 by 1",
            result["decode_naive_s"],
            result["decode_naive_peak_mb"],
            "naive, batched",
            result["decode_naive_batched_s"],
            result["decode_naive_batched_peak_mb"],
            "decode_speedup_batching_naive",
        ),
        (
            "  state carried, batched",
            "naive, batched",
            result["decode_naive_batched_s"],
            result["decode_naive_batched_peak_mb"],
            "batched",
            result["decode_batched_s"],
            result["decode_batched_peak_mb"],
            "decode_speedup_state_batched",
        ),
        (
            "  batching, state carried",
            "carried, 1 by 1",
            result["decode_carried_s"],
            result["decode_carried_peak_mb"],
            "batched",
            result["decode_batched_s"],
            result["decode_batched_peak_mb"],
            "decode_speedup_batching_carried",
        ),
    ]
    header = f"{'comparison':<42} {'side A':<14} {'time A':>9} {'peak A':>9}   {'side B':<18} {'time B':>9} "
    header += f"{'peak B':>9} {'ratio':>8} {'target':>7}  met?"
    lines += [header, "-" * len(header)]
    for title, a, time_a, peak_a, b, time_b, peak_b, key in rows:
        target = TARGETS.get(key) if result["met"] else None  # no targets on a GPU
        met = "-" if target is None else ("yes" if result[key] >= target else "NO")
        lines.append(
            f"{title:<42} {a:<14} {_s(time_a):>9} {_mb(peak_a):>9}   {b:<18} {_s(time_b):>9} "
            f"{_mb(peak_b):>9} {result[key]:>7.1f}x {'' if target is None else f'>={target:.0f}x':>7}  {met}"
        )
    lines.append("")
    lines.append(
        f"loss values agree (allclose): {result['loss_values_agree']} "
        f"(full {result['loss_full_value']:.5f}, prefix {result['loss_prefix_value']:.5f}, "
        f"packed {result['loss_packed_value']:.5f}); "
        f"greedy captions identical: {result['decode_captions_identical']}"
    )
    bf16 = result.get("encoder_img_s_bf16")
    lines.append(
        f"ResNet50 at {result['encoder_size']} px, batch {result['encoder_batch']}: "
        f"fp32 {result['encoder_img_s_fp32']:.1f} img/s, "
        f"channels-last {result['encoder_img_s_channels_last']:.1f} img/s, bf16 "
        + (f"{bf16:.1f} img/s" if bf16 else f"- ({result['encoder_bf16_note']})")
    )
    if "flickr_decoder_captions_s" in result:
        lines.append(
            f"Flickr8k-sized cached epoch: {result['flickr_decoder_epoch_s']:.2f} s "
            f"({result['flickr_decoder_captions_s']:,.0f} captions/s); JPEG loader "
            f"{result['loader_img_s_jpeg']:,.0f} img/s with {result['loader_workers']} workers"
        )
    return "\n".join(lines)


def written_by_run(path: Path) -> bool:
    """Whether ``path`` holds a result this script wrote (a JSON object with its ``mode`` and ``wall_s``)."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(result, dict) and {"mode", "wall_s"} <= set(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under 2 minutes on a 2-core CPU")
    parser.add_argument(
        "--json",
        type=Path,
        help="also write every number to this JSON file (it replaces only a file an earlier run wrote)",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shapes dataset (drawn if missing)")
    parser.add_argument("--repeats", type=int, help="timed repetitions per side (default 3)")
    quick, full = sizes_for(torch.device("cpu"), quick=True), sizes_for(torch.device("cpu"), quick=False)
    parser.add_argument(
        "--image-size",
        type=int,
        help=f"training images' size (default: {quick.image_size} px quick, {full.image_size} full)",
    )
    parser.add_argument("--captions", type=int, help="training captions per epoch (0: the whole split)")
    parser.add_argument("--extras", action="store_true", help="also a Flickr8k-sized epoch and a JPEG loader")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # bench:side[,…], for the memory process
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("CAPTION_PROGRESS", "0")  # no progress bars between the benchmark's lines

    if args.child:
        run_children(args.child, Sizes(**json.loads(args.sizes)), args.data)
        return 0
    try:
        device = get_device(args.device)
    except ValueError as error:  # a device this machine lacks: one line, exit 2, like a usage error
        parser.error(str(error))
    if args.json and args.json.exists() and not written_by_run(args.json):  # checked before minutes of work
        parser.error(f"{args.json} exists and was not written by this benchmark; choose another --json path")
    sizes = sizes_for(device, args.quick)
    overrides = {"repeats": args.repeats, "image_size": args.image_size, "train_captions": args.captions}
    sizes = replace(sizes, **{key: value for key, value in overrides.items() if value is not None})
    started = time.perf_counter()
    result = run_benchmarks(sizes, args.data, device, extras=args.extras)
    result["mode"] = "quick" if args.quick else "full"
    result["wall_s"] = time.perf_counter() - started
    print()
    print(table(result))
    print(f"\n({result['mode']} run, {result['wall_s']:.0f} s)")
    if args.json:
        replaced = args.json.exists()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"{'Replaced' if replaced else 'Wrote'} {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
