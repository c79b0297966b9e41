"""Peak memory on a CPU: every side of every comparison once more, each in a fresh process, after all
the timing, reporting how far its resident set rose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks import decoding, loss, training_epoch
from benchmarks.common import Captions, Sizes, bench_captions, rss_rise_mb

RUN = Path(__file__).resolve().parent / "run.py"
BENCHES = {"train": training_epoch.TrainingBench, "loss": loss.LossBench, "decode": decoding.DecodeBench}
BENCH_SIDES = {
    "train": ("textbook", "cached", "extract"),
    "loss": ("prefix", "full", "packed"),
    "decode": decoding.SIDES,
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
        command = [sys.executable, str(RUN), "--child", group, "--sizes"]
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


def cpu_memory_children(sizes: Sizes, data_dir: Path, log: Callable[[str], None]) -> dict[str, float]:
    """Every side's peak memory on a CPU, each in a fresh process: ``{bench_side_peak_mb: MB}``.

    They run after all the timing, so they cannot slow it.
    """
    specs = [(bench, side) for bench in BENCHES for side in BENCH_SIDES[bench]]
    log(f"peak memory: {len(specs)} fresh processes, one per side ...")
    peaks = child_memories(specs, sizes, data_dir)
    return {f"{bench}_{side}_peak_mb": peaks[(bench, side)] for bench, side in specs}
