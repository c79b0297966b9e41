"""Images and captions as tensors: reading any image safely, the transform, datasets and collate.

The image pipeline is the one every ImageNet-trained torchvision backbone expects (and the classic
captioning tutorials use): PIL image in any mode → RGB (EXIF orientation respected) → Resize → ToTensor →
Normalize with ImageNet's statistics → ``[3, S, S]`` (``S`` = 224 unless a configuration says otherwise).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision import transforms
from tqdm.auto import tqdm

from helpers.caption_table import Skipped
from helpers.vocabulary import Vocabulary

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageLoadError(ValueError):
    """An image file that cannot be turned into pixels; the message names the file and the reason."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → an upright 8-bit RGB image.

    - EXIF orientation is applied, so a phone photo stored sideways comes out upright.
    - 16- and 32-bit greyscale (``I;16``, ``I``, ``F``) is scaled down to 8 bits; PIL's own conversion
      would clip every value above 255 to white.
    - Transparent images (``RGBA``, ``LA``, ``P`` with transparency) are laid on white, not black.
    - ``CMYK``, ``L``, ``1``, ``P``, ``YCbCr`` … go through PIL's conversion.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image(path: Path | str) -> Image.Image:
    """Read an image file fully and return it as upright RGB.

    Raises :class:`ImageLoadError` naming the file for anything that is not a readable image: a missing
    or empty file, a text file named ``.jpg``, a truncated JPEG, or a decompression bomb (an image that
    claims far more pixels than PIL's safety limit).
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{path}: cannot read image (the file is empty)")
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit; treat that as the bomb it may be.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # decode now, so a truncated file fails here and not mid-epoch
                return to_rgb(image)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: cannot read image (no such file)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageLoadError(
            f"{path}: cannot read image (refused as a decompression bomb: {error})"
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageLoadError(f"{path}: cannot read image (not an image file PIL recognises)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{path}: cannot read image ({error})") from None


def image_transform(image_size: int = 224) -> transforms.Compose:
    """RGB PIL image → normalised tensor ``[3, image_size, image_size]``.

    Resize to a square (the whole picture is kept: cropping could cut off a shape at the edge), then
    ToTensor (``[0, 255]`` → ``[0, 1]``, channels first), then Normalize with ImageNet's mean and
    standard deviation, the statistics the pretrained ResNet50 was trained with.
    """
    return transforms.Compose(
        [
            transforms.Resize((image_size, image_size), antialias=True),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo Normalize: ``[..., 3, H, W]`` normalised → the same shape in ``[0, 1]``, ready to show."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)


IMAGE_CHECKS_FILE = "image-checks.json"
"""The file in a dataset's ``.cache/`` folder that remembers which images decode (:func:`check_images`)."""
_CHECKS_FORMAT = "helpers image checks v1"  # written into the file: only a file with it is ours to replace


def _file_key(path: str) -> tuple[str, list[int]] | None:
    """``path`` → ``(resolved path, [size, mtime_ns])``, what an image's check is remembered by; ``None``
    when the file cannot be listed (then it is checked, and fails, as any missing file does)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), [stat.st_size, stat.st_mtime_ns]


def _read_checks(cache_file: Path) -> dict[str, list] | None:
    """The remembered checks ``{resolved path: [size, mtime_ns, reason or None]}``; ``{}`` when there is
    no file yet; ``None`` when a file is there that this code did not write (it must not be replaced)."""
    try:
        content = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict) or content.get("format") != _CHECKS_FORMAT:
        return None
    images = content.get("images")
    return images if isinstance(images, dict) else None


def _write_checks(cache_file: Path, images: dict[str, list]) -> str | None:
    """Write the checks to a temporary file and rename it over ``cache_file`` (a reader never sees half
    a file); returns why it could not (a read-only dataset, a full disk), or ``None``."""
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"format": _CHECKS_FORMAT, "images": images}), encoding="utf-8")
        os.replace(tmp, cache_file)
    except OSError as error:
        return f"{cache_file}: could not remember the image checks ({error.strerror or error})"
    finally:
        tmp.unlink(missing_ok=True)
    return None


def _check_one(path: str) -> str | None:
    """Decode one image; its problem (the part of the message after the file name), or ``None``."""
    try:
        load_image(path)
    except ImageLoadError as error:
        return str(error).split(": ", 1)[-1]
    return None


def check_images(
    paths: Sequence[str],
    workers: int | None = None,
    cache_file: Path | str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[list[str], list[Skipped]]:
    """Open every image once, before any training starts.

    Returns ``(readable, skipped)``: the paths that decode, in their order, and one
    :class:`Skipped` per broken file with its reason. A dataset then holds only readable images, so a
    broken file is reported up front instead of crashing an epoch halfway through.

    Images are decoded by ``workers`` threads (default: one per CPU core; PIL releases the GIL while it
    decodes), with a progress bar when ``progress`` is true. With ``cache_file`` (a JSON file in the
    dataset's ``.cache/``), each result is remembered by the file's resolved path, size and modification
    time, so the next command decodes only new or changed files. A file at that path that this code did
    not write is left alone (nothing is remembered then, and ``log`` says why).
    """
    paths = list(paths)
    cache_file = Path(cache_file) if cache_file is not None else None
    known = _read_checks(cache_file) if cache_file is not None else None
    if cache_file is not None and known is None and log is not None:
        log(f"{cache_file}: not an image check file of this course; left as it is, nothing remembered.")
    keys = [_file_key(path) for path in paths]
    reasons: list[str | None] = [None] * len(paths)
    todo = []
    for i, key in enumerate(keys):
        entry = known.get(key[0]) if known and key else None
        if key is not None and isinstance(entry, list) and len(entry) == 3 and entry[:2] == key[1]:
            reasons[i] = entry[2]
        else:
            todo.append(i)
    if todo:
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        with ThreadPoolExecutor(workers) as pool:
            results = pool.map(_check_one, (paths[i] for i in todo))
            bar = tqdm(results, total=len(todo), desc="checking images", leave=False, disable=not progress)
            for i, reason in zip(todo, bar, strict=True):
                reasons[i] = reason
        if known is not None:
            known.update({keys[i][0]: [*keys[i][1], reasons[i]] for i in todo if keys[i] is not None})
            problem = _write_checks(cache_file, known)
            if problem and log is not None:
                log(problem)
    readable = [path for path, reason in zip(paths, reasons, strict=True) if reason is None]
    skipped = [Skipped(str(path), reason) for path, reason in zip(paths, reasons, strict=True) if reason]
    return readable, skipped


class ImageFolderDataset(Dataset):
    """Images alone, for computing features once: item ``i`` → ``[3, S, S]``."""

    def __init__(self, paths: Sequence[str], transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(load_image(self.paths[i]))


class CaptionDataset(Dataset):
    """(image, caption) pairs: item ``i`` → ``(image [3, S, S], caption indices [n + 2])``.

    ``images`` and ``captions`` are parallel lists (one row per caption, as in the caption tables);
    each image file is read when its row is asked for. ``max_words`` caps the words of each caption
    (``<start>`` and ``<end>`` not counted, as in :meth:`Vocabulary.encode`).
    """

    def __init__(
        self,
        images: Sequence[str],
        captions: Sequence[str],
        vocab: Vocabulary,
        transform,
        max_words: int | None = None,
    ):
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions: they must pair up")
        self.images, self.transform = list(images), transform
        self.captions = [torch.tensor(vocab.encode(c, max_words)) for c in captions]

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(load_image(self.images[i])), self.captions[i]


def pad_captions(captions: Sequence[torch.Tensor], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length index tensors ``[n_i]`` → ``(padded [B, T], lengths [B])``, padding with ``<pad>``.

    ``T = max n_i`` counts tokens (``<start>`` and ``<end>`` included), not words.

    The batch keeps its order: the decoder accepts unsorted lengths.
    """
    lengths = torch.tensor([len(c) for c in captions], dtype=torch.long)
    padded = torch.full((len(captions), int(lengths.max())), pad_id, dtype=torch.long)
    for row, caption in enumerate(captions):
        padded[row, : len(caption)] = caption
    return padded, lengths


def collate_captions(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch ``(image [3, S, S], caption [n_i])`` pairs.

    Returns ``(images [B, 3, S, S], captions [B, max n_i], lengths [B])``.
    """
    images, captions = zip(*batch, strict=True)
    padded, lengths = pad_captions(captions)
    return torch.stack(images), padded, lengths
