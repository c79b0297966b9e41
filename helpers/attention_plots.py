"""Figures of where an attention decoder looked: one heat map per generated word, and the gate β per word.

The maps come from :func:`helpers.decoding.greedy` with ``return_attention=True``: ``maps [B, steps, N]``,
where ``maps[b, k]`` is the map ``α`` of the step that chose word ``k`` of caption ``b``, over a square grid
of ``N = g × g`` cells, row by row. Every function returns a matplotlib ``Figure`` and draws nothing else.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image


def upsample_map(alpha: torch.Tensor, size: int) -> np.ndarray:
    """``alpha [N]`` over a ``g × g`` grid → ``[size, size]``, bilinear, each pixel a share of the map's
    weight (the whole sums to 1 when ``alpha`` does)."""
    side = math.isqrt(alpha.numel())
    if side * side != alpha.numel():
        raise ValueError(f"a map of {alpha.numel()} cells is not a square grid")
    grid = alpha.detach().float().cpu().reshape(1, 1, side, side)
    image = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    return (image / image.sum() * alpha.sum().item()).numpy()


def _pixels(image: Image.Image | torch.Tensor) -> np.ndarray:
    """A PIL image, or a tensor ``[3, H, W]`` in [0, 1] (e.g. :func:`helpers.data.denormalize`'s output),
    → ``[H, W, 3]`` for ``imshow``."""
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
    return np.asarray(image.convert("RGB"))


def show_attention(
    image: Image.Image | torch.Tensor,
    words: Sequence[str],
    maps: torch.Tensor,
    columns: int = 5,
    opacity: float = 0.6,
) -> Figure:
    """The caption, one panel per word: the image, and over it the map of the step that emitted the word.

    In: the image the model read (any size; square), the caption's ``words`` (``tokenize(caption)``, or
    ``vocab.itos`` of the decoded ids, with ``"<end>"`` last to show that step too) and ``maps [steps, N]``
    with ``steps ≥ len(words)``: row ``k`` goes with ``words[k]``. Out: the figure; panel ``k``'s title is
    ``words[k]``, the figure's title the caption; each map is upsampled to the image and scaled to its
    own maximum.
    """
    if maps.shape[0] < len(words):
        raise ValueError(f"show_attention: {len(words)} words but maps for {maps.shape[0]} steps")
    pixels = _pixels(image)
    rows = max(1, math.ceil(len(words) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.2 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(words):
            continue
        ax.imshow(pixels)
        heat = upsample_map(maps[k], pixels.shape[0])
        ax.imshow(heat, cmap="magma", alpha=opacity, vmin=0, vmax=heat.max(), extent=_extent(pixels))
        ax.set_title(words[k], fontsize=10)
    figure.suptitle("\n".join(textwrap.wrap(" ".join(words), 70)), fontsize=11)
    figure.tight_layout()
    return figure


def _extent(pixels: np.ndarray) -> tuple[float, float, float, float]:
    """Where ``imshow`` puts an image of these pixels: the heat map is drawn over exactly the same box."""
    height, width = pixels.shape[:2]
    return (-0.5, width - 0.5, height - 0.5, -0.5)


def plot_gate(words: Sequence[str], betas: torch.Tensor | Sequence[float]) -> Figure:
    """The gate β of the step that emitted each word, as bars: how much of the image context got through.

    ``betas`` is ``[steps]`` (one number a step) or ``[steps, D]`` (the gate per feature, averaged over
    ``D`` here), ``steps ≥ len(words)``, row ``k`` for ``words[k]``. Out: the figure, one axes, one bar per
    word (tick labels the words), y from 0 to 1.
    """
    betas = torch.as_tensor(betas, dtype=torch.float32).detach().cpu()
    per_feature = betas.dim() == 2
    if per_feature:
        betas = betas.mean(dim=1)
    if betas.shape[0] < len(words):
        raise ValueError(f"plot_gate: {len(words)} words but β for {betas.shape[0]} steps")
    figure, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(words) + 1.0), 2.6))
    ax.bar(range(len(words)), betas[: len(words)].numpy(), color="#4c72b0")
    ax.set_xticks(range(len(words)), list(words), rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("β, mean over features" if per_feature else "β")
    ax.set_title("Gate β per word: how much of the attended image reaches the LSTM")
    figure.tight_layout()
    return figure
