"""Attention on the right object: where the truth of a scene is known, check where each word looked.

An attention decoder (:mod:`helpers.attention`) gives, for every generated word, the map ``α [N]`` it
looked with: :func:`helpers.decoding.greedy` with ``return_attention=True`` returns ``maps [B, steps, N]``
where ``maps[b, k]`` is the map of the step that chose word ``k`` of caption ``b`` (the decoder's step
``t`` reads token ``t`` of ``<start> w0 w1 …`` and emits token ``t + 1``, i.e. word ``k = t``). Word ``k``
is ``tokenize(caption)[k]``, the position :class:`~helpers.attributes.Mention` records.

A *grounded word* is a colour or shape word of a mention that :func:`~helpers.attributes.match_shapes`
pairs with a shape of a two-shape scene. For each one, with the scene's centres (drawn at
``scene_size`` px) scaled to the model's input of ``image_size`` px, and the ``N = g × g`` cells' centres
in the same pixels (row by row, cell ``(row, col)`` at ``((col + ½)·S/g, (row + ½)·S/g)``):

1. **on object**: 1 if the map's weighted centre ``Σ_i α_i · centre_i`` is strictly nearer the matched
   shape's centre than the other shape's, else 0;
2. **mass on object**: ``Σ_i α_i · cover_i``, where ``cover_i`` is the share of cell ``i``'s area inside
   the shape's disc, of radius :data:`~helpers.scenes.RADIUS` of its size times the image side (the
   drawn radius before its ±10 %): the map's weight inside the disc once each cell's weight is spread
   evenly over its square, as the map upsampled to the image shows it. A uniform map scores the disc's
   share of the image, ``π r² / S²``, on any grid.

Colour and shape words of a mention matched to no shape are left out and counted (``excluded_words``);
so are captions of single-shape scenes (``single_shape_captions``). The same code scores two baselines
on the same words: the uniform map ``1/N``, and the "first word → first shape" prior, whose ``k``-th named
shape (in caption order) looks at the fixed place of the scene's ``k``-th shape (the left or top quarter
position, then the right or bottom one), without the jitter of the real centres. Most captions name
the left or top shape first, so the prior scores measure 1 high; the report also gives measure 1 on the
*reordered* words alone (a shape named in the other place than the prior's), where looking at the named
shape and a left-then-right habit part ways.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from helpers.attributes import Mention, match_shapes, parse_caption
from helpers.scenes import IMAGE_SIZE, RADIUS, Scene
from helpers.vocabulary import tokenize

COVER_POINTS = 256  # points a side on which disc_cover measures areas (rounded up to whole cells)


@dataclass(frozen=True)
class GroundedWord:
    """One word to score: its ``position`` in ``tokenize(caption)`` (= its step in the maps), the word,
    the scene ``shape`` it names (0 or 1) and ``order``, its mention's place in caption order (0 first)."""

    position: int
    word: str
    shape: int
    order: int


@dataclass(frozen=True)
class GroundingReport:
    """Both measures for the model's maps and for the two baselines (shares 0–1, NaN with no words),
    how many words were scored and left out, and measure 1 again on the *reordered* words alone: those
    whose shape is not the one the prior looks at (the caption names the right or bottom shape first),
    where a left-then-right habit scores 0."""

    attention_on_object: float
    attention_mass_on_object: float
    uniform_on_object: float
    uniform_mass_on_object: float
    prior_on_object: float
    prior_mass_on_object: float
    grounded_words: int
    excluded_words: int
    single_shape_captions: int
    attention_on_object_reordered: float
    uniform_on_object_reordered: float
    prior_on_object_reordered: float
    reordered_words: int

    def as_dict(self) -> dict:
        """A JSON-ready dict (NaN becomes None): the model's two measures at the top level, as
        ``evaluate --json`` reports them, the baselines under ``"uniform"`` and
        ``"first_word_first_shape"``."""

        def number(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "attention_on_object": number(self.attention_on_object),
            "attention_mass_on_object": number(self.attention_mass_on_object),
            "attention_on_object_reordered": number(self.attention_on_object_reordered),
            "uniform": {
                "attention_on_object": number(self.uniform_on_object),
                "attention_mass_on_object": number(self.uniform_mass_on_object),
                "attention_on_object_reordered": number(self.uniform_on_object_reordered),
            },
            "first_word_first_shape": {
                "attention_on_object": number(self.prior_on_object),
                "attention_mass_on_object": number(self.prior_mass_on_object),
                "attention_on_object_reordered": number(self.prior_on_object_reordered),
            },
            "grounded_words": self.grounded_words,
            "excluded_words": self.excluded_words,
            "single_shape_captions": self.single_shape_captions,
            "reordered_words": self.reordered_words,
        }


def cell_centres(cells: int, image_size: float) -> torch.Tensor:
    """The centres of a square grid's ``cells`` (row by row) in pixels of the input: ``[N, 2]`` as (x, y)."""
    side = math.isqrt(cells)
    if side * side != cells:
        raise ValueError(f"a map of {cells} cells is not a square grid")
    step = image_size / side
    along = (torch.arange(side, dtype=torch.float64) + 0.5) * step
    rows, cols = torch.meshgrid(along, along, indexing="ij")
    return torch.stack([cols.flatten(), rows.flatten()], dim=1)


def _mention_words(mention: Mention, tokens: list[str]) -> list[tuple[int, str]]:
    return [(at, tokens[at]) for at in (mention.colour_at, mention.kind_at) if at is not None]


def grounded_words(caption: str, scene: Scene) -> tuple[list[GroundedWord], int]:
    """The colour and shape words of ``caption`` matched to a shape of ``scene`` (two shapes), and how many
    such words name no matched shape. A single-shape scene gives ``([], 0)``."""
    if len(scene.shapes) != 2:
        return [], 0
    tokens = tokenize(caption)
    facts = parse_caption(caption)
    first_at = [min(at for at in (m.colour_at, m.kind_at, m.size_at) if at is not None) for m in facts.shapes]
    caption_order = sorted(range(len(facts.shapes)), key=lambda i: first_at[i])
    words, excluded = [], 0
    for i, j in match_shapes(facts.shapes, scene, facts.places()):
        if i is None:
            continue
        found = _mention_words(facts.shapes[i], tokens)
        if j is None:
            excluded += len(found)
            continue
        words += [GroundedWord(at, word, j, caption_order.index(i)) for at, word in found]
    return sorted(words, key=lambda w: w.position), excluded


def _centre(shape, scale: float) -> torch.Tensor:
    return torch.tensor([shape.x * scale, shape.y * scale], dtype=torch.float64)


def score_map(
    alpha: torch.Tensor, scene: Scene, shape: int, image_size: float, scene_size: float = IMAGE_SIZE
) -> tuple[int, float]:
    """``alpha [N]`` (a map over a square grid) → (on object 0/1, mass on object) for ``scene.shapes[shape]``
    of a two-shape scene; see the module docstring."""
    alpha = alpha.detach().double().cpu()
    centres = cell_centres(alpha.shape[0], image_size)  # [N, 2]
    scale = image_size / scene_size
    target, other = _centre(scene.shapes[shape], scale), _centre(scene.shapes[1 - shape], scale)
    looked = (alpha.unsqueeze(1) * centres).sum(dim=0) / alpha.sum()
    nearer = int(torch.dist(looked, target) < torch.dist(looked, other))
    radius = RADIUS[scene.shapes[shape].size] * image_size
    return nearer, float((alpha * disc_cover(alpha.shape[0], image_size, target, radius)).sum())


def disc_cover(cells: int, image_size: float, centre: torch.Tensor, radius: float) -> torch.Tensor:
    """The share of each cell's area inside the disc of ``radius`` around ``centre`` (x, y), ``[N]``, row by
    row; measured on a fine grid of points (:data:`COVER_POINTS` a side, whole per cell)."""
    side = math.isqrt(cells)
    per_cell = -(-COVER_POINTS // side)
    points = cell_centres((side * per_cell) ** 2, image_size)  # [(side·per_cell)², 2]
    inside = ((points - centre).norm(dim=1) <= radius).double().reshape(side * per_cell, side * per_cell)
    return inside.reshape(side, per_cell, side, per_cell).mean(dim=(1, 3)).flatten()


def fixed_places(scene: Scene, size: float) -> list[tuple[float, float]]:
    """Where a two-shape scene's shapes are placed before their jitter, in pixels of a ``size`` px image:
    the left and right (or top and bottom) quarter positions."""
    quarter, half = size / 4, size / 2
    if scene.layout == "horizontal":
        return [(quarter, half), (3 * quarter, half)]
    if scene.layout == "vertical":
        return [(half, quarter), (half, 3 * quarter)]
    raise ValueError(f"a {scene.layout!r} scene has no two fixed places")


def prior_map(scene: Scene, order: int, cells: int, image_size: float) -> torch.Tensor:
    """The "first word → first shape" map ``[N]``: the shape named ``order``-th looks at the fixed place of
    the scene's shape ``min(order, 1)``, its weight shared by the cells whose centres are nearest it."""
    place = torch.tensor(fixed_places(scene, image_size)[min(order, 1)], dtype=torch.float64)
    distance = (cell_centres(cells, image_size) - place).norm(dim=1)
    nearest = distance <= distance.min() + 1e-9 * image_size
    return nearest.double() / nearest.sum()


def _share(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def grounding_report(
    captions: Sequence[str],
    maps: torch.Tensor | Sequence[torch.Tensor],
    scenes: Sequence[Scene],
    image_size: float,
    scene_size: float = IMAGE_SIZE,
) -> GroundingReport:
    """Score the maps of generated captions against their scenes' truth.

    ``maps[b]`` is ``[steps, N]`` for ``captions[b]`` (``maps [B, steps, N]`` from
    :func:`helpers.decoding.greedy`, or one tensor per caption), row ``k`` the map that chose word ``k``;
    ``scenes[b]`` the truth of that image, drawn at ``scene_size`` px; ``image_size`` the model's input
    side in pixels.
    """
    if not len(captions) == len(maps) == len(scenes):
        counts = f"{len(captions)} captions, {len(maps)} maps and {len(scenes)} scenes"
        raise ValueError(f"{counts}: need one map and one scene per caption")
    scores: dict[str, list[float]] = {name: [] for name in ("model", "uniform", "prior")}
    masses: dict[str, list[float]] = {name: [] for name in scores}
    reordered: dict[str, list[float]] = {name: [] for name in scores}
    excluded = single = 0
    for b, (caption, scene) in enumerate(zip(captions, scenes, strict=True)):
        if len(scene.shapes) != 2:
            single += 1
            continue
        words, left_out = grounded_words(caption, scene)
        excluded += left_out
        steps, cells = maps[b].shape
        for word in words:
            if word.position >= steps:
                raise ValueError(f"caption {b} ({caption!r}) has word {word.position} but {steps} maps")
            candidates = {
                "model": maps[b][word.position],
                "uniform": torch.full((cells,), 1.0 / cells, dtype=torch.float64),
                "prior": prior_map(scene, word.order, cells, image_size),
            }
            for name, alpha in candidates.items():
                on, mass = score_map(alpha, scene, word.shape, image_size, scene_size)
                scores[name].append(on)
                masses[name].append(mass)
                if word.shape != min(word.order, 1):
                    reordered[name].append(on)
    return GroundingReport(
        _share(scores["model"]),
        _share(masses["model"]),
        _share(scores["uniform"]),
        _share(masses["uniform"]),
        _share(scores["prior"]),
        _share(masses["prior"]),
        grounded_words=len(scores["model"]),
        excluded_words=excluded,
        single_shape_captions=single,
        attention_on_object_reordered=_share(reordered["model"]),
        uniform_on_object_reordered=_share(reordered["uniform"]),
        prior_on_object_reordered=_share(reordered["prior"]),
        reordered_words=len(reordered["model"]),
    )
