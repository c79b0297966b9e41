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

One file per comparison (``training_epoch.py``, ``loss.py``, ``decoding.py``, ``encoder.py``, and
``extras.py`` for ``--extras``), what they share in ``common.py``, peak memory in ``memory.py``; this
file runs them and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

# `python benchmarks/run.py` puts benchmarks/ first on the path, not the repository: add it, so the script
# also runs where the course is not pip-installed (a GPU machine with its own PyTorch, say).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import decoding, encoder, extras, loss, memory, training_epoch  # noqa: E402
from benchmarks.common import DEFAULT_DATA, TARGETS, Sizes, machine, mb_text, seconds_text, sizes_for  # noqa: E402
from helpers.precision import use_tf32  # noqa: E402
from helpers.utils import get_device  # noqa: E402

COMPARISONS = {"train": training_epoch, "loss": loss, "decode": decoding}  # in the table's order


def run_benchmarks(
    sizes: Sizes,
    data_dir: Path,
    device: torch.device,
    extras_too: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Every comparison; returns the flat dictionary that ``--json`` writes."""
    result: dict[str, object] = {"machine": machine(device), "sizes": asdict(sizes), "targets": dict(TARGETS)}
    result["machine"]["tf32_matmul"] = use_tf32(device)  # the course's GPU setting (fit's), for every side
    samples: dict[str, dict[str, list[float]]] = {}
    for name, comparison in COMPARISONS.items():
        measured, samples[name] = comparison.run(sizes, data_dir, device, log)
        result.update(measured)
    log("encoder throughput ...")
    result.update(encoder.encoder_throughput(sizes, device))
    if extras_too:
        log("extras: Flickr8k-sized decoder epoch ...")
        result.update(extras.flickr_scale_decoder(sizes, device))
        log("extras: JPEG loader ...")
        result.update(extras.jpeg_loader_throughput(sizes, device))
    if device.type != "cuda" and sizes.memory:
        result.update(memory.cpu_memory_children(sizes, data_dir, log))

    # the targets are set for the course's 2-core CPU; a GPU run reports its ratios without judging them
    on_cpu = device.type != "cuda"
    result["met"] = {key: result[key] >= target for key, target in TARGETS.items()} if on_cpu else {}
    result["samples_s"] = samples
    result["machine"]["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return result


def header(result: dict) -> list[str]:
    """The machine and the load the numbers were measured under."""
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
    repeats = result["sizes"]["repeats"]
    return lines + [f"Medians of {repeats} alternating repetitions; peak = memory the side added.", ""]


def table(result: dict) -> str:
    """The readable report: machine, then one row per comparison, then encoder throughput."""
    lines = header(result)
    columns = f"{'comparison':<42} {'side A':<14} {'time A':>9} {'peak A':>9}   {'side B':<18} {'time B':>9} "
    columns += f"{'peak B':>9} {'ratio':>8} {'target':>7}  met?"
    lines += [columns, "-" * len(columns)]
    for row in (row for comparison in COMPARISONS.values() for row in comparison.rows(result)):
        target = TARGETS.get(row.ratio) if result["met"] else None  # no targets on a GPU
        met = "-" if target is None else ("yes" if result[row.ratio] >= target else "NO")
        lines.append(
            f"{row.title:<42} {row.a:<14} {seconds_text(row.time_a):>9} {mb_text(row.peak_a):>9}   "
            f"{row.b:<18} {seconds_text(row.time_b):>9} {mb_text(row.peak_b):>9} {result[row.ratio]:>7.1f}x "
            f"{'' if target is None else f'>={target:.0f}x':>7}  {met}"
        )
    lines.append("")
    lines.append(f"{loss.summary(result)}; greedy captions identical: {result['decode_captions_identical']}")
    lines.append(encoder.summary(result))
    if "flickr_decoder_captions_s" in result:
        lines.append(extras.summary(result))
    return "\n".join(lines)


def written_by_run(path: Path) -> bool:
    """Whether ``path`` holds a result this script wrote (a JSON object with its ``mode`` and ``wall_s``)."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(result, dict) and {"mode", "wall_s"} <= set(result)


def build_parser() -> argparse.ArgumentParser:
    """The command line: sizes, device, data and where the JSON goes."""
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("CAPTION_PROGRESS", "0")  # no progress bars between the benchmark's lines
    if args.child:
        memory.run_children(args.child, Sizes(**json.loads(args.sizes)), args.data)
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
    result = run_benchmarks(sizes, args.data, device, extras_too=args.extras)
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
