"""Small conveniences every notebook uses: seeding (and saving the generators' states), the device, the
course folder, the encoder's weights, Colab, progress bars, running a command with its output shown as it
comes, and saving a file atomically."""

from __future__ import annotations

import codecs
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from helpers import STARTED  # when this process first imported the course's helpers


def format_run_time(seconds: float) -> str:
    """``seconds`` as a notebook's prose says a run time: whole seconds under two minutes (at least
    ``"1 s"``), else minutes with one decimal."""
    if seconds < 119.5:
        return f"{max(1, round(seconds))} s"
    return f"{seconds / 60:.1f} min"


def run_time() -> str:
    """How long this process has been running since it first imported the helpers: in a notebook, whose
    first cells import them, its run time up to the cell that asks."""
    return format_run_time(time.monotonic() - STARTED)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch so that printed samples are the same on every run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def random_state() -> dict:
    """The states of Python's, NumPy's and torch's global generators (CPU, and every CUDA GPU there is),
    as plain values and tensors that a checkpoint stores and ``torch.load(weights_only=True)`` reads back.
    """
    version, words, gauss = random.getstate()
    numpy = np.random.get_state(legacy=False)
    state = {
        "python": [version, list(words), gauss],
        "numpy": {
            "key": torch.from_numpy(numpy["state"]["key"].astype(np.int64)),
            "pos": int(numpy["state"]["pos"]),
            "has_gauss": int(numpy["has_gauss"]),
            "gauss": float(numpy["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    """Put the global generators back where :func:`random_state` found them. CUDA's states are restored
    only where there are as many GPUs as when they were taken."""
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    numpy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
            "has_gauss": numpy["has_gauss"],
            "gauss": numpy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def course_root(start: Path | str | None = None) -> Path:
    """The course's folder: the first one from ``start`` (default: the current folder) upwards that holds
    ``pyproject.toml`` and ``helpers/``. Outside a checkout (Colab, where the helpers are pip-installed)
    there is none, and the current folder is used: data and runs then go under it.
    """
    here = Path(start).resolve() if start is not None else Path.cwd()
    for folder in [here, *here.parents]:
        if (folder / "pyproject.toml").is_file() and (folder / "helpers").is_dir():
            return folder
    return Path.cwd()


COURSE_WEIGHT_CHOICES = ("random", "imagenet")


def course_weights() -> str:
    """The ResNet50 weights the notebooks build their encoder with: ``"random"`` or ``"imagenet"``.

    Read from the environment variable ``COURSE_WEIGHTS`` (``"random"`` when it is unset or empty), never
    guessed from the network: the same setting gives the same stored outputs on every machine, with or
    without internet, whatever torch's cache holds. ``%env COURSE_WEIGHTS=imagenet`` in a notebook (before
    the cell that calls this) switches to ImageNet's weights, which are downloaded once.
    Any other value raises a ``ValueError`` that names the allowed ones.
    """
    value = os.environ.get("COURSE_WEIGHTS", "").strip().lower() or "random"
    if value not in COURSE_WEIGHT_CHOICES:
        raise ValueError(
            f"COURSE_WEIGHTS must be one of {COURSE_WEIGHT_CHOICES}, got {os.environ['COURSE_WEIGHTS']!r}"
        )
    return value


def in_colab() -> bool:
    """True when this code runs inside Google Colab."""
    return "google.colab" in sys.modules


class DeviceUnavailableError(ValueError, RuntimeError):
    """A device was asked for that this machine does not have (a ``ValueError``: the command line prints
    it as one ``error:`` line; a ``RuntimeError`` too, as this was documented before)."""


def get_device(prefer: str = "auto") -> torch.device:
    """Pick where tensors live: ``"auto"`` tries CUDA, then Apple's MPS, then the CPU.

    ``prefer`` may also name a device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); asking for a
    device that is not there raises :class:`DeviceUnavailableError` that says so, rather than failing later.
    """
    if prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"device {prefer!r} was asked for, but PyTorch sees no CUDA GPU here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"device {prefer!r} was asked for, but PyTorch sees {torch.cuda.device_count()} CUDA GPU(s) here"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailableError(
            f"device {prefer!r} was asked for, but Apple's MPS is not available here"
        )
    return device


def progress_enabled() -> bool:
    """Whether to draw progress bars: on for people, off under CI or when ``CAPTION_PROGRESS=0``.

    Stored notebook outputs must not contain progress bars, since their timings change every run.
    """
    if os.environ.get("CAPTION_PROGRESS") is not None:
        return os.environ["CAPTION_PROGRESS"] not in ("0", "", "false", "no")
    return not os.environ.get("CI")


def _print_now(text: str) -> None:
    print(text, end="", flush=True)


def stream_command(
    args: Sequence[str],
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    write: Callable[[str], object] = _print_now,
) -> int:
    """Run ``args`` (``["python", "-m", "helpers", ...]``) and pass its output to ``write`` as it comes;
    return the exit code.

    For a notebook cell: a child's output would otherwise go to the terminal that started Jupyter. Its
    stdout and stderr arrive together, in order. Two things make them arrive *as they happen*:

    - the child is told not to buffer (``PYTHONUNBUFFERED=1``): writing into a pipe, Python would
      otherwise keep its prints in 8 KB blocks, and a training run's epoch lines would all appear at
      the end;
    - bytes are decoded by an incremental UTF-8 decoder, which keeps a character split between two
      reads until its other half arrives (decoding each read on its own turns it into ``�``).

    Carriage returns are passed on, so progress bars redraw in place.
    """
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with subprocess.Popen(
        list(args), cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        while chunk := os.read(process.stdout.fileno(), 4096):  # whatever has arrived, up to 4 KB
            if text := decoder.decode(chunk):
                write(text)
        if text := decoder.decode(b"", final=True):
            write(text)
    return process.returncode


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    The rename is atomic, so ``path`` always holds either the previous complete file or the new one,
    even if the process is killed or the disk fills up while writing. Checkpoints and feature caches use it.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
