"""Figures the notebooks show: example images with their captions, caption lengths, the image pipeline.

Every function returns a matplotlib ``Figure`` and draws nothing else, so a notebook shows it and a
test inspects it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image

from helpers.data import denormalize, load_image


def show_examples(
    table: pd.DataFrame,
    n: int = 6,
    columns: int = 3,
    captions_per_image: int = 2,
    seed: int = 0,
    width: int = 34,
) -> Figure:
    """A grid of ``n`` images from a caption table, each under its first captions, numbered.

    In: ``table`` with columns ``image`` (path) and ``caption``, one row per caption. The images are
    ``n`` distinct ones drawn with ``seed`` (the same seed always shows the same images). Captions are
    wrapped at ``width`` characters. Out: the figure, one axes per image, its title the captions.
    """
    images = table["image"].drop_duplicates()
    if len(images) < n:
        raise ValueError(f"show_examples: asked for {n} images, the table holds {len(images)}")
    chosen = images.sample(n=n, random_state=seed).tolist()
    rows = -(-n // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path in zip(axes.flat, chosen, strict=False):
        captions = table.loc[table["image"] == path, "caption"].head(captions_per_image)
        ax.imshow(load_image(path))
        numbered = [
            textwrap.fill(caption, width, initial_indent=f"{k}. ", subsequent_indent="    ")
            for k, caption in enumerate(captions, start=1)
        ]
        ax.set_title("\n".join(numbered), fontsize=8, loc="left")
    figure.tight_layout()
    return figure


def caption_length_histogram(lengths: Sequence[int] | pd.Series, title: str = "Words per caption") -> Figure:
    """One bar per caption length (in words): how many captions have exactly that many words."""
    counts = pd.Series(lengths).value_counts().sort_index()
    figure, ax = plt.subplots(figsize=(6, 3))
    ax.bar(counts.index, counts.values, width=0.8, color="#4c72b0")
    ax.set_xticks(counts.index)
    ax.set_xlabel("words in the caption")
    ax.set_ylabel("captions")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def show_image_pipeline(image: Image.Image, tensor: torch.Tensor) -> Figure:
    """Three panels: the image as read, its normalised tensor shown as if it were pixels, and the
    tensor de-normalised (what the model "sees", back in viewable colours).

    In: the RGB PIL image and its transformed tensor ``[3, H, W]``.
    """
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"show_image_pipeline: expected a [3, H, W] tensor, got {list(tensor.shape)}")
    figure, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    panels = [
        (image, f"as read: PIL {image.width}×{image.height}, 0–255"),
        (tensor.clamp(0, 1).permute(1, 2, 0).numpy(), "normalised, shown as is\n(clipped to [0, 1])"),
        (denormalize(tensor).permute(1, 2, 0).numpy(), f"de-normalised {list(tensor.shape)}"),
    ]
    for ax, (picture, title) in zip(axes, panels, strict=True):
        ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    figure.tight_layout()
    return figure
