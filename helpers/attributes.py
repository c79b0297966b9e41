"""What a caption says about a shapes scene, checked against what the scene really holds.

BLEU counts shared words; a learner wants to know whether the model names the right colour and shape.
The shapes set (:mod:`helpers.scenes`) writes the truth of every scene to ``scenes.jsonl``; this module
reads a caption in any of the five annotators' styles (or the model's mixture of them), pulls out what it
states, and scores each attribute:

==============  ===========================================================================================
``background``  the background colour, judged when the caption names one ("on a grey background")
``count``       the number of shapes: the caption's number word ("one", "two shapes") if it has one, else
                how many shapes it names; judged for every caption
``colour``      each shape's colour, judged once per shape *slot*: every shape of the scene, plus every
                shape the caption invents. A shape left out, a shape invented, or a shape named without a
                colour counts as one wrong colour
``kind``        circle, square or triangle, judged like ``colour``
``object``      colour and kind both right, judged like ``colour`` (the share of objects named correctly)
``size``        small or large ("little" and "big" mean the same), judged where the caption says a size
``relation``    the arrangement, judged once when the caption states one: one shape on its own ("in the
                middle", "on its own"), side by side ("to the left of", "on its right", "on the left"),
                or one above the other ("above", "below it", "on the top"). Right only if every such
                phrase holds: its layout is the scene's, and each shape it places stands there (the
                shape it puts on the left really is the left one, even when it is the only one named).
                Two shapes both "on the left", or a place given to an invented shape, are wrong
``all``         the whole image: the right number of shapes, each with the right colour and kind, nothing
                invented, and no size, background or relation stated wrongly (all five reference
                captions of every scene pass; sizes, background and relation may be left unsaid, as the
                annotators do)
==============  ===========================================================================================

Shapes are matched to the scene in any order: each named shape goes to the scene's shape it agrees with
most (kind, colour, size), so "a blue square and a red circle" is as right as "a red circle and a blue
square". An accuracy is ``correct / judged`` pooled over all images; an attribute never judged is NaN.
Scores are between 0 and 1.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import permutations
from pathlib import Path

import pandas as pd

from helpers.scenes import BACKGROUNDS, COLOURS, SHAPES, SIZES, TRUTH_FILE, Scene, scene_from_record
from helpers.vocabulary import tokenize

ATTRIBUTES = ("background", "count", "colour", "kind", "object", "size", "relation", "all")
SIZE_WORDS = {"small": "small", "little": "small", "large": "large", "big": "large"}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3}
# a model may put a background colour on a shape ("a grey circle"): still a colour, just a wrong one
COLOUR_WORDS = (*COLOURS, *BACKGROUNDS)
NOT_SAID = "(not said)"

# Arrangement phrases, checked in this order at each word (so "below it" wins over plain "below"):
# (words, layout, the place of the shape named just before the phrase, the other shape it places).
# Place 0 is the left or top shape (or the only one), 1 the right or bottom one. The other shape is the
# one named next ("a red circle to the left of a blue square"), the one named before ("a red circle and
# a blue square on its right": right of the circle), or none ("a red circle on the left").
_PHRASES: tuple[tuple[tuple[str, ...], str, int, str | None], ...] = (
    (("to", "the", "left", "of"), "horizontal", 0, "next"),
    (("to", "the", "right", "of"), "horizontal", 1, "next"),
    (("on", "its", "right"), "horizontal", 1, "before"),
    (("on", "its", "left"), "horizontal", 0, "before"),
    (("below", "it"), "vertical", 1, "before"),
    (("above", "it"), "vertical", 0, "before"),
    (("above",), "vertical", 0, "next"),
    (("below",), "vertical", 1, "next"),
    (("on", "the", "left"), "horizontal", 0, None),
    (("on", "the", "right"), "horizontal", 1, None),
    (("on", "the", "top"), "vertical", 0, None),
    (("on", "the", "bottom"), "vertical", 1, None),
    (("in", "the", "middle"), "single", 0, None),
    (("in", "the", "centre"), "single", 0, None),
    (("in", "the", "center"), "single", 0, None),
    (("on", "its", "own"), "single", 0, None),
)


@dataclass(frozen=True)
class Mention:
    """One shape a caption names; ``None`` where the caption does not say (or names no shape word).

    ``kind_at``, ``colour_at`` and ``size_at`` are the positions of those words in ``tokenize(caption)``
    (None where not said); they do not take part in comparing two mentions.
    """

    kind: str | None
    colour: str | None
    size: str | None  # "small" or "large"
    kind_at: int | None = field(default=None, compare=False)
    colour_at: int | None = field(default=None, compare=False)
    size_at: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Arrangement:
    """One arrangement phrase of a caption: the ``layout`` it states and the places it gives the shapes it
    is attached to, ``places = ((mention index, place), ...)`` with place 0 for the left or top shape (or
    the only one) and 1 for the right or bottom one. A phrase attached to no named shape has no places."""

    layout: str
    places: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class CaptionFacts:
    """What a caption states about a scene.

    ``shapes`` are in scene order when the caption says where they are (the left or top one first), else
    in the order the caption names them. ``arrangements`` are its arrangement phrases in caption order
    (their mention indices index ``shapes``); ``layout`` is the first one's: ``"single"``,
    ``"horizontal"``, ``"vertical"`` or None (not said). ``background`` is None when not said.
    """

    shapes: tuple[Mention, ...]
    count: int
    layout: str | None
    background: str | None
    arrangements: tuple[Arrangement, ...] = ()

    def places(self) -> list[int | None]:
        """Each shape's place (0 left or top, 1 right or bottom) if the caption gives it one and only one."""
        said: list[set[int]] = [set() for _ in self.shapes]
        for arrangement in self.arrangements:
            if arrangement.layout != "single":
                for i, place in arrangement.places:
                    said[i].add(place)
        return [next(iter(places)) if len(places) == 1 else None for places in said]


def _starts(tokens: list[str], i: int, phrase: tuple[str, ...]) -> bool:
    return tuple(tokens[i : i + len(phrase)]) == phrase


def _arrangement_at(tokens: list[str], i: int, named: int) -> Arrangement | None:
    """The arrangement phrase starting at word ``i`` (None if none), after ``named`` shapes were named.

    It places the shape named last, and the next or the previous one; a next one the caption never
    names is dropped by :func:`parse_caption`.
    """
    for words, layout, place, other in _PHRASES:
        if _starts(tokens, i, words):
            places = [(named - 1, place)] if named else []
            if other == "next":
                places.append((named, 1 - place))
            elif other == "before" and named >= 2:
                places.append((named - 2, 1 - place))
            return Arrangement(layout, tuple(places))
    return None


def _mention(said: dict[str, tuple[str, int]], kind: str | None, kind_at: int | None) -> Mention:
    """A mention from the colour and size words read since the last shape: ``{"colour": (word, at)}``."""
    colour, colour_at = said.get("colour", (None, None))
    size, size_at = said.get("size", (None, None))
    return Mention(kind, colour, size, kind_at, colour_at, size_at)


def _in_scene_order(facts: CaptionFacts) -> CaptionFacts:
    """Two shapes the caption places the other way round (the right or bottom one named first), swapped."""
    places = facts.places()
    if len(places) != 2 or places[0] == 0 or places[1] == 1 or places == [None, None]:
        return facts
    arrangements = tuple(
        Arrangement(a.layout, tuple((1 - i, place) for i, place in a.places)) for a in facts.arrangements
    )
    return replace(facts, shapes=facts.shapes[::-1], arrangements=arrangements)


def parse_caption(caption: str) -> CaptionFacts:
    """Read what a caption states: its shapes (kind, colour, size), count, arrangements and background.

    ``"a small red circle to the right of a large blue square ."`` → shapes ``(large blue square, small
    red circle)`` (the square is the left one), count 2, layout ``"horizontal"``, background None.
    A colour or size word not followed by a shape word is a shape with no kind.
    """
    tokens = tokenize(caption)
    shapes: list[Mention] = []
    said: dict[str, tuple[str, int]] = {}  # the colour and size of the shape being named
    arrangements: list[Arrangement] = []
    background = count = None
    for i, word in enumerate(tokens):
        if word == "background" and i > 0 and tokens[i - 1] in COLOUR_WORDS:
            background = background or tokens[i - 1]
            continue
        if word in SIZE_WORDS:
            said["size"] = (SIZE_WORDS[word], i)
            continue
        if word in COLOUR_WORDS and not (i + 1 < len(tokens) and tokens[i + 1] == "background"):
            said["colour"] = (word, i)
            continue
        if word in SHAPES:
            shapes.append(_mention(said, word, i))
            said = {}
            continue
        if said:  # "a red ." : a shape without its kind
            shapes.append(_mention(said, None, None))
            said = {}
        if word in NUMBER_WORDS and count is None:
            count = NUMBER_WORDS[word]
        arrangement = _arrangement_at(tokens, i, len(shapes))
        if arrangement is not None:
            arrangements.append(arrangement)
    if said:
        shapes.append(_mention(said, None, None))
    arrangements = [
        Arrangement(a.layout, tuple(p for p in a.places if p[0] < len(shapes))) for a in arrangements
    ]
    layout = arrangements[0].layout if arrangements else None
    count = len(shapes) if count is None else count
    return _in_scene_order(CaptionFacts(tuple(shapes), count, layout, background, tuple(arrangements)))


def _agreement(mention: Mention, shape) -> int:
    return (mention.kind == shape.kind) + (mention.colour == shape.colour) + (mention.size == shape.size)


def match_shapes(
    mentions: Sequence[Mention], scene: Scene, places: Sequence[int | None] | None = None
) -> list[tuple[int | None, int | None]]:
    """Pair the named shapes with the scene's, in any order: ``[(mention index, scene shape index)]``.

    The pairing agrees on the most kinds, colours and sizes; ties go to the pairing that puts the most
    mentions at their stated ``places`` (:meth:`CaptionFacts.places`: 0 for ``scene.shapes[0]``, None if
    unsaid), then to the caption's own order. A shape left out appears as ``(None, j)``, a shape
    invented as ``(i, None)``.
    """
    truth = scene.shapes
    places = list(places) if places is not None else [None] * len(mentions)
    n = min(len(mentions), len(truth))
    best, best_score = None, (-1, -1)
    for chosen in permutations(range(len(mentions)), n):
        for targets in permutations(range(len(truth)), n):
            pairing = list(zip(chosen, targets, strict=True))
            agreed = sum(_agreement(mentions[i], truth[j]) for i, j in pairing)
            score = (agreed, sum(places[i] == j for i, j in pairing))
            if score > best_score:
                best, best_score = pairing, score
    pairs: list[tuple[int | None, int | None]] = list(best or [])
    pairs += [(i, None) for i in range(len(mentions)) if i not in {p[0] for p in pairs}]
    pairs += [(None, j) for j in range(len(truth)) if j not in {p[1] for p in pairs}]
    return pairs


def _arranged_right(facts: CaptionFacts, scene: Scene, pairs: list[tuple[int | None, int | None]]) -> bool:
    """Whether every arrangement the caption states holds: its layout is the scene's, and every shape it
    places was matched to the scene's shape at that place (never an invented one)."""
    matched = {i: j for i, j in pairs if i is not None}
    return all(
        arrangement.layout == scene.layout and all(matched[i] == place for i, place in arrangement.places)
        for arrangement in facts.arrangements
    )


def score_caption(caption: str, scene: Scene) -> dict[str, tuple[int, int]]:
    """Each attribute of one caption → ``(correct, judged)``; see the module docstring for the rules.

    ``judged`` is 0 where the caption does not state the attribute (size, background, relation).
    """
    facts = parse_caption(caption)
    pairs = match_shapes(facts.shapes, scene, facts.places())
    result = {name: (0, 0) for name in ATTRIBUTES}

    def add(name: str, correct: bool) -> None:
        right, judged = result[name]
        result[name] = (right + int(correct), judged + 1)

    if facts.background is not None:
        add("background", facts.background == scene.background)
    add("count", facts.count == len(scene.shapes))
    for i, j in pairs:
        mention = facts.shapes[i] if i is not None else None
        shape = scene.shapes[j] if j is not None else None
        both = mention is not None and shape is not None
        add("colour", both and mention.colour == shape.colour)
        add("kind", both and mention.kind == shape.kind)
        add("object", both and mention.colour == shape.colour and mention.kind == shape.kind)
        if mention is not None and mention.size is not None:
            add("size", both and mention.size == shape.size)
    if facts.arrangements:
        add("relation", _arranged_right(facts, scene, pairs))
    objects_right = result["object"][0] == result["object"][1] == len(scene.shapes)
    stated = ("count", "size", "background", "relation")
    stated_right = all(result[name][0] == result[name][1] for name in stated)
    add("all", objects_right and stated_right)
    return result


def attribute_table(captions: Sequence[str], scenes: Sequence[Scene]) -> pd.DataFrame:
    """One row per caption: ``caption``, then per attribute its ``correct`` count and ``judged`` count.

    Columns: ``caption``, ``background``, ``background_judged``, ``count``, ``count_judged``, … for every
    name in :data:`ATTRIBUTES`. Sort or filter it to find the images a model gets wrong
    (``table[table["all"] == 0]``).
    """
    if len(captions) != len(scenes):
        raise ValueError(f"{len(captions)} captions for {len(scenes)} scenes")
    rows = []
    for caption, scene in zip(captions, scenes, strict=True):
        scores = score_caption(caption, scene)
        row: dict = {"caption": caption}
        for name in ATTRIBUTES:
            row[name], row[f"{name}_judged"] = scores[name]
        rows.append(row)
    columns = ["caption"] + [c for name in ATTRIBUTES for c in (name, f"{name}_judged")]
    return pd.DataFrame(rows, columns=columns)


def attribute_accuracy(captions: Sequence[str], scenes: Sequence[Scene]) -> dict[str, float]:
    """Every attribute's accuracy, in :data:`ATTRIBUTES` order: ``captions[i]`` describes ``scenes[i]``.

    Accuracies are 0–1, pooled over the captions (``correct / judged``); NaN if never judged.
    """
    table = attribute_table(captions, scenes)
    accuracy = {}
    for name in ATTRIBUTES:
        judged = int(table[f"{name}_judged"].sum())
        accuracy[name] = float(table[name].sum()) / judged if judged else math.nan
    return accuracy


def attribute_report(captions: Sequence[str], scenes: Sequence[Scene]) -> pd.DataFrame:
    """One row per attribute: ``accuracy`` (0–1), ``correct``, ``judged``, and ``stated``: the share of
    captions that state it (1.0 for ``count`` and ``all``, which every caption is judged on)."""
    table = attribute_table(captions, scenes)
    rows = []
    for name in ATTRIBUTES:
        correct, judged = int(table[name].sum()), int(table[f"{name}_judged"].sum())
        rows.append(
            {
                "attribute": name,
                "accuracy": correct / judged if judged else math.nan,
                "correct": correct,
                "judged": judged,
                "stated": float((table[f"{name}_judged"] > 0).mean()) if len(table) else math.nan,
            }
        )
    return pd.DataFrame(rows).set_index("attribute")


def attribute_confusion(
    captions: Sequence[str], scenes: Sequence[Scene], attribute: str = "kind"
) -> pd.DataFrame:
    """How often each true value is named as each value: rows the truth, columns what the caption says.

    ``attribute`` is ``"kind"``, ``"colour"`` or ``"size"``. Counts are over the scenes' shapes, matched
    as in :func:`score_caption`; a shape the caption leaves out (or names without that attribute) is
    counted in the last column, ``"(not said)"``; a value no scene has (a "grey" shape) gets a column of
    its own before it. Invented shapes have no true value and are not counted.
    """
    values = {"kind": SHAPES, "colour": tuple(COLOURS), "size": SIZES}.get(attribute)
    if values is None:
        raise ValueError(f"attribute must be 'kind', 'colour' or 'size', got {attribute!r}")
    if len(captions) != len(scenes):
        raise ValueError(f"{len(captions)} captions for {len(scenes)} scenes")
    counts: Counter[tuple[str, str]] = Counter()
    for caption, scene in zip(captions, scenes, strict=True):
        facts = parse_caption(caption)
        for i, j in match_shapes(facts.shapes, scene, facts.places()):
            if j is None:
                continue
            said = getattr(facts.shapes[i], attribute) if i is not None else None
            counts[getattr(scene.shapes[j], attribute), said or NOT_SAID] += 1
    extra = sorted({said for _, said in counts} - {*values, NOT_SAID})
    matrix = pd.DataFrame(
        0, index=pd.Index(values, name="true"), columns=pd.Index([*values, *extra, NOT_SAID], name="said")
    )
    for (true, said), n in counts.items():
        matrix.loc[true, said] = n
    return matrix


def find_scenes(root: Path | str) -> Path | None:
    """The truth file ``scenes.jsonl`` of a dataset root, or None if it has none (e.g. Flickr8k)."""
    path = Path(root) / TRUTH_FILE
    return path if path.is_file() else None


def read_scenes(path: Path | str) -> dict[str, Scene]:
    """``scenes.jsonl`` (or a dataset root holding it) → image file name → :class:`~helpers.scenes.Scene`.

    A line that is not a scene raises ``ValueError`` naming the file and the line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"{path}: no truth file (the shapes set writes one, Flickr8k has none)") from None
    scenes = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            scenes[record["image"]] = scene_from_record(record)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            why = f"{type(error).__name__}: {error}"
            raise ValueError(f"{path}, line {number}: not a scene ({why})") from None
    return scenes


def scenes_for(images: Sequence[str], scenes: dict[str, Scene]) -> list[Scene]:
    """The scene of each image path (looked up by file name), in the same order."""
    found = []
    for image in images:
        name = Path(image).name
        if name not in scenes:
            raise ValueError(f"{name}: no scene for this image in the truth file")
        found.append(scenes[name])
    return found
