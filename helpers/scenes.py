"""The course's offline dataset: scenes of coloured shapes, five human-like captions each.

No real dataset can be downloaded offline or in CI, so the course draws its own. Every scene holds one
or two shapes (circle, square, triangle) in one of six colours, small or large, on a white, grey or
black background; two shapes stand side by side or one above the other. Five "annotators"
describe each scene, each in their own style, like the five captions of Flickr8k: some mention sizes,
some the background, some say "big" where others say "large".

The result is written in the Flickr8k text layout, so the course reads it with the real Flickr8k reader::

    root/Flicker8k_Dataset/scene_000000.jpg ...
    root/Flickr8k.token.txt                  scene_000000.jpg#0<TAB>a large red circle ...
    root/Flickr_8k.trainImages.txt           (and devImages, testImages)
    root/scenes.jsonl                        {"image": "scene_000000.jpg", "background": "grey", ...}

``scenes.jsonl`` is not part of Flickr8k: it holds the truth about each scene (background, layout and
every shape's kind, colour, size and centre), so :mod:`helpers.attributes` can check what a caption says.

Everything is deterministic from ``seed``: scene ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from helpers.flickr8k_captions import FLICKR8K_IMAGE_DIR, FLICKR8K_SPLIT_FILES, FLICKR8K_TOKEN_FILE

# Three shapes, drawn upright and not too small: the frozen, randomly initialised ResNet50 (the offline
# encoder) tells shapes apart far less well than colours or backgrounds, and a fourth shape or a random
# tilt made it little better than chance (the probe's figures: benchmarks/README.md, "Figures the code's
# comments rest on").
SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
}
BACKGROUNDS = {"white": (245, 245, 245), "grey": (150, 150, 150), "black": (20, 20, 20)}
SIZES = ("small", "large")
IMAGE_SIZE = 128
# A shape's radius as a share of the image side, before a random ±10 %; a square's or a triangle's
# corners lie 1.3 or 1.25 times as far out.
RADIUS = {"small": 0.14, "large": 0.21}
SPLIT_FRACTIONS = {"train": 0.75, "dev": 0.125, "test": 0.125}
# The Flickr8k layout's names, from the one place that defines them (the reader's module).
SPLIT_FILES = FLICKR8K_SPLIT_FILES
IMAGE_DIR = FLICKR8K_IMAGE_DIR
TOKEN_FILE = FLICKR8K_TOKEN_FILE
TRUTH_FILE = "scenes.jsonl"  # what each image really shows, one JSON object per line
MARKER = ".complete.json"
PARTIAL_MARKER = ".partial.json"  # while make_shapes replaces a set: the names it may touch


@dataclass(frozen=True)
class Shape:
    """One shape in a scene: what it is, and its centre in pixels."""

    kind: str
    colour: str
    size: str
    x: float
    y: float


@dataclass(frozen=True)
class Scene:
    """A whole picture: background, one or two shapes, and how two shapes are arranged.

    ``layout`` is ``"single"``, ``"horizontal"`` (``shapes[0]`` is the left one) or ``"vertical"``
    (``shapes[0]`` is the top one).
    """

    background: str
    layout: str
    shapes: tuple[Shape, ...]


def scene_record(scene: Scene, image: str) -> dict:
    """One line of ``scenes.jsonl``: the image's file name and everything in its scene.

    ``{"image": "scene_000000.jpg", "background": "grey", "layout": "horizontal", "shapes": [{"kind":
    "circle", "colour": "red", "size": "large", "x": 31.2, "y": 66.0}, ...]}`` (centres in pixels,
    rounded to 0.1).
    """
    shapes = [{**asdict(shape), "x": round(shape.x, 1), "y": round(shape.y, 1)} for shape in scene.shapes]
    return {"image": image, "background": scene.background, "layout": scene.layout, "shapes": shapes}


def scene_from_record(record: dict) -> Scene:
    """The inverse of :func:`scene_record` (the file name is dropped)."""
    return Scene(record["background"], record["layout"], tuple(Shape(**shape) for shape in record["shapes"]))


def random_scene(rng: np.random.Generator, image_size: int = IMAGE_SIZE) -> Scene:
    """Draw the content of one scene (no pixels yet)."""
    background = str(rng.choice(list(BACKGROUNDS)))
    layout = str(rng.choice(["single", "horizontal", "vertical"], p=[0.2, 0.4, 0.4]))
    n = 1 if layout == "single" else 2
    kinds = rng.choice(SHAPES, size=n)
    colours = rng.choice(list(COLOURS), size=n, replace=False)
    sizes = rng.choice(SIZES, size=n)
    quarter, jitter = image_size / 4, image_size / 16
    if layout == "single":
        centres = [(image_size / 2, image_size / 2)]
    elif layout == "horizontal":
        centres = [(quarter, image_size / 2), (3 * quarter, image_size / 2)]
    else:
        centres = [(image_size / 2, quarter), (image_size / 2, 3 * quarter)]
    shapes = tuple(
        Shape(
            str(kinds[i]),
            str(colours[i]),
            str(sizes[i]),
            cx + float(rng.uniform(-jitter, jitter)),
            cy + float(rng.uniform(-jitter, jitter)),
        )
        for i, (cx, cy) in enumerate(centres)
    )
    return Scene(background, layout, shapes)


def render(scene: Scene, rng: np.random.Generator, image_size: int = IMAGE_SIZE) -> Image.Image:
    """Paint a scene as an RGB image, with jittered sizes and pixel noise so no two look alike."""
    image = Image.new("RGB", (image_size, image_size), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        radius = image_size * RADIUS[shape.size] * float(rng.uniform(0.9, 1.1))
        colour = COLOURS[shape.colour]
        if shape.kind == "circle":
            box = [shape.x - radius, shape.y - radius, shape.x + radius, shape.y + radius]
            draw.ellipse(box, fill=colour)
        else:
            corners = {"square": 4, "triangle": 3}[shape.kind]
            start = {"square": 45.0, "triangle": -90.0}[shape.kind]
            # A square's corners lie further out than its sides: scale so it looks as big as a circle.
            reach = radius * (1.3 if shape.kind == "square" else 1.25)
            points = [
                (
                    shape.x + reach * math.cos(math.radians(start + k * 360 / corners)),
                    shape.y + reach * math.sin(math.radians(start + k * 360 / corners)),
                )
                for k in range(corners)
            ]
            draw.polygon(points, fill=colour)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-10, 11, size=(image_size, image_size, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _noun(shape: Shape, size_words: tuple[str, str] | None) -> str:
    """``"large red circle"`` (or without the size when ``size_words`` is None)."""
    if size_words is None:
        return f"{shape.colour} {shape.kind}"
    return f"{size_words[SIZES.index(shape.size)]} {shape.colour} {shape.kind}"


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def captions_for(scene: Scene) -> list[str]:
    """Five captions for one scene, one per "annotator", each with its own habits.

    Annotator 0 is precise, 1 leaves out sizes, 2 says big/little and mentions the second shape
    relative to the first, 3 counts the shapes, 4 mentions the background. Some end with " ." like
    Flickr8k's captions; the tokenizer strips it.
    """
    large_small, big_little = ("small", "large"), ("little", "big")
    if scene.layout == "single":
        (s,) = scene.shapes
        return [
            f"{_article(_noun(s, large_small))} in the middle of the picture",
            f"{_article(_noun(s, None))} .",
            f"there is {_article(_noun(s, big_little))} in the centre",
            f"one {_noun(s, large_small)} on its own .",
            f"{_article(_noun(s, large_small))} on a {scene.background} background",
        ]
    first, second = scene.shapes
    if scene.layout == "horizontal":
        rel, rel_back, side_1, side_2, where = (
            "to the left of",
            "to the right of",
            "left",
            "right",
            "on its right",
        )
    else:
        rel, rel_back, side_1, side_2, where = "above", "below", "top", "bottom", "below it"
    return [
        f"{_article(_noun(first, large_small))} {rel} {_article(_noun(second, large_small))}",
        f"{_article(_noun(second, None))} {rel_back} {_article(_noun(first, None))} .",
        f"there is {_article(_noun(first, big_little))} and {_article(_noun(second, big_little))} {where}",
        f"two shapes : {_article(_noun(first, None))} on the {side_1} and "
        f"{_article(_noun(second, None))} on the {side_2}",
        f"{_article(_noun(first, large_small))} and {_article(_noun(second, large_small))} "
        f"on a {scene.background} background .",
    ]


@dataclass(frozen=True)
class ShapesConfig:
    """What a generated dataset was made from; stored beside it so a rerun can tell if it is current."""

    images: int = 8000
    seed: int = 0
    image_size: int = IMAGE_SIZE
    version: int = 3  # 3: scenes.jsonl is written too (images and captions are those of version 2)


def split_sizes(images: int) -> dict[str, int]:
    """How many images go to train, dev and test (75/12.5/12.5; 8000 → 6000/1000/1000).

    Dev and test get at least one image each (3 → 1/1/1), since training validates on dev.
    """
    dev = test = max(1, round(images * SPLIT_FRACTIONS["dev"]))
    return {"train": images - dev - test, "dev": dev, "test": test}


def make_shapes(
    root: Path | str,
    images: int = 8000,
    seed: int = 0,
    *,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Write the shapes dataset to ``root`` in the Flickr8k layout and return ``root``.

    If ``root`` already holds a complete dataset made with the same settings, nothing is done
    (a second ``make course`` reuses it). The set is drawn in a temporary folder next to ``root`` and
    moved into place at the end, with the marker last, so an interrupted run never leaves a
    half-written dataset that looks complete.

    It replaces only what it wrote itself: the files its marker lists (``.complete.json``, or
    ``.partial.json`` while a replacement is under way), and it says so in one ``log`` line. Anything
    else in ``root`` (a ``.cache`` of features, your notes) is kept. A non-empty folder without its
    marker, or a path that is a file, raises ``ValueError`` and nothing changes. ``force=True``
    rebuilds a complete set, and writes into a non-empty folder next to what is there, as long as
    none of the set's names (``Flicker8k_Dataset/``, the caption and split files) is taken: it never
    deletes or overwrites a file it did not write.
    """
    root = Path(root)
    if images < 3:
        raise ValueError(f"make_shapes needs at least 3 images (one per split), got {images}")
    config = ShapesConfig(images=images, seed=seed)
    record = _read_record(root / MARKER)
    if not force and record is not None and _made_with(record, config):
        return root
    own = _own_names(root)
    _check_may_write(root, own, force)

    root.parent.mkdir(parents=True, exist_ok=True)
    # a staging folder of this process's own, so two processes drawing at once cannot collide
    staging = Path(tempfile.mkdtemp(prefix=f"{root.name}.partial-", dir=root.parent))
    try:
        files = _draw_set(staging, config)
        if not root.is_symlink() and root.is_dir() and not any(root.iterdir()):
            root.rmdir()  # an empty folder holds nothing to keep
        if not root.exists() and not root.is_symlink():
            try:
                staging.rename(root)
                return root
            except OSError:  # another process finished first: keep theirs if it is the same set
                again = _read_record(root / MARKER)
                if again is not None and _made_with(again, config):
                    return root
                raise
        if own:
            log(f"{root}: replacing the shapes set it holds (only its own files: {', '.join(own)})")
        _move_into(staging, root, own or [], files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _draw_set(staging: Path, config: ShapesConfig) -> list[str]:
    """Draw the set ``config`` describes into the empty folder ``staging``: images, captions, truth, splits,
    and the marker listing them, last. Returns the names written (the marker not included)."""
    (staging / IMAGE_DIR).mkdir()
    names, lines, truth = [], [], []
    for i in range(config.images):
        rng = np.random.default_rng([config.seed, i])
        scene = random_scene(rng)
        name = f"scene_{i:06d}.jpg"
        render(scene, rng).save(staging / IMAGE_DIR / name, quality=92)
        names.append(name)
        lines += [f"{name}#{k}\t{caption}" for k, caption in enumerate(captions_for(scene))]
        truth.append(json.dumps(scene_record(scene, name)))
    (staging / TOKEN_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (staging / TRUTH_FILE).write_text("\n".join(truth) + "\n", encoding="utf-8")

    start = 0
    for split, count in split_sizes(config.images).items():
        split_names = "\n".join(names[start : start + count]) + "\n"
        (staging / SPLIT_FILES[split]).write_text(split_names, encoding="utf-8")
        start += count
    files = sorted(p.name for p in staging.iterdir())
    (staging / MARKER).write_text(json.dumps({**asdict(config), "files": files}), encoding="utf-8")
    return files


def _read_record(path: Path) -> dict | None:
    """The JSON object in a marker file, or None if there is none or it cannot be read."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _made_with(record: dict, config: ShapesConfig) -> bool:
    """Whether a marker's record describes a set drawn with ``config``."""
    return {key: record.get(key) for key in asdict(config)} == asdict(config)


def _own_names(root: Path) -> list[str] | None:
    """The names ``make_shapes`` wrote in ``root``, from its marker; None if it holds no set it made.

    Only plain names are taken: a marker edited to name ``../x`` cannot make anything outside ``root``
    deleted.
    """
    names: set[str] = set()
    found = False
    for marker in (PARTIAL_MARKER, MARKER):
        record = _read_record(root / marker)
        if record is not None:
            found = True
            names.update(str(name) for name in record.get("files", []))
    if not found:
        return None
    return sorted(n for n in names if n == Path(n).name and n not in ("", ".", "..", MARKER, PARTIAL_MARKER))


def _check_may_write(root: Path, own: list[str] | None, force: bool) -> None:
    """Raise ``ValueError`` (one line, naming ``root``) when writing there could destroy someone's files."""
    if root.exists() and not root.is_dir():
        raise ValueError(
            f"{root} is a file, not a folder: make-shapes writes a folder there; choose another path "
            "(nothing was changed, and --force does not delete files it did not write)"
        )
    if own is not None or not root.is_dir() or not any(root.iterdir()):
        return
    if not force:
        raise ValueError(
            f"{root} is not empty and holds no shapes set made by make-shapes (no {MARKER}); nothing was "
            f"changed. Choose a new or empty folder such as {root / 'shapes'}, or add --force to write the "
            "set into it next to what is there (nothing there is deleted)"
        )
    names = (IMAGE_DIR, TOKEN_FILE, TRUTH_FILE, *SPLIT_FILES.values())
    taken = [name for name in names if (root / name).exists()]
    if taken:
        raise ValueError(
            f"{root} already holds {', '.join(taken)}, not written by make-shapes; even with --force "
            "it replaces only its own files: choose another folder (nothing was changed)"
        )


def _move_into(staging: Path, root: Path, old: list[str], new: list[str]) -> None:
    """Replace the names ``old`` in ``root`` by the drawn files ``new``, the marker last.

    First a ``.partial.json`` listing every name this touches, so that a run interrupted halfway
    leaves a folder that a rerun still recognises as its own (and cleans), never one that looks complete.
    """
    taken = [name for name in new if name not in old and (root / name).exists()]
    if taken:  # appeared since the check, or a name the check does not know
        raise ValueError(f"{root} already holds {', '.join(taken)}, not written by make-shapes")
    partial = root / PARTIAL_MARKER
    partial.write_text(json.dumps({"files": sorted(set(old) | set(new))}), encoding="utf-8")
    (root / MARKER).unlink(missing_ok=True)
    for name in old:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for name in new:
        shutil.move(staging / name, root / name)  # across file systems too (root may be a symlink)
    shutil.move(staging / MARKER, root / MARKER)
    partial.unlink()
