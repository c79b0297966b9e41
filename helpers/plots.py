"""Figures the notebooks show: example images with their captions, caption lengths, the image pipeline,
training curves and confusion matrices.

Every function returns a matplotlib ``Figure`` and draws nothing else, so a notebook shows it and a
test inspects it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
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


def plot_lr_schedule(lrs: Sequence[float], steps_per_epoch: int | None = None) -> Figure:
    """The learning rate at every optimiser step (one value per step), epochs marked when given.

    In: ``lrs``, e.g. read from ``optimizer.param_groups[0]["lr"]`` after each ``scheduler.step()``.
    """
    if len(lrs) == 0:
        raise ValueError("plot_lr_schedule: no learning rates to plot")
    figure, ax = plt.subplots(figsize=(6, 3))
    ax.plot(range(len(lrs)), lrs, color="#4c72b0")
    if steps_per_epoch:
        for boundary in range(steps_per_epoch, len(lrs), steps_per_epoch):
            ax.axvline(boundary, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("optimiser step" + (" (dotted lines: epochs)" if steps_per_epoch else ""))
    ax.set_ylabel("learning rate")
    ax.set_title(f"One-cycle schedule: peak {max(lrs):.2g}, end {lrs[-1]:.2g}")
    figure.tight_layout()
    return figure


def plot_history(history: pd.DataFrame) -> Figure:
    """Two panels from a training history (one row per epoch, as :func:`helpers.training.fit` returns):
    the training loss, and validation BLEU-1…4 (greedy decoding, no teacher forcing).

    In: columns ``epoch``, ``train_loss`` and ``dev_bleu1`` … ``dev_bleu4`` (0–1).
    """
    needed = {"epoch", "train_loss", "dev_bleu1", "dev_bleu2", "dev_bleu3", "dev_bleu4"}
    missing = needed - set(history.columns)
    if missing:
        raise ValueError(f"plot_history: the history lacks the columns {sorted(missing)}")
    figure, (loss_ax, bleu_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    loss_ax.plot(history["epoch"], history["train_loss"], marker="o", color="#4c72b0")
    loss_ax.set_title("Training loss (teacher forcing)")
    loss_ax.set_ylabel("cross-entropy per word")
    for n, colour in zip(range(1, 5), ("#c6dbef", "#6baed6", "#2171b5", "#08306b"), strict=True):
        bleu_ax.plot(history["epoch"], history[f"dev_bleu{n}"], marker="o", color=colour, label=f"BLEU-{n}")
    bleu_ax.set_title("Validation BLEU (greedy, no teacher forcing)")
    bleu_ax.set_ylabel("BLEU (0–1)")
    bleu_ax.set_ylim(0, 1)
    bleu_ax.legend(loc="lower right", fontsize=8)
    for ax in (loss_ax, bleu_ax):
        ax.set_xlabel("epoch")
        ax.set_xticks(history["epoch"])
        ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def show_captions(
    table: pd.DataFrame,
    n: int = 6,
    columns: int = 3,
    references: int = 2,
    seed: int = 0,
    width: int = 40,
) -> Figure:
    """A grid of ``n`` images, each under the model's caption and a few of its human references.

    In: a table with one row per image and columns ``image`` (path), ``generated`` (a string) and
    ``references`` (a list of strings), as :func:`helpers.evaluation.evaluate_split` returns. More caption
    columns (e.g. ``beam 3``) are shown too, under their column name. The rows are drawn with ``seed``.
    """
    if len(table) < n:
        raise ValueError(f"show_captions: asked for {n} images, the table holds {len(table)}")
    extra = [c for c in table.columns if c not in ("image", "generated", "references")]
    chosen = table.sample(n=n, random_state=seed)
    titles = []
    for _, row in chosen.iterrows():
        shown = [("model", row["generated"])] + [(c, row[c]) for c in extra]
        shown += [(f"ref {k}", caption) for k, caption in enumerate(row["references"][:references], 1)]
        titles.append(
            "\n".join(
                textwrap.fill(caption, width, initial_indent=f"{label}: ", subsequent_indent="   ")
                for label, caption in shown
            )
        )
    rows = -(-n // columns)
    # room for each caption to wrap onto two lines; fixed by the arguments, so the figure's size does not
    # change with what the model happens to say
    lines = 2 * (1 + len(extra) + references)
    size = (3.0 * columns, (2.5 + 0.16 * lines) * rows)
    figure, axes = plt.subplots(rows, columns, figsize=size, squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, path, title in zip(axes.flat, chosen["image"], titles, strict=False):
        ax.imshow(load_image(path))
        ax.set_title(title, fontsize=8, loc="left")
    return figure


def plot_confusion(matrix: pd.DataFrame, title: str = "What the model says for each true shape") -> Figure:
    """A confusion matrix as a heat map: each row (a true value) shaded by its shares, cells labelled
    with the counts.

    In: rows the true values, columns what was said, counts as values, as
    :func:`helpers.attributes.attribute_confusion` returns (its last column, ``"(not said)"``, is drawn
    like the others). Each row is shaded by its own total, so a rare value reads as clearly as a common
    one; a perfect model lights the diagonal only.
    """
    if matrix.empty:
        raise ValueError("plot_confusion: the matrix is empty")
    counts = matrix.to_numpy(dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = counts / np.where(totals == 0, 1, totals)
    figure, ax = plt.subplots(figsize=(1.1 * counts.shape[1] + 2, 0.8 * counts.shape[0] + 1.5))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(counts):
        colour = "white" if shares[row, column] > 0.6 else "black"
        ax.text(column, row, f"{int(count)}", ha="center", va="center", color=colour, fontsize=9)
    ax.set_xticks(range(counts.shape[1]), [str(c) for c in matrix.columns], rotation=30, ha="right")
    ax.set_yticks(range(counts.shape[0]), [str(i) for i in matrix.index])
    ax.set_xlabel("what the caption says")
    ax.set_ylabel("truth")
    ax.set_title(title)
    figure.tight_layout()
    return figure
