"""What every comparison of the benchmarks shares: the sizes a run measures, timing that alternates the
sides, peak memory, the shapes captions they train on, the course's cached epoch, and the table's rows.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from helpers.batches import batches
from helpers.caption_files import load_captions
from helpers.config import TrainConfig
from helpers.models import Captioner
from helpers.scenes import TOKEN_FILE, make_shapes
from helpers.training import TrainStep, train_epoch
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
    """The quick or full sizes, with the course's model sizes for ``device``.

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


def measure(bench, sizes: Sizes, device: torch.device) -> tuple[dict, dict, dict]:
    """``(medians, peaks, samples)`` of every side of one comparison: seconds per side, peak MB on CUDA
    (None elsewhere, or when ``sizes.memory`` is off), and the raw seconds of each repetition."""
    samples, peaks = compare(bench.sides(), sizes.repeats, device)
    if not sizes.memory:
        peaks = dict.fromkeys(peaks)
    return {k: median(v) for k, v in samples.items()}, peaks, samples


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


def model_and_optimizer(vocab_size: int, sizes: Sizes, device: torch.device):
    """A captioner with a frozen backbone, and Adam over what trains (projection, BatchNorm, decoder).

    Random weights: speed does not depend on them, and nothing has to be downloaded.
    """
    torch.manual_seed(0)
    model = Captioner(vocab_size, sizes.embed_size, sizes.hidden_size, weights="random").to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.Adam(trainable, lr=1e-3)


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


@dataclass
class Row:
    """One line of the table: side A against side B, and the ratio ``result[ratio]`` (A's time over B's)."""

    title: str
    a: str
    time_a: float
    peak_a: float | None
    b: str
    time_b: float
    peak_b: float | None
    ratio: str


def mb_text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def seconds_text(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
