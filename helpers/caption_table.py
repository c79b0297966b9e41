"""What every caption reader returns, its errors, and the file helpers the readers share.

Each reader (:mod:`helpers.flickr8k_captions`, :mod:`helpers.coco_captions`) takes a dataset root and
returns a :class:`CaptionData`: its format's name, the caption table and the list of what it skipped.

- ``table``: a DataFrame with exactly the columns ``image`` (path to the image file, built from the root
  as given), ``caption`` (the text, stripped of surrounding whitespace, otherwise raw) and ``split``
  (``"train"``, ``"dev"`` or ``"test"``), one row per caption, in file order, index ``0..n-1``; the
  dataset root in ``table.attrs["root"]``.
- ``skipped``: one :class:`Skipped` per dropped row or image, saying which and why.

A file that cannot be parsed at all raises :class:`DatasetFormatError`, naming the file and the problem.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

COLUMNS = ["image", "caption", "split"]
# Folders that unzip tools leave behind and that must never be mistaken for data.
IGNORED_DIRS = ("__MACOSX",)


class DatasetFormatError(ValueError):
    """A directory holds no known caption dataset, or one of its format files cannot be parsed at all."""


class Skipped(NamedTuple):
    """A row or image a reader dropped: ``item`` names it (file and line, or image), ``reason`` says why."""

    item: str
    reason: str


class CaptionData(NamedTuple):
    """What every reader and :func:`helpers.caption_files.load_captions` return: the format's name (one of
    ``helpers.caption_files.FORMATS``), the caption table and the skipped items (module docstring)."""

    format: str
    table: pd.DataFrame
    skipped: list[Skipped]


def existing_dir(root: Path | str) -> Path:
    """``root`` → the same path as a ``Path``; raises ``DatasetFormatError`` when it is not a directory."""
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetFormatError(f"Dataset directory {path} does not exist.")
    if not path.is_dir():
        raise DatasetFormatError(f"{path} is a file, not a dataset directory.")
    return path


def search_dirs(root: Path) -> list[Path]:
    """``root`` and its immediate subfolders (sorted, hidden and unzip leftovers excluded), root first."""
    subdirs = sorted(
        entry
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in IGNORED_DIRS
    )
    return [root, *subdirs]


def find_file(dirs: list[Path], names: tuple[str, ...]) -> Path | None:
    """The first ``dir/name`` that is a file, trying every name in a directory before the next directory."""
    for directory in dirs:
        for name in names:
            if (directory / name).is_file():
                return directory / name
    return None


def required_file(root: Path, name: str) -> tuple[list[Path], Path]:
    """``(search_dirs(root), the first name file among them)``; raises ``DatasetFormatError`` naming
    ``root`` when there is none."""
    dirs = search_dirs(root)
    path = find_file(dirs, (name,))
    if path is None:
        raise DatasetFormatError(f"No {name} in {root} or its immediate subfolders.")
    return dirs, path


def list_files(directory: Path) -> set[str]:
    """Names of the files in ``directory`` (empty if it does not exist); one listing beats 40k stat calls."""
    if not directory.is_dir():
        return set()
    with os.scandir(directory) as entries:
        return {entry.name for entry in entries if entry.is_file()}


def find_image_dir(dirs: list[Path], names: tuple[str, ...]) -> tuple[Path | None, set[str]]:
    """The first ``dir/name`` folder that holds files, with its file names; ``(None, set())`` if none.

    A folder that exists but holds no files (e.g. ``Flickr8k_Dataset/`` wrapping the real
    ``Flicker8k_Dataset/``) is only used when no candidate holds files.
    """
    first_empty = None
    for directory in dirs:
        for name in names:
            candidate = directory / name
            if candidate.is_dir():
                files = list_files(candidate)
                if files:
                    return candidate, files
                first_empty = first_empty or candidate
    return first_empty, set()


def read_text(path: Path) -> str:
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


def read_json(path: Path, required: tuple[str, ...]) -> dict[str, Any]:
    """A JSON file → its top-level object; raises ``DatasetFormatError`` if it is not valid JSON or lacks
    one of the ``required`` keys as a list."""
    try:
        content = json.loads(read_text(path))
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


def make_table(rows: list[tuple[str, str, str]], root: Path) -> pd.DataFrame:
    """``(image, caption, split)`` rows → the caption table, with the dataset root in ``attrs["root"]``."""
    # Plain object columns on every pandas version (pandas 3 would infer its new "str" dtype), so tables
    # print and compare the same on Colab and locally.
    table = pd.DataFrame(rows, columns=COLUMNS, dtype=object)
    table.attrs["root"] = str(root)
    return table


def keep_images(
    rows: list[tuple[str, str, str]], dropped: dict[str, str], skipped: list[Skipped]
) -> list[tuple[str, str, str]]:
    """Drop the rows of every image in ``dropped`` (image → reason), adding one ``Skipped`` per image."""
    skipped.extend(Skipped(image, reason) for image, reason in dropped.items())
    return [row for row in rows if row[0] not in dropped]


def missing_reason(image_dir: Path | None, root: Path, looked_for: tuple[str, ...]) -> str:
    """The reason given for an image that is not on disk: no image folder at all, or not in the one found."""
    if image_dir is None:
        folders = ", ".join(f"{name}/" for name in looked_for)
        return f"no image folder found under {root} (looked for {folders})"
    return f"image file not found in {image_dir.name}/"
