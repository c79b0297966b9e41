"""Show the errors, not only the average: the images a model gets most wrong, and what it got wrong.

:func:`wrong_words` finds, in a caption, each colour, kind and size word the scene's truth contradicts
(from the token positions :func:`helpers.attributes.parse_caption` records); :func:`gallery_table` picks
the worst and the best images by a per-image score; :func:`show_error_gallery` draws them, each with its
caption (wrong words in :data:`WRONG_COLOUR`) and its references. Without scene truth (Flickr8k) no word
is marked: the references are there to compare with.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from helpers.attributes import match_shapes, parse_caption
from helpers.data import load_image
from helpers.scenes import Scene
from helpers.vocabulary import tokenize

WRONG_COLOUR = "tab:red"
RIGHT_COLOUR = "black"
LINE = 0.085  # the height of a line of caption text, as a fraction of an image's height


def wrong_words(caption: str, scene: Scene) -> dict[int, str]:
    """``{position in tokenize(caption): "colour" | "kind" | "size"}`` for each word the scene contradicts.

    Shapes are matched as :func:`helpers.attributes.score_caption` matches them; every word of a shape the
    scene does not hold (an invented one) is wrong.
    """
    facts = parse_caption(caption)
    wrong = {}
    for i, j in match_shapes(facts.shapes, scene, facts.places()):
        if i is None:
            continue
        mention, shape = facts.shapes[i], scene.shapes[j] if j is not None else None
        for attribute in ("colour", "kind", "size"):
            at = getattr(mention, f"{attribute}_at")
            if at is not None and (shape is None or getattr(mention, attribute) != getattr(shape, attribute)):
                wrong[at] = attribute
    return dict(sorted(wrong.items()))


def gallery_table(
    images: Sequence[str],
    captions: Sequence[str],
    references: Sequence[Sequence[str]],
    scores: Sequence[float],
    scenes: Sequence[Scene] | None = None,
    worst: int = 8,
    best: int = 4,
) -> pd.DataFrame:
    """The ``worst`` images by ``scores[i]`` (lowest first), then the ``best`` others (highest first).

    Columns: ``group`` ("worst" or "best"), ``image``, ``score``, ``caption``, ``references`` (a list) and
    ``wrong`` (:func:`wrong_words` of the caption against ``scenes[i]``; None without scenes). Equal
    scores keep the images' order.
    """
    for name, values in (("captions", captions), ("reference sets", references), ("scores", scores)):
        if len(values) != len(images):
            raise ValueError(f"{len(values)} {name} for {len(images)} images")
    if scenes is not None and len(scenes) != len(images):
        raise ValueError(f"{len(scenes)} scenes for {len(images)} images")
    lowest = sorted(range(len(images)), key=lambda i: (scores[i], i))[:worst]
    highest = [i for i in sorted(range(len(images)), key=lambda i: (-scores[i], i)) if i not in lowest][:best]
    rows = [
        {
            "group": group,
            "image": images[i],
            "score": float(scores[i]),
            "caption": captions[i],
            "references": list(references[i]),
            "wrong": wrong_words(captions[i], scenes[i]) if scenes is not None else None,
        }
        for group, chosen in (("worst", lowest), ("best", highest))
        for i in chosen
    ]
    return pd.DataFrame(rows, columns=["group", "image", "score", "caption", "references", "wrong"])


def _draw_caption(ax: Axes, words: list[str], wrong: dict[int, str], width: int) -> float:
    """Write ``words`` under the image, one text per word (wrong ones in :data:`WRONG_COLOUR`, bold),
    wrapped at about ``width`` characters; returns the height (axes fraction) below the last line."""
    y, used, previous = -0.04, 0, None
    for position, word in enumerate(words):
        style = {"fontsize": 8, "color": RIGHT_COLOUR}
        if position in wrong:
            style.update(color=WRONG_COLOUR, fontweight="bold")
        if previous is None or used + len(word) > width:
            y, used = (y - LINE if previous is not None else y), 0
            previous = ax.text(0, y, word, transform=ax.transAxes, va="top", **style)
        else:
            previous = ax.annotate(
                word, xy=(1, 0), xycoords=previous, xytext=(3, 0), textcoords="offset points", va="bottom",
                **style,
            )
        used += len(word) + 1
    return y - LINE


def show_error_gallery(table: pd.DataFrame, columns: int = 4, width: int = 34) -> Figure:
    """:func:`gallery_table`'s rows as a grid: each image under its group and score, above its caption
    (wrong words marked where ``wrong`` is known) and its references in grey."""
    if table.empty:
        raise ValueError("show_error_gallery: the table holds no image")
    rows = math.ceil(len(table) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 5.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, table.itertuples(index=False), strict=False):
        ax.imshow(load_image(row.image))
        ax.set_title(f"{row.group} · CIDEr-D {row.score:.2f}", fontsize=9, loc="left")
        y = _draw_caption(ax, tokenize(row.caption), row.wrong or {}, width)
        shown = [textwrap.fill(r, width, initial_indent="· ", subsequent_indent="  ") for r in row.references]
        ax.text(0, y, "\n".join(["references:", *shown]), transform=ax.transAxes, va="top", fontsize=7,
                color="dimgrey")
    gap = 1.25  # the room under each image for its texts, in images' heights
    # the last row's texts need the same room below it as the others get between rows
    figure.subplots_adjust(hspace=gap, wspace=0.15, top=0.97, bottom=gap * 0.97 / ((1 + gap) * rows))
    return figure
