"""Read Flickr8k: the official release (:func:`read_flickr8k`) and Kaggle's re-packaging of it
(:func:`read_flickr8k_kaggle`), each into a :class:`~helpers.caption_table.CaptionData`.

The Flickr8k text layout is defined here once: :mod:`helpers.scenes` writes the shapes set in it, and
:mod:`helpers.download` extracts the official zips into it::

    root/Flicker8k_Dataset/NAME.jpg                the images
    root/Flickr8k.token.txt                       NAME.jpg#k<TAB>caption, five per image
    root/Flickr_8k.{train,dev,test}Images.txt     one image name per line
"""

from __future__ import annotations

import csv
import io
import zlib
from pathlib import Path

from helpers.caption_table import (
    CaptionData,
    DatasetFormatError,
    Skipped,
    existing_dir,
    find_file,
    find_image_dir,
    keep_images,
    make_table,
    missing_reason,
    read_text,
    required_file,
)

FLICKR8K_TOKEN_FILE = "Flickr8k.token.txt"
FLICKR8K_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
FLICKR8K_IMAGE_DIR = "Flicker8k_Dataset"  # sic: the official zip spells it "Flicker"
# Where the official text zip (Flickr8k_text.zip, whose files sit at its top) is extracted; the reader
# also finds the text files directly in the root.
FLICKR8K_TEXT_DIR = "Flickr8k_text"
# The folders the reader accepts for images: the official one first, then those of re-packaged copies.
FLICKR8K_IMAGE_DIRS = (FLICKR8K_IMAGE_DIR, "Flickr8k_Dataset", "Images", "images")
KAGGLE_CAPTIONS_FILE = "captions.txt"
KAGGLE_IMAGE_DIRS = ("Images", "images")


def read_flickr8k(root: Path | str) -> CaptionData:
    """Read the official Flickr8k release.

    In: the dataset root. ``Flickr8k.token.txt`` (lines ``name.jpg#k<TAB>caption``) and the split files
    ``Flickr_8k.{train,dev,test}Images.txt`` may sit in the root or an immediate subfolder (the official
    zip extracts to ``Flickr8k_text/``); images in ``Flicker8k_Dataset/`` (sic), ``Flickr8k_Dataset/``,
    ``Images/`` or ``images/``, in the root or an immediate subfolder.

    Out: ``CaptionData("flickr8k", table, skipped)``, rows in token-file order. Skipped are:
    rows without a tab, rows whose name ends in ``.jpg.1`` (known duplicates in the real file), repeated
    ``name#k`` rows (the first is kept), empty captions, images in no split file or in several, images
    missing on disk, and images listed in a split file that have no captions.

    Raises ``DatasetFormatError`` when the token file or all split files are missing, or the token file
    is empty, binary, or has no line of the expected form.
    """
    root = existing_dir(root)
    dirs, token_path = required_file(root, FLICKR8K_TOKEN_FILE)

    skipped: list[Skipped] = []
    rows, well_formed = _parse_flickr8k_tokens(token_path, skipped)
    if well_formed == 0:
        raise DatasetFormatError(
            f"{token_path} has no line of the form 'name.jpg#k<TAB>caption' (is it empty?)."
        )

    # Split files usually sit next to the token file, so look there first.
    split_dirs = [token_path.parent, *(d for d in dirs if d != token_path.parent)]
    split_of, in_several = _read_flickr8k_splits(split_dirs, root)

    image_dir, on_disk = find_image_dir(dirs, FLICKR8K_IMAGE_DIRS)
    missing = missing_reason(image_dir, root, FLICKR8K_IMAGE_DIRS)
    dropped: dict[str, str] = {}
    for name, _, _ in rows:
        if name in dropped:
            continue
        if name in in_several:
            dropped[name] = "listed in more than one split file"
        elif name not in split_of:
            dropped[name] = "not in any split file"
        elif name not in on_disk:
            dropped[name] = missing
    rows = keep_images(rows, dropped, skipped)

    captioned = {name for name, _, _ in rows} | set(dropped)
    skipped.extend(
        Skipped(name, "listed in a split file but has no captions")
        for name in [*split_of, *in_several]
        if name not in captioned
    )
    # Every surviving row's image was found in image_dir, so it is not None when rows is not empty.
    table = make_table([(str(image_dir / name), caption, split_of[name]) for name, caption, _ in rows], root)
    return CaptionData("flickr8k", table, skipped)


def _parse_flickr8k_tokens(path: Path, skipped: list[Skipped]) -> tuple[list[tuple[str, str, str]], int]:
    """``Flickr8k.token.txt`` → ``([(image name, caption, "name#k")], number of well-formed lines)``.

    Malformed and duplicate lines go to ``skipped``; blank lines are not rows and are ignored.
    """
    rows = []
    well_formed = 0
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        item = f"{path.name} line {number}"
        key, tab, caption = line.partition("\t")
        key, caption = key.strip(), caption.strip()
        if not tab:
            skipped.append(Skipped(item, "no tab between 'name.jpg#k' and the caption"))
            continue
        name, hash_sign, number_k = key.rpartition("#")
        if not hash_sign or not name or not number_k.isdigit():
            skipped.append(Skipped(item, "expected 'name.jpg#k' before the tab"))
            continue
        well_formed += 1
        if name.endswith(".jpg.1"):
            skipped.append(Skipped(item, "known duplicate row: image name ends in '.jpg.1'"))
        elif key in first_line_of:
            skipped.append(Skipped(item, "repeats an earlier 'name.jpg#k' row; the first is kept"))
        elif not caption:
            skipped.append(Skipped(item, "empty caption"))
        else:
            first_line_of[key] = number
            rows.append((name, caption, key))
    return rows, well_formed


def _read_flickr8k_splits(dirs: list[Path], root: Path) -> tuple[dict[str, str], set[str]]:
    """The three split files → ``({image name: split}, {names listed in more than one split file})``."""
    split_of: dict[str, str] = {}
    in_several: set[str] = set()
    found_any = False
    for split, file_name in FLICKR8K_SPLIT_FILES.items():
        path = find_file(dirs, (file_name,))
        if path is None:
            continue
        found_any = True
        for line in read_text(path).split("\n"):
            name = line.strip()
            if not name:
                continue
            if split_of.get(name, split) != split:
                in_several.add(name)
            split_of.setdefault(name, split)
    if not found_any:
        names = ", ".join(FLICKR8K_SPLIT_FILES.values())
        raise DatasetFormatError(f"None of the split files {names} is in {root} or its immediate subfolders.")
    for name in in_several:
        del split_of[name]
    return split_of, in_several


# ---------------------------------------------------------------------------------------------------------
# Flickr8k as re-packaged on Kaggle
# ---------------------------------------------------------------------------------------------------------


def kaggle_split(image_name: str) -> str:
    """An image name → ``"train"``, ``"dev"`` or ``"test"``, about 80/10/10 over many names.

    Uses ``zlib.crc32`` of the name (stable across runs, machines and Python versions, unlike ``hash``),
    so an image always lands in the same split whatever the order of the file.
    """
    bucket = zlib.crc32(image_name.encode("utf-8")) % 10
    return "test" if bucket == 9 else "dev" if bucket == 8 else "train"


def read_flickr8k_kaggle(root: Path | str) -> CaptionData:
    """Read Kaggle's Flickr8k: ``captions.txt`` (CSV with header ``image,caption``) and ``Images/``.

    In: the dataset root; ``captions.txt`` may sit in it or an immediate subfolder, ``Images/`` (or
    ``images/``) next to it or in the root.

    Out: ``CaptionData("flickr8k-kaggle", table, skipped)``, rows in file order. Kaggle ships no split
    files, so each image gets a split from a hash of its name (:func:`kaggle_split`): about 80/10/10
    train/dev/test, the same on every run and independent of row order. Skipped are: rows without a
    comma, ``.jpg.1`` rows, exact repeats of an earlier row, empty captions, and images missing on disk.

    Raises ``DatasetFormatError`` when ``captions.txt`` is missing, binary, empty, or does not start with
    the header ``image,caption``.
    """
    root = existing_dir(root)
    dirs, path = required_file(root, KAGGLE_CAPTIONS_FILE)

    skipped: list[Skipped] = []
    rows = _parse_kaggle_captions(path, skipped)
    image_dirs = [path.parent, root] if path.parent != root else [root]
    image_dir, on_disk = find_image_dir(image_dirs, KAGGLE_IMAGE_DIRS)
    missing = missing_reason(image_dir, root, KAGGLE_IMAGE_DIRS)
    rows = keep_images(rows, {name: missing for name, _, _ in rows if name not in on_disk}, skipped)
    table = make_table([(str(image_dir / name), caption, split) for name, caption, split in rows], root)
    return CaptionData("flickr8k-kaggle", table, skipped)


def _parse_kaggle_captions(path: Path, skipped: list[Skipped]) -> list[tuple[str, str, str]]:
    """``captions.txt`` → ``[(image name, caption, split)]``; malformed and repeated rows go to ``skipped``.

    Blank rows are not rows and are ignored. Raises ``DatasetFormatError`` for an empty file, a missing
    ``image,caption`` header, or CSV that cannot be read.
    """
    reader = csv.reader(io.StringIO(read_text(path)))
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetFormatError(f"{path} is empty.")
        if [field.strip().lower() for field in header] != ["image", "caption"]:
            raise DatasetFormatError(f"{path} does not start with the header 'image,caption'.")
        rows: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue
            item = f"{path.name} line {reader.line_num}"
            if len(fields) < 2:
                skipped.append(Skipped(item, "no comma between the image name and the caption"))
                continue
            # An unquoted caption with commas arrives as several fields; joining them restores it.
            name, caption = fields[0].strip(), ",".join(fields[1:]).strip()
            if name.endswith(".jpg.1"):
                skipped.append(Skipped(item, "known duplicate row: image name ends in '.jpg.1'"))
            elif (name, caption) in seen:
                skipped.append(Skipped(item, "repeats an earlier row"))
            elif not caption:
                skipped.append(Skipped(item, "empty caption"))
            else:
                seen.add((name, caption))
                rows.append((name, caption, kaggle_split(name)))
    except csv.Error as error:
        raise DatasetFormatError(
            f"{path} is not readable as CSV: {error} (line {reader.line_num})."
        ) from None
    return rows
