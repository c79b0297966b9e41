"""Read a caption dataset in any of its four common formats into one plain table: :func:`load_captions`.

:func:`detect_format` names the format from the files a folder holds, and the format's reader reads it.
The four formats side by side (their files may sit in the folder given or in a subfolder)::

    format            caption files                                   split of each image
    flickr8k          Flickr8k.token.txt (NAME.jpg#k<TAB>caption),    the split file that lists it
                      Flickr_8k.{train,dev,test}Images.txt
    flickr8k-kaggle   captions.txt (CSV with header image,caption)    a hash of its name (about 80/10/10)
    coco              annotations/captions_{train,val}2017.json       train2017 → train, val2017 → dev
    karpathy          dataset_{flickr8k,flickr30k,coco}.json          its "split": train, val → dev, test,
                                                                      restval → train

The readers: :func:`helpers.flickr8k_captions.read_flickr8k` and ``read_flickr8k_kaggle``,
:func:`helpers.coco_captions.read_coco` and ``read_karpathy``. Each returns a
:class:`~helpers.caption_table.CaptionData` ``(format, table, skipped)``: a table with the columns
``image``, ``caption`` and ``split``, one row per caption, and a :class:`~helpers.caption_table.Skipped`
per dropped row or image, saying which and why (:mod:`helpers.caption_table`).

Real files have quirks (CRLF endings, a UTF-8 BOM, duplicate rows, images missing on disk). Readers never
drop anything silently and never crash on such rows; a file that cannot be parsed at all raises
:class:`~helpers.caption_table.DatasetFormatError` naming the file and the problem.

    >>> data = load_captions("data/flickr8k")  # doctest: +SKIP
    >>> data.format, list(data.table.columns)  # doctest: +SKIP
    ('flickr8k', ['image', 'caption', 'split'])
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.caption_table import CaptionData, DatasetFormatError, existing_dir, find_file, search_dirs
from helpers.coco_captions import COCO_SPLITS, KARPATHY_FILES, read_coco, read_karpathy
from helpers.flickr8k_captions import (
    FLICKR8K_TOKEN_FILE,
    KAGGLE_CAPTIONS_FILE,
    read_flickr8k,
    read_flickr8k_kaggle,
)

READERS = {
    "flickr8k": read_flickr8k,
    "flickr8k-kaggle": read_flickr8k_kaggle,
    "coco": read_coco,
    "karpathy": read_karpathy,
}
FORMATS = tuple(READERS)


def detect_format(root: Path | str) -> str:
    """A dataset directory → the name of its format, one of :data:`FORMATS`, judged by file names only.

    Looks for ``Flickr8k.token.txt`` ("flickr8k"), ``captions.txt`` ("flickr8k-kaggle") and
    ``dataset_*.json`` ("karpathy") in the root and its immediate subfolders, and for
    ``captions_{train,val}2017.json`` ("coco") in the root and ``annotations/``. When several are present,
    the first in that order of :data:`FORMATS` wins. A path to a Karpathy JSON file is "karpathy".

    Raises ``DatasetFormatError`` when the directory does not exist or holds none of these files.
    """
    given = Path(root).expanduser()
    if given.is_file() and given.name in KARPATHY_FILES:
        return "karpathy"
    root = existing_dir(given)
    dirs = search_dirs(root)
    coco_files = tuple(f"captions_{folder}.json" for folder in COCO_SPLITS)
    if find_file(dirs, (FLICKR8K_TOKEN_FILE,)):
        return "flickr8k"
    if find_file(dirs, (KAGGLE_CAPTIONS_FILE,)):
        return "flickr8k-kaggle"
    if find_file([root / "annotations", root], coco_files):
        return "coco"
    if find_file(dirs, KARPATHY_FILES):
        return "karpathy"
    raise DatasetFormatError(
        f"No caption dataset found in {root}: looked for {FLICKR8K_TOKEN_FILE} (Flickr8k), "
        f"{KAGGLE_CAPTIONS_FILE} (Kaggle Flickr8k), annotations/captions_{{train,val}}2017.json (COCO) "
        "or dataset_{flickr8k,flickr30k,coco}.json (Karpathy) in it and its immediate subfolders."
    )


def load_captions(root: Path | str) -> CaptionData:
    """A dataset directory → ``CaptionData(format, table, skipped)``: :func:`detect_format`, then its reader.

    Raises ``DatasetFormatError`` as those do.
    """
    return READERS[detect_format(root)](root)


def _stats(values: pd.Series) -> dict[str, float]:
    """Numbers → ``{"min", "max", "mean"}`` as plain Python numbers (zeros when there are none)."""
    if values.empty:
        return {"min": 0, "max": 0, "mean": 0.0}
    return {"min": int(values.min()), "max": int(values.max()), "mean": round(float(values.mean()), 2)}


def summarize(data: CaptionData) -> dict[str, Any]:
    """``CaptionData`` → a JSON-serialisable summary of what was kept and what was skipped.

    Out: ``{"format", "root", "images" (unique images kept), "captions", "splits": {split: n_images}``
    (always train, dev and test), ``"captions_per_image"`` and ``"caption_words"`` (each
    ``{"min", "max", "mean"}``, words split on whitespace, means rounded to 2 places),
    ``"skipped": [{"item", "reason"}]``, ``"skipped_by_reason": {reason: count}`` (most frequent first).
    ``"root"`` comes from ``table.attrs["root"]`` and is ``None`` when the table lost it.
    """
    table = data.table
    splits = table.drop_duplicates("image")["split"].value_counts()
    return {
        "format": data.format,
        "root": table.attrs.get("root"),
        "images": int(table["image"].nunique()),
        "captions": len(table),
        "splits": {split: int(splits.get(split, 0)) for split in ("train", "dev", "test")},
        "captions_per_image": _stats(table.groupby("image").size()),
        "caption_words": _stats(table["caption"].str.split().str.len()),
        "skipped": [{"item": s.item, "reason": s.reason} for s in data.skipped],
        "skipped_by_reason": dict(Counter(s.reason for s in data.skipped).most_common()),
    }
