"""Small conveniences every notebook uses: seeding, the device, the course folder, the encoder's weights,
Colab and progress bars."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np
import torch


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch so that printed samples are the same on every run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    the cell that calls this) switches to ImageNet's weights, which need the internet once (about 100 MB).
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


def get_device(prefer: str = "auto") -> torch.device:
    """Pick where tensors live: ``"auto"`` tries CUDA, then Apple's MPS, then the CPU.

    ``prefer`` may also name a device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``); asking for a
    device that is not there raises a ``RuntimeError`` that says so, rather than failing later.
    """
    if prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {prefer!r} was asked for, but PyTorch sees no CUDA GPU here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {prefer!r} was asked for, but Apple's MPS is not available here")
    return device


def progress_enabled() -> bool:
    """Whether to draw progress bars: on for people, off under CI or when ``CAPTION_PROGRESS=0``.

    Stored notebook outputs must not contain progress bars, since their timings change every run.
    """
    if os.environ.get("CAPTION_PROGRESS") is not None:
        return os.environ["CAPTION_PROGRESS"] not in ("0", "", "false", "no")
    return not os.environ.get("CI")
