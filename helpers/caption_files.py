"""Read real caption datasets in their four common formats into one plain table.

Every reader takes the dataset root directory and returns ``(table, skipped)``:

- ``table``: a DataFrame with exactly the columns ``image`` (path to the image file, built from the root
  as given), ``caption`` (the text, stripped of surrounding whitespace, otherwise raw) and ``split``
  (``"train"``, ``"dev"`` or ``"test"``), one row per caption, in file order, index ``0..n-1``.
- ``skipped``: one :class:`Skipped` per dropped row or image, saying which and why.

Real files have quirks (CRLF endings, a UTF-8 BOM, duplicate rows, images missing on disk). Readers never
drop anything silently and never crash on such rows; a file that cannot be parsed at all raises
:class:`DatasetFormatError` naming the file and the problem.

    >>> data = load_captions("data/flickr8k")  # doctest: +SKIP
    >>> data.format, list(data.table.columns)  # doctest: +SKIP
    ('flickr8k', ['image', 'caption', 'split'])
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

__all__ = [
    "FORMATS",
    "CaptionData",
    "DatasetFormatError",
    "Skipped",
    "detect_format",
    "kaggle_split",
    "load_captions",
    "read_coco",
    "read_flickr8k",
    "read_flickr8k_kaggle",
    "read_karpathy",
    "summarize",
]

FORMATS = ("flickr8k", "flickr8k-kaggle", "coco", "karpathy")
COLUMNS = ["image", "caption", "split"]

# The Flickr8k text layout, defined once: read_flickr8k reads it, helpers.scenes writes the shapes set in
# it, helpers.download extracts the official zips into it.
#   root/Flicker8k_Dataset/NAME.jpg                the images
#   root/Flickr8k.token.txt                       NAME.jpg#k<TAB>caption, five per image
#   root/Flickr_8k.{train,dev,test}Images.txt     one image name per line
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
COCO_SPLITS = {"train2017": "train", "val2017": "dev"}
KARPATHY_FILES = ("dataset_flickr8k.json", "dataset_flickr30k.json", "dataset_coco.json")
KARPATHY_SPLITS = {"train": "train", "val": "dev", "test": "test", "restval": "train"}
KARPATHY_IMAGE_DIRS = ("Images", "images", FLICKR8K_IMAGE_DIR, "Flickr8k_Dataset", "flickr30k-images")

# Folders that unzip tools leave behind and that must never be mistaken for data.
_IGNORED_DIRS = ("__MACOSX",)


class DatasetFormatError(ValueError):
    """A directory holds no known caption dataset, or one of its format files cannot be parsed at all."""


class Skipped(NamedTuple):
    """A row or image a reader dropped: ``item`` names it (file and line, or image), ``reason`` says why."""

    item: str
    reason: str


class CaptionData(NamedTuple):
    """What :func:`load_captions` returns: the detected format name, the caption table, the skipped items.

    The dataset root is kept in ``table.attrs["root"]`` (every reader sets it), so the tuple stays
    ``(format, table, skipped)``.
    """

    format: str
    table: pd.DataFrame
    skipped: list[Skipped]


# ---------------------------------------------------------------------------------------------------------
# Small shared pieces
# ---------------------------------------------------------------------------------------------------------


def _existing_dir(root: Path | str) -> Path:
    """``root`` → the same path as a ``Path``; raises ``DatasetFormatError`` when it is not a directory."""
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetFormatError(f"Dataset directory {path} does not exist.")
    if not path.is_dir():
        raise DatasetFormatError(f"{path} is a file, not a dataset directory.")
    return path


def _search_dirs(root: Path) -> list[Path]:
    """``root`` and its immediate subfolders (sorted, hidden and unzip leftovers excluded), root first."""
    subdirs = sorted(
        entry
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in _IGNORED_DIRS
    )
    return [root, *subdirs]


def _find_file(dirs: list[Path], names: tuple[str, ...]) -> Path | None:
    """The first ``dir/name`` that is a file, trying every name in a directory before the next directory."""
    for directory in dirs:
        for name in names:
            if (directory / name).is_file():
                return directory / name
    return None


def _list_files(directory: Path) -> set[str]:
    """Names of the files in ``directory`` (empty if it does not exist); one listing beats 40k stat calls."""
    if not directory.is_dir():
        return set()
    with os.scandir(directory) as entries:
        return {entry.name for entry in entries if entry.is_file()}


def _find_image_dir(dirs: list[Path], names: tuple[str, ...]) -> tuple[Path | None, set[str]]:
    """The first ``dir/name`` folder that holds files, with its file names; ``(None, set())`` if none.

    A folder that exists but holds no files (e.g. ``Flickr8k_Dataset/`` wrapping the real
    ``Flicker8k_Dataset/``) is only used when no candidate holds files.
    """
    first_empty = None
    for directory in dirs:
        for name in names:
            candidate = directory / name
            if candidate.is_dir():
                files = _list_files(candidate)
                if files:
                    return candidate, files
                first_empty = first_empty or candidate
    return first_empty, set()


def _read_text(path: Path) -> str:
    """A text file → its content with ``\\n`` line endings, BOM removed.

    UTF-8 (with or without BOM) is tried first; real caption files are ASCII/UTF-8, so anything else is read
    as latin-1, which never fails. Raises ``DatasetFormatError`` for a file with NUL bytes (binary).
    """
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16")
    elif b"\x00" in data:
        raise DatasetFormatError(f"{path} looks like a binary file, not text (it contains NUL bytes).")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_json(path: Path, required: tuple[str, ...]) -> dict[str, Any]:
    """A JSON file → its top-level object; raises ``DatasetFormatError`` if it is not valid JSON or lacks
    one of the ``required`` keys as a list."""
    try:
        content = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DatasetFormatError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None
    if not isinstance(content, dict):
        raise DatasetFormatError(f"{path} holds a JSON {type(content).__name__}, expected an object.")
    for key in required:
        if not isinstance(content.get(key), list):
            raise DatasetFormatError(f"{path} has no {key!r} list at its top level.")
    return content


def _table(rows: list[tuple[str, str, str]], root: Path) -> pd.DataFrame:
    """``(image, caption, split)`` rows → the caption table, with the dataset root in ``attrs["root"]``."""
    # Plain object columns on every pandas version (pandas 3 would infer its new "str" dtype), so tables
    # print and compare the same on Colab and locally.
    table = pd.DataFrame(rows, columns=COLUMNS, dtype=object)
    table.attrs["root"] = str(root)
    return table


def _keep_images(
    rows: list[tuple[str, str, str]], dropped: dict[str, str], skipped: list[Skipped]
) -> list[tuple[str, str, str]]:
    """Drop the rows of every image in ``dropped`` (image → reason), adding one ``Skipped`` per image."""
    skipped.extend(Skipped(image, reason) for image, reason in dropped.items())
    return [row for row in rows if row[0] not in dropped]


def _missing_reason(image_dir: Path | None, root: Path, looked_for: tuple[str, ...]) -> str:
    """The reason given for an image that is not on disk: no image folder at all, or not in the one found."""
    if image_dir is None:
        folders = ", ".join(f"{name}/" for name in looked_for)
        return f"no image folder found under {root} (looked for {folders})"
    return f"image file not found in {image_dir.name}/"


# ---------------------------------------------------------------------------------------------------------
# Flickr8k (official text files)
# ---------------------------------------------------------------------------------------------------------


def read_flickr8k(root: Path | str) -> tuple[pd.DataFrame, list[Skipped]]:
    """Read the official Flickr8k release.

    In: the dataset root. ``Flickr8k.token.txt`` (lines ``name.jpg#k<TAB>caption``) and the split files
    ``Flickr_8k.{train,dev,test}Images.txt`` may sit in the root or an immediate subfolder (the official
    zip extracts to ``Flickr8k_text/``); images in ``Flicker8k_Dataset/`` (sic), ``Flickr8k_Dataset/``,
    ``Images/`` or ``images/``, in the root or an immediate subfolder.

    Out: ``(table, skipped)`` as described in the module docstring, rows in token-file order. Skipped are:
    rows without a tab, rows whose name ends in ``.jpg.1`` (known duplicates in the real file), repeated
    ``name#k`` rows (the first is kept), empty captions, images in no split file or in several, images
    missing on disk, and images listed in a split file that have no captions.

    Raises ``DatasetFormatError`` when the token file or all split files are missing, or the token file
    is empty, binary, or has no line of the expected form.
    """
    root = _existing_dir(root)
    dirs = _search_dirs(root)
    token_path = _find_file(dirs, (FLICKR8K_TOKEN_FILE,))
    if token_path is None:
        raise DatasetFormatError(f"No {FLICKR8K_TOKEN_FILE} in {root} or its immediate subfolders.")

    skipped: list[Skipped] = []
    rows, well_formed = _parse_flickr8k_tokens(token_path, skipped)
    if well_formed == 0:
        raise DatasetFormatError(
            f"{token_path} has no line of the form 'name.jpg#k<TAB>caption' (is it empty?)."
        )

    # Split files usually sit next to the token file, so look there first.
    split_dirs = [token_path.parent, *(d for d in dirs if d != token_path.parent)]
    split_of, in_several = _read_flickr8k_splits(split_dirs, root)

    image_dir, on_disk = _find_image_dir(dirs, FLICKR8K_IMAGE_DIRS)
    missing = _missing_reason(image_dir, root, FLICKR8K_IMAGE_DIRS)
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
    rows = _keep_images(rows, dropped, skipped)

    captioned = {name for name, _, _ in rows} | set(dropped)
    skipped.extend(
        Skipped(name, "listed in a split file but has no captions")
        for name in [*split_of, *in_several]
        if name not in captioned
    )
    # Every surviving row's image was found in image_dir, so it is not None when rows is not empty.
    table = _table([(str(image_dir / name), caption, split_of[name]) for name, caption, _ in rows], root)
    return table, skipped


def _parse_flickr8k_tokens(path: Path, skipped: list[Skipped]) -> tuple[list[tuple[str, str, str]], int]:
    """``Flickr8k.token.txt`` → ``([(image name, caption, "name#k")], number of well-formed lines)``.

    Malformed and duplicate lines go to ``skipped``; blank lines are not rows and are ignored.
    """
    rows = []
    well_formed = 0
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
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
        path = _find_file(dirs, (file_name,))
        if path is None:
            continue
        found_any = True
        for line in _read_text(path).split("\n"):
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


def read_flickr8k_kaggle(root: Path | str) -> tuple[pd.DataFrame, list[Skipped]]:
    """Read Kaggle's Flickr8k: ``captions.txt`` (CSV with header ``image,caption``) and ``Images/``.

    In: the dataset root; ``captions.txt`` may sit in it or an immediate subfolder, ``Images/`` (or
    ``images/``) next to it or in the root.

    Out: ``(table, skipped)``, rows in file order. Kaggle ships no split files, so each image gets a split
    from a hash of its name (:func:`kaggle_split`): about 80/10/10 train/dev/test, the same on every run
    and independent of row order. Skipped are: rows without a comma, ``.jpg.1`` rows, exact repeats of an
    earlier row, empty captions, and images missing on disk.

    Raises ``DatasetFormatError`` when ``captions.txt`` is missing, binary, empty, or does not start with
    the header ``image,caption``.
    """
    root = _existing_dir(root)
    dirs = _search_dirs(root)
    path = _find_file(dirs, (KAGGLE_CAPTIONS_FILE,))
    if path is None:
        raise DatasetFormatError(f"No {KAGGLE_CAPTIONS_FILE} in {root} or its immediate subfolders.")

    reader = csv.reader(io.StringIO(_read_text(path)))
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetFormatError(f"{path} is empty.")
        if [field.strip().lower() for field in header] != ["image", "caption"]:
            raise DatasetFormatError(f"{path} does not start with the header 'image,caption'.")
        skipped: list[Skipped] = []
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

    image_dirs = [path.parent, root] if path.parent != root else [root]
    image_dir, on_disk = _find_image_dir(image_dirs, KAGGLE_IMAGE_DIRS)
    missing = _missing_reason(image_dir, root, KAGGLE_IMAGE_DIRS)
    rows = _keep_images(rows, {name: missing for name, _, _ in rows if name not in on_disk}, skipped)
    return _table([(str(image_dir / name), caption, split) for name, caption, split in rows], root), skipped


# ---------------------------------------------------------------------------------------------------------
# COCO captions
# ---------------------------------------------------------------------------------------------------------


def read_coco(root: Path | str) -> tuple[pd.DataFrame, list[Skipped]]:
    """Read COCO 2017 captions: ``captions_train2017.json`` and/or ``captions_val2017.json``.

    In: the dataset root; the JSON files sit in ``root/annotations/`` or in the root itself, images in
    ``root/train2017/`` and ``root/val2017/``.

    Out: ``(table, skipped)``, train rows then val rows, each in annotation order. ``train2017`` → "train",
    ``val2017`` → "dev": COCO publishes no captions for its test images, so there is no "test" split here;
    use Karpathy's split (:func:`read_karpathy` with ``dataset_coco.json``) for a test set. Skipped are:
    malformed image or annotation entries, repeated image ids, annotations pointing to an unknown image id,
    empty captions, images without captions, and images missing on disk.

    Raises ``DatasetFormatError`` when neither file is found, or one is not valid JSON or lacks the
    ``images`` / ``annotations`` lists.
    """
    root = _existing_dir(root)
    folders = [root / "annotations", root]
    paths = {folder: _find_file(folders, (f"captions_{folder}.json",)) for folder in COCO_SPLITS}
    if not any(paths.values()):
        names = " or ".join(f"captions_{folder}.json" for folder in COCO_SPLITS)
        raise DatasetFormatError(f"No {names} in {root}/annotations or {root}.")

    rows: list[tuple[str, str, str]] = []
    skipped: list[Skipped] = []
    for folder, split in COCO_SPLITS.items():
        if paths[folder] is not None:
            rows += _read_coco_file(paths[folder], root / folder, split, skipped)
    return _table(rows, root), skipped


def _read_coco_file(
    path: Path, image_dir: Path, split: str, skipped: list[Skipped]
) -> list[tuple[str, str, str]]:
    """One COCO captions JSON → its ``(image path, caption, split)`` rows; problems go to ``skipped``."""
    content = _read_json(path, required=("images", "annotations"))
    file_name_of: dict[int, str] = {}
    for index, entry in enumerate(content["images"]):
        image_id = entry.get("id") if isinstance(entry, dict) else None
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        if not isinstance(image_id, int) or not isinstance(file_name, str) or not file_name.strip():
            skipped.append(
                Skipped(f"{path.name} images[{index}]", "image entry without 'id' and 'file_name'")
            )
        elif image_id in file_name_of:
            skipped.append(Skipped(file_name, "repeats an earlier image id; the first entry is kept"))
        else:
            file_name_of[image_id] = file_name.strip()

    rows = []
    for index, annotation in enumerate(content["annotations"]):
        if not isinstance(annotation, dict):
            skipped.append(Skipped(f"{path.name} annotations[{index}]", "annotation is not an object"))
            continue
        item = f"{path.name} annotation {annotation.get('id', f'[{index}]')}"
        image_id, caption = annotation.get("image_id"), annotation.get("caption")
        if not isinstance(image_id, int) or not isinstance(caption, str):
            skipped.append(Skipped(item, "annotation without an 'image_id' and 'caption' text"))
        elif image_id not in file_name_of:
            skipped.append(Skipped(item, "annotation refers to an unknown image id"))
        elif not caption.strip():
            skipped.append(Skipped(item, "empty caption"))
        else:
            rows.append((file_name_of[image_id], caption.strip(), split))

    captioned = {name for name, _, _ in rows}
    skipped.extend(
        Skipped(name, "image has no captions") for name in file_name_of.values() if name not in captioned
    )
    on_disk = _list_files(image_dir)
    missing = f"image file not found in {image_dir.name}/"
    rows = _keep_images(rows, {name: missing for name in captioned if name not in on_disk}, skipped)
    return [(str(image_dir / name), caption, split) for name, caption, split in rows]


# ---------------------------------------------------------------------------------------------------------
# Karpathy's splits
# ---------------------------------------------------------------------------------------------------------


def read_karpathy(root: Path | str) -> tuple[pd.DataFrame, list[Skipped]]:
    """Read a Karpathy split file: ``dataset_{flickr8k,flickr30k,coco}.json``.

    In: the dataset root holding one of those files (in it or an immediate subfolder), or the path of
    the JSON file itself (its folder is then the root) when a folder holds several of them. Each image is
    looked for at ``root/filepath/filename`` (COCO entries carry ``filepath``, e.g. ``val2014``), then
    ``root/filename``, then in ``Images/``, ``images/``, ``Flicker8k_Dataset/``, ``Flickr8k_Dataset/``
    and ``flickr30k-images/`` under the root.

    Out: ``(table, skipped)``, rows in file order, caption from each sentence's ``raw`` text. Splits:
    ``train`` → "train", ``val`` → "dev", ``test`` → "test", and ``restval`` → "train" (the COCO images
    Karpathy held out of val but that everyone trains on). Skipped are: malformed entries, unknown split
    names, sentences without ``raw`` text, empty captions, images without sentences, and images missing
    on disk.

    Raises ``DatasetFormatError`` when no such file is found, the folder holds several, or the file is
    not valid JSON or lacks the ``images`` list.
    """
    given = Path(root).expanduser()
    if given.is_file():
        path, root = given, given.parent
    else:
        root = _existing_dir(given)
        found = [p for d in _search_dirs(root) for p in (d / name for name in KARPATHY_FILES) if p.is_file()]
        if not found:
            raise DatasetFormatError(f"No {', '.join(KARPATHY_FILES)} in {root} or its immediate subfolders.")
        if len(found) > 1:
            raise DatasetFormatError(
                f"{root} holds several Karpathy split files ({', '.join(p.name for p in found)}); "
                "pass the path of the one you want."
            )
        path = found[0]

    content = _read_json(path, required=("images",))
    listings: dict[Path, set[str]] = {}

    def locate(name: str, filepath: str) -> Path | None:
        """The first candidate folder holding ``name``; each folder is listed once, then looked up."""
        folders = [root / filepath] if filepath else []
        folders += [root, *(root / folder for folder in KARPATHY_IMAGE_DIRS)]
        for folder in folders:
            if folder not in listings:
                listings[folder] = _list_files(folder)
            if name in listings[folder]:
                return folder / name
        return None

    rows: list[tuple[str, str, str]] = []
    skipped: list[Skipped] = []
    for index, entry in enumerate(content["images"]):
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            skipped.append(Skipped(f"{path.name} images[{index}]", "image entry without a 'filename'"))
            continue
        filepath = entry.get("filepath") if isinstance(entry.get("filepath"), str) else ""
        item = f"{filepath}/{name}" if filepath else name
        split_name = entry.get("split")
        split = KARPATHY_SPLITS.get(split_name) if isinstance(split_name, str) else None
        if split is None:
            skipped.append(Skipped(item, f"unknown split {split_name!r}"))
            continue
        sentences = entry.get("sentences")
        captions = []
        for number, sentence in enumerate(sentences if isinstance(sentences, list) else []):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if not isinstance(raw, str):
                skipped.append(Skipped(f"{item} sentence {number}", "sentence without 'raw' text"))
            elif not raw.strip():
                skipped.append(Skipped(f"{item} sentence {number}", "empty caption"))
            else:
                captions.append(raw.strip())
        if not captions:
            skipped.append(Skipped(item, "image has no captions"))
            continue
        image_path = locate(name.strip(), filepath)
        if image_path is None:
            skipped.append(Skipped(item, _karpathy_missing_reason(root, filepath)))
            continue
        rows += [(str(image_path), caption, split) for caption in captions]
    return _table(rows, root), skipped


def _karpathy_missing_reason(root: Path, filepath: str) -> str:
    """Why a Karpathy image is not on disk; for COCO, say that his split names 2014 images, which a
    folder of COCO 2017 (``train2017/``, ``val2017/``) does not have under those names."""
    if filepath.endswith("2014") and not (root / filepath).is_dir():
        return (
            f"image file not found: no {filepath}/ folder (Karpathy's COCO split names COCO 2014 images; "
            "fetch them with: python -m helpers data download coco2014)"
        )
    return "image file not found under the root or its image folders"


# ---------------------------------------------------------------------------------------------------------
# Detecting, loading, summarising
# ---------------------------------------------------------------------------------------------------------

_READERS = {
    "flickr8k": read_flickr8k,
    "flickr8k-kaggle": read_flickr8k_kaggle,
    "coco": read_coco,
    "karpathy": read_karpathy,
}


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
    root = _existing_dir(given)
    dirs = _search_dirs(root)
    coco_files = tuple(f"captions_{folder}.json" for folder in COCO_SPLITS)
    if _find_file(dirs, (FLICKR8K_TOKEN_FILE,)):
        return "flickr8k"
    if _find_file(dirs, (KAGGLE_CAPTIONS_FILE,)):
        return "flickr8k-kaggle"
    if _find_file([root / "annotations", root], coco_files):
        return "coco"
    if _find_file(dirs, KARPATHY_FILES):
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
    name = detect_format(root)
    table, skipped = _READERS[name](root)
    return CaptionData(name, table, skipped)


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
