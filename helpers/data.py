"""Images and captions as tensors: reading any image safely, the transform, datasets and collate.

The image pipeline is the design's, exactly: PIL image in any mode → RGB (EXIF orientation respected) →
Resize → ToTensor → Normalize with ImageNet's statistics → ``[3, 224, 224]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision import transforms

from helpers.formats import Skipped
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


def check_images(paths: Sequence[str]) -> tuple[list[str], list[Skipped]]:
    """Open every image once, before any training starts.

    Returns ``(readable, skipped)``: the paths that decode, in their order, and one
    :class:`Skipped` per broken file with its reason. A dataset then holds only readable images, so a
    broken file is reported up front instead of crashing an epoch halfway through.
    """
    readable, skipped = [], []
    for path in paths:
        try:
            load_image(path)
        except ImageLoadError as error:
            skipped.append(Skipped(str(path), str(error).split(": ", 1)[-1]))
        else:
            readable.append(path)
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
    each image file is read when its row is asked for. ``max_len`` caps the number of words.
    """

    def __init__(
        self,
        images: Sequence[str],
        captions: Sequence[str],
        vocab: Vocabulary,
        transform,
        max_len: int | None = None,
    ):
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions: they must pair up")
        self.images, self.transform = list(images), transform
        self.captions = [torch.tensor(vocab.encode(c, max_len=max_len)) for c in captions]

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(load_image(self.images[i])), self.captions[i]


def pad_captions(captions: Sequence[torch.Tensor], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length index tensors → ``(padded [B, max_len], lengths [B])``, padding with ``<pad>``.

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
