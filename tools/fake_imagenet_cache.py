"""Make torch's cache look like a machine that has downloaded ResNet50's ImageNet weights, offline.

Writes a ResNet50 ``state_dict`` (seeded random numbers, not ImageNet's) under the file name torchvision
gives ``ResNet50_Weights.IMAGENET1K_V2``, in ``TORCH_HOME/hub/checkpoints/``, and prints that TORCH_HOME.
``EncoderCNN(weights="auto")`` and ``imagenet_weights_cached()`` then see ImageNet weights as present, as
on any machine with internet after the first download. The notebooks must not change with it:

    TORCH_HOME=$(python tools/fake_imagenet_cache.py) CAPTION_PROGRESS=0 python -m pytest --nbval notebooks/

Usage: ``python tools/fake_imagenet_cache.py [TORCH_HOME]`` (default: a new temporary folder). A file
already there is left alone, never overwritten.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from torchvision.models import ResNet50_Weights, resnet50


def fake_imagenet_cache(torch_home: Path) -> Path:
    """Write the stand-in weights file into ``torch_home`` (if it is not there) and return its path."""
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    path = checkpoints / ResNet50_Weights.IMAGENET1K_V2.url.rsplit("/", 1)[-1]
    if not path.exists():
        torch.manual_seed(1234)  # not the course's seed: these must not be the notebooks' random weights
        torch.save(resnet50(weights=None).state_dict(), path)
    return path


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: python tools/fake_imagenet_cache.py [TORCH_HOME]", file=sys.stderr)
        return 2
    torch_home = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="torch_home_"))
    path = fake_imagenet_cache(torch_home)
    print(f"stand-in ImageNet weights: {path}", file=sys.stderr)
    print(torch_home)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
