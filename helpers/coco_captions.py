"""Read COCO's caption JSON files (:func:`read_coco`) and Karpathy's split files (:func:`read_karpathy`,
for Flickr8k, Flickr30k and COCO 2014), each into a :class:`~helpers.caption_table.CaptionData`."""

from __future__ import annotations

from pathlib import Path

from helpers.caption_table import (
    CaptionData,
    DatasetFormatError,
    Skipped,
    existing_dir,
    find_file,
    keep_images,
    list_files,
    make_table,
    read_json,
    search_dirs,
)
from helpers.flickr8k_captions import FLICKR8K_IMAGE_DIR

COCO_SPLITS = {"train2017": "train", "val2017": "dev"}
KARPATHY_FILES = ("dataset_flickr8k.json", "dataset_flickr30k.json", "dataset_coco.json")
KARPATHY_SPLITS = {"train": "train", "val": "dev", "test": "test", "restval": "train"}
KARPATHY_IMAGE_DIRS = ("Images", "images", FLICKR8K_IMAGE_DIR, "Flickr8k_Dataset", "flickr30k-images")


def read_coco(root: Path | str) -> CaptionData:
    """Read COCO 2017 captions: ``captions_train2017.json`` and/or ``captions_val2017.json``.

    In: the dataset root; the JSON files sit in ``root/annotations/`` or in the root itself, images in
    ``root/train2017/`` and ``root/val2017/``.

    Out: ``CaptionData("coco", table, skipped)``, train rows then val rows, each in annotation order.
    ``train2017`` → "train", ``val2017`` → "dev": COCO publishes no captions for its test images, so there
    is no "test" split here; use Karpathy's split (:func:`read_karpathy` with ``dataset_coco.json``) for a
    test set. Skipped are:
    malformed image or annotation entries, repeated image ids, annotations pointing to an unknown image id,
    empty captions, images without captions, and images missing on disk.

    Raises ``DatasetFormatError`` when neither file is found, or one is not valid JSON or lacks the
    ``images`` / ``annotations`` lists.
    """
    root = existing_dir(root)
    folders = [root / "annotations", root]
    paths = {folder: find_file(folders, (f"captions_{folder}.json",)) for folder in COCO_SPLITS}
    if not any(paths.values()):
        names = " or ".join(f"captions_{folder}.json" for folder in COCO_SPLITS)
        raise DatasetFormatError(f"No {names} in {root}/annotations or {root}.")

    rows: list[tuple[str, str, str]] = []
    skipped: list[Skipped] = []
    for folder, split in COCO_SPLITS.items():
        if paths[folder] is not None:
            rows += _read_coco_file(paths[folder], root / folder, split, skipped)
    return CaptionData("coco", make_table(rows, root), skipped)


def _read_coco_file(
    path: Path, image_dir: Path, split: str, skipped: list[Skipped]
) -> list[tuple[str, str, str]]:
    """One COCO captions JSON → its ``(image path, caption, split)`` rows; problems go to ``skipped``."""
    content = read_json(path, required=("images", "annotations"))
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

    captioned = dict.fromkeys(name for name, _, _ in rows)  # a set in the annotations' order
    skipped.extend(
        Skipped(name, "image has no captions") for name in file_name_of.values() if name not in captioned
    )
    on_disk = list_files(image_dir)
    missing = f"image file not found in {image_dir.name}/"
    rows = keep_images(rows, {name: missing for name in captioned if name not in on_disk}, skipped)
    return [(str(image_dir / name), caption, split) for name, caption, split in rows]


# ---------------------------------------------------------------------------------------------------------
# Karpathy's splits
# ---------------------------------------------------------------------------------------------------------


def read_karpathy(root: Path | str) -> CaptionData:
    """Read a Karpathy split file: ``dataset_{flickr8k,flickr30k,coco}.json``.

    In: the dataset root holding one of those files (in it or an immediate subfolder), or the path of
    the JSON file itself (its folder is then the root) when a folder holds several of them. Each image is
    looked for at ``root/filepath/filename`` (COCO entries carry ``filepath``, e.g. ``val2014``), then
    ``root/filename``, then in ``Images/``, ``images/``, ``Flicker8k_Dataset/``, ``Flickr8k_Dataset/``
    and ``flickr30k-images/`` under the root.

    Out: ``CaptionData("karpathy", table, skipped)``, rows in file order, caption from each sentence's
    ``raw`` text. Splits:
    ``train`` → "train", ``val`` → "dev", ``test`` → "test", and ``restval`` → "train" (the COCO images
    Karpathy held out of val but that everyone trains on). Skipped are: malformed entries, unknown split
    names, sentences without ``raw`` text, empty captions, images without sentences, and images missing
    on disk.

    Raises ``DatasetFormatError`` when no such file is found, the folder holds several, or the file is
    not valid JSON or lacks the ``images`` list.
    """
    path, root = _karpathy_file(root)
    content = read_json(path, required=("images",))
    listings: dict[Path, set[str]] = {}  # each candidate image folder is listed once
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
        captions = _karpathy_captions(entry.get("sentences"), item, skipped)
        if not captions:
            skipped.append(Skipped(item, "image has no captions"))
            continue
        image_path = _locate_karpathy_image(root, name.strip(), filepath, listings)
        if image_path is None:
            skipped.append(Skipped(item, _karpathy_missing_reason(root, filepath)))
            continue
        rows += [(str(image_path), caption, split) for caption in captions]
    return CaptionData("karpathy", make_table(rows, root), skipped)


def _karpathy_file(given: Path | str) -> tuple[Path, Path]:
    """A dataset root, or a split file's path → ``(the split file, the dataset root)``.

    Raises ``DatasetFormatError`` when a root holds no split file, or several.
    """
    given = Path(given).expanduser()
    if given.is_file():
        return given, given.parent
    root = existing_dir(given)
    found = [p for d in search_dirs(root) for p in (d / name for name in KARPATHY_FILES) if p.is_file()]
    if not found:
        raise DatasetFormatError(f"No {', '.join(KARPATHY_FILES)} in {root} or its immediate subfolders.")
    if len(found) > 1:
        raise DatasetFormatError(
            f"{root} holds several Karpathy split files ({', '.join(p.name for p in found)}); "
            "pass the path of the one you want."
        )
    return found[0], root


def _karpathy_captions(sentences: object, item: str, skipped: list[Skipped]) -> list[str]:
    """An image entry's ``sentences`` → the stripped ``raw`` texts; bad and empty ones go to ``skipped``."""
    captions = []
    for number, sentence in enumerate(sentences if isinstance(sentences, list) else []):
        raw = sentence.get("raw") if isinstance(sentence, dict) else None
        if not isinstance(raw, str):
            skipped.append(Skipped(f"{item} sentence {number}", "sentence without 'raw' text"))
        elif not raw.strip():
            skipped.append(Skipped(f"{item} sentence {number}", "empty caption"))
        else:
            captions.append(raw.strip())
    return captions


def _locate_karpathy_image(
    root: Path, name: str, filepath: str, listings: dict[Path, set[str]]
) -> Path | None:
    """The first candidate folder holding ``name``: ``root/filepath``, ``root``, then the image folders.

    ``listings`` (folder → its file names) is filled as folders are first looked in, and reused.
    """
    folders = [root / filepath] if filepath else []
    folders += [root, *(root / folder for folder in KARPATHY_IMAGE_DIRS)]
    for folder in folders:
        if folder not in listings:
            listings[folder] = list_files(folder)
        if name in listings[folder]:
            return folder / name
    return None


def _karpathy_missing_reason(root: Path, filepath: str) -> str:
    """Why a Karpathy image is not on disk; for COCO, say that his split names 2014 images, which a
    folder of COCO 2017 (``train2017/``, ``val2017/``) does not have under those names."""
    if filepath.endswith("2014") and not (root / filepath).is_dir():
        return (
            f"image file not found: no {filepath}/ folder (Karpathy's COCO split names COCO 2014 images; "
            "fetch them with: python -m helpers data download coco2014)"
        )
    return "image file not found under the root or its image folders"
