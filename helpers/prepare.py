"""A dataset ready for training: its captions read (in any supported format), its images checked once,
the splits, and the vocabulary of its training captions.

:func:`prepare_data` leaves out what cannot be used before training starts, and says what it left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from helpers.caption_files import load_captions
from helpers.caption_table import Skipped
from helpers.config import REAL_DATA_MIN_FREQ
from helpers.data import IMAGE_CHECKS_FILE, check_images
from helpers.utils import progress_enabled
from helpers.vocabulary import Vocabulary

SPLITS = ("train", "dev", "test")


@dataclass
class PreparedData:
    """Captions and images ready for training: only rows whose image decodes are kept."""

    format: str
    table: pd.DataFrame  # image, caption, split
    skipped: list[Skipped]
    vocab: Vocabulary

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name].reset_index(drop=True)

    def images(self, name: str) -> list[str]:
        """The unique images of a split, in file order."""
        return list(dict.fromkeys(self.split(name)["image"]))

    def references(self, name: str) -> dict[str, list[str]]:
        """Image → its captions, for BLEU."""
        return self.split(name).groupby("image", sort=False)["caption"].apply(list).to_dict()


def dataset_root(data_dir: Path | str) -> Path:
    """The folder a dataset lives in: ``data_dir`` itself, or the folder of a caption file given by path
    (Karpathy's ``dataset_coco.json``). Caches go in its ``.cache/``: beside the dataset, never "under" a
    file.
    """
    path = Path(data_dir).expanduser()
    return path.parent if path.is_file() else path


def default_min_freq(data_dir: Path | str) -> int:
    """The vocabulary threshold ``train`` uses unless told: 1 on the offline shapes set (all 40-odd words
    matter, and each is seen thousands of times), :data:`~helpers.config.REAL_DATA_MIN_FREQ` on anything
    else.

    The shapes set is recognised by the marker file :func:`helpers.scenes.make_shapes` writes into it
    (its captions are in the Flickr8k format, so the format alone cannot tell them apart).
    """
    from helpers.scenes import MARKER

    return 1 if (dataset_root(data_dir) / MARKER).is_file() else REAL_DATA_MIN_FREQ


def prepare_data(
    data_dir: Path | str,
    min_freq: int | None = None,
    log: Callable[[str], None] = print,
    splits: Sequence[str] = SPLITS,
) -> PreparedData:
    """Read a dataset in any supported format, check the images of ``splits`` once, build the vocabulary.

    Broken images are reported (with a count and reasons) and their captions left out *before* any
    training starts, so no epoch can crash halfway. Only the rows of ``splits`` are kept (``train`` needs
    train and dev, ``evaluate`` only the split it scores), and only their images are decoded: in
    parallel, with a progress bar, and remembered in ``<dataset>/.cache/image-checks.json`` until the
    files change (:func:`helpers.data.check_images`). The vocabulary comes from the training captions
    only (of images that decode, when ``splits`` includes train), with the words seen at least
    ``min_freq`` times (``None``: the dataset's own threshold, :func:`default_min_freq`).
    """
    data = load_captions(data_dir)
    used = data.table[data.table["split"].isin(list(splits))]
    readable, broken = check_images(
        list(dict.fromkeys(used["image"])),
        cache_file=dataset_root(data_dir) / ".cache" / IMAGE_CHECKS_FILE,
        progress=progress_enabled(),
        log=log,
    )
    table = used[used["image"].isin(set(readable))].reset_index(drop=True)
    skipped = list(data.skipped) + broken
    log(
        f"Read {table['image'].nunique()} images and {len(table)} captions ({data.format}); "
        f"skipped {len(skipped)} item(s)" + (":" if skipped else ".")
    )
    for item in skipped[:5]:
        log(f"  skipped {item.item}: {item.reason}")
    if len(skipped) > 5:
        log(f"  ... and {len(skipped) - 5} more")
    # (without train among the splits, e.g. for evaluate, the vocabulary comes from every train caption)
    train = (table if "train" in splits else data.table).query("split == 'train'")
    if train.empty and "train" in splits:
        raise ValueError(f"{data_dir}: no usable training captions left")
    min_freq = default_min_freq(data_dir) if min_freq is None else min_freq
    vocab = Vocabulary.build(train["caption"], min_freq=min_freq)
    return PreparedData(data.format, table, skipped, vocab)
