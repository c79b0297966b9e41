"""Tests for reading caption datasets: one reader per real format (helpers.flickr8k_captions,
helpers.coco_captions), detection, loading and the summary (helpers.caption_files).

Every dataset is built in ``tmp_path`` in the exact layout of the real thing, with real tiny JPEGs.
"""

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from helpers.caption_files import FORMATS, detect_format, load_captions, summarize
from helpers.caption_table import CaptionData, DatasetFormatError, Skipped
from helpers.coco_captions import read_coco, read_karpathy
from helpers.flickr8k_captions import kaggle_split, read_flickr8k, read_flickr8k_kaggle


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


JPEG = _jpeg_bytes()


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(JPEG)


def write_flickr8k(
    root: Path,
    token_lines: list[str],
    splits: dict[str, list[str]],
    images: list[str],
    text_dir: str = "",
    image_dir: str = "Flicker8k_Dataset",
    newline: str = "\n",
) -> Path:
    """Write the official Flickr8k layout: token file, split files, image folder."""
    text = root / text_dir
    text.mkdir(parents=True, exist_ok=True)
    (text / "Flickr8k.token.txt").write_bytes((newline.join(token_lines) + newline).encode())
    for split, names in splits.items():
        (text / f"Flickr_8k.{split}Images.txt").write_text("".join(f"{n}\n" for n in names))
    write_images(root / image_dir, images)
    return root


A, B, C = "1000_a.jpg", "2000_b.jpg", "3000_c.jpg"


@pytest.fixture
def flickr8k(tmp_path: Path) -> Path:
    """Three images with two captions each, one per split: the layout the synthetic generator writes."""
    lines = [
        f"{A}#0\tA dog runs .",
        f"{A}#1\tA brown dog runs on grass .",
        f"{B}#0\tTwo kids play .",
        f"{B}#1\tKids play outside .",
        f"{C}#0\tA man surfs .",
        f"{C}#1\tA man rides a big wave .",
    ]
    return write_flickr8k(tmp_path, lines, {"train": [A], "dev": [B], "test": [C]}, [A, B, C])


# ------------------------------------------------------------------------------------------------------
# Flickr8k
# ------------------------------------------------------------------------------------------------------


def test_flickr8k_reads_generator_layout_with_no_skips(flickr8k: Path):
    _, table, skipped = read_flickr8k(flickr8k)

    assert skipped == []
    assert list(table.columns) == ["image", "caption", "split"]
    assert list(table.index) == list(range(6))
    assert table["image"].tolist() == [str(flickr8k / "Flicker8k_Dataset" / n) for n in [A, A, B, B, C, C]]
    assert table["caption"].tolist()[:2] == ["A dog runs .", "A brown dog runs on grass ."]
    assert table["split"].tolist() == ["train", "train", "dev", "dev", "test", "test"]


def test_flickr8k_finds_text_subfolder_and_images_folder(tmp_path: Path):
    write_flickr8k(
        tmp_path, [f"{A}#0\tA dog ."], {"train": [A]}, [A], text_dir="Flickr8k_text", image_dir="Images"
    )

    _, table, skipped = read_flickr8k(tmp_path)

    assert skipped == []
    assert table["image"].tolist() == [str(tmp_path / "Images" / A)]


def test_flickr8k_finds_images_inside_wrapping_folder_and_ignores_macosx(tmp_path: Path):
    write_flickr8k(tmp_path, [f"{A}#0\tA dog ."], {"train": [A]}, [], image_dir="Flickr8k_Dataset")
    write_images(tmp_path / "__MACOSX" / "Flicker8k_Dataset", [A])
    write_images(tmp_path / "Flickr8k_Dataset" / "Flicker8k_Dataset", [A])

    _, table, skipped = read_flickr8k(tmp_path)

    assert skipped == []
    assert table["image"].tolist() == [str(tmp_path / "Flickr8k_Dataset" / "Flicker8k_Dataset" / A)]


def test_flickr8k_handles_crlf_bom_trailing_whitespace_and_blank_lines(tmp_path: Path):
    lines = ["\ufeff" + f"{A}#0\tA dog runs .  \t", "", f"{A}#1\tA dog .\t", "   ", f"{B}#0\tKids play . "]
    write_flickr8k(tmp_path, lines, {"train": [A], "test": [B]}, [A, B], newline="\r\n")
    (tmp_path / "Flickr_8k.trainImages.txt").write_bytes(f"\ufeff{A} \r\n\r\n".encode())

    _, table, skipped = read_flickr8k(tmp_path)

    assert skipped == []
    assert table["caption"].tolist() == ["A dog runs .", "A dog .", "Kids play ."]
    assert table["split"].tolist() == ["train", "train", "test"]


def test_flickr8k_falls_back_to_latin1_for_non_utf8_bytes(tmp_path: Path):
    write_flickr8k(tmp_path, [], {"train": [A]}, [A])
    (tmp_path / "Flickr8k.token.txt").write_bytes(f"{A}#0\tA caf\u00e9 .\n".encode("latin-1"))

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["A caf\u00e9 ."]


def test_flickr8k_skips_jpg_dot_1_rows_with_reason(tmp_path: Path):
    lines = [f"{A}#0\tA dog .", f"{A}.1#0\tA dog again ."]
    write_flickr8k(tmp_path, lines, {"train": [A]}, [A])

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["A dog ."]
    assert skipped == [
        Skipped("Flickr8k.token.txt line 2", "known duplicate row: image name ends in '.jpg.1'")
    ]


def test_flickr8k_skips_line_without_tab_naming_line_number(tmp_path: Path):
    lines = [f"{A}#0\tA dog .", f"{A}#1 A dog without a tab ."]
    write_flickr8k(tmp_path, lines, {"train": [A]}, [A])

    _, table, skipped = read_flickr8k(tmp_path)

    assert len(table) == 1
    assert skipped == [Skipped("Flickr8k.token.txt line 2", "no tab between 'name.jpg#k' and the caption")]


def test_flickr8k_keeps_first_of_duplicate_name_k_rows(tmp_path: Path):
    lines = [f"{A}#0\tFirst .", f"{A}#1\tSecond .", f"{A}#0\tRepeat ."]
    write_flickr8k(tmp_path, lines, {"train": [A]}, [A])

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["First .", "Second ."]
    assert [s.item for s in skipped] == ["Flickr8k.token.txt line 3"]
    assert "first is kept" in skipped[0].reason


def test_flickr8k_skips_image_missing_on_disk(tmp_path: Path):
    lines = [f"{A}#0\tA dog .", f"{B}#0\tKids .", f"{B}#1\tMore kids ."]
    write_flickr8k(tmp_path, lines, {"train": [A, B]}, [A])

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["A dog ."]
    assert skipped == [Skipped(B, "image file not found in Flicker8k_Dataset/")]


def test_flickr8k_without_image_folder_skips_every_image_naming_folders(tmp_path: Path):
    write_flickr8k(tmp_path, [f"{A}#0\tA dog ."], {"train": [A]}, [])
    (tmp_path / "Flicker8k_Dataset").rmdir()

    _, table, skipped = read_flickr8k(tmp_path)

    assert table.empty and list(table.columns) == ["image", "caption", "split"]
    assert skipped[0].item == A
    assert "no image folder found" in skipped[0].reason and "Flicker8k_Dataset/" in skipped[0].reason


def test_flickr8k_skips_image_in_no_split_file(tmp_path: Path):
    lines = [f"{A}#0\tA dog .", f"{B}#0\tKids ."]
    write_flickr8k(tmp_path, lines, {"train": [A]}, [A, B])

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["A dog ."]
    assert skipped == [Skipped(B, "not in any split file")]


def test_flickr8k_skips_image_listed_in_two_split_files(tmp_path: Path):
    lines = [f"{A}#0\tA dog .", f"{B}#0\tKids ."]
    write_flickr8k(tmp_path, lines, {"train": [A, B], "test": [B]}, [A, B])

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["image"].str.endswith(A).all()
    assert skipped == [Skipped(B, "listed in more than one split file")]


def test_flickr8k_reports_split_file_image_without_captions(tmp_path: Path):
    write_flickr8k(tmp_path, [f"{A}#0\tA dog ."], {"train": [A], "dev": [C]}, [A, C])

    _, table, skipped = read_flickr8k(tmp_path)

    assert len(table) == 1
    assert skipped == [Skipped(C, "listed in a split file but has no captions")]


def test_flickr8k_empty_token_file_raises_naming_file(tmp_path: Path):
    write_flickr8k(tmp_path, [], {"train": [A]}, [A], newline="\r\n")

    with pytest.raises(DatasetFormatError, match=r"Flickr8k\.token\.txt has no line of the form"):
        read_flickr8k(tmp_path)


def test_flickr8k_binary_token_file_raises_naming_file(tmp_path: Path):
    write_flickr8k(tmp_path, [], {"train": [A]}, [A])
    (tmp_path / "Flickr8k.token.txt").write_bytes(bytes(range(256)) * 4)

    with pytest.raises(DatasetFormatError, match=r"Flickr8k\.token\.txt looks like a binary file"):
        read_flickr8k(tmp_path)


def test_flickr8k_without_split_files_raises(tmp_path: Path):
    write_flickr8k(tmp_path, [f"{A}#0\tA dog ."], {}, [A])

    with pytest.raises(DatasetFormatError, match=r"None of the split files Flickr_8k\.trainImages\.txt"):
        read_flickr8k(tmp_path)


# ------------------------------------------------------------------------------------------------------
# Kaggle Flickr8k
# ------------------------------------------------------------------------------------------------------


def write_kaggle(root: Path, csv_text: str, images: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "captions.txt").write_text(csv_text, newline="")
    write_images(root / "Images", images)
    return root


def test_kaggle_reads_captions_with_commas_and_quotes(tmp_path: Path):
    text = (
        "image,caption\r\n"
        f'{A},"A dog, brown, runs ."\r\n'
        f'{A},"A dog says ""woof"" ."\r\n'
        f"{A},A dog , unquoted , runs .\r\n"
        f"{B},  Kids play .  \r\n"
    )
    write_kaggle(tmp_path, text, [A, B])

    _, table, skipped = read_flickr8k_kaggle(tmp_path)

    assert skipped == []
    assert table["caption"].tolist() == [
        "A dog, brown, runs .",
        'A dog says "woof" .',
        "A dog , unquoted , runs .",
        "Kids play .",
    ]
    assert table["image"].tolist() == [str(tmp_path / "Images" / n) for n in [A, A, A, B]]
    assert table["split"].tolist() == [kaggle_split(n) for n in [A, A, A, B]]


def test_kaggle_skips_row_without_comma_repeats_and_missing_image(tmp_path: Path):
    text = f"image,caption\n{A},A dog .\n{A}\n{A},A dog .\n{B},Kids .\n"
    write_kaggle(tmp_path, text, [A])

    _, table, skipped = read_flickr8k_kaggle(tmp_path)

    assert table["caption"].tolist() == ["A dog ."]
    assert skipped == [
        Skipped("captions.txt line 3", "no comma between the image name and the caption"),
        Skipped("captions.txt line 4", "repeats an earlier row"),
        Skipped(B, "image file not found in Images/"),
    ]


def test_kaggle_split_is_about_80_10_10_and_stable_for_a_name():
    splits = [kaggle_split(f"{i:05d}_img.jpg") for i in range(2000)]

    assert 1500 <= splits.count("train") <= 1700
    assert 140 <= splits.count("dev") <= 260 and 140 <= splits.count("test") <= 260
    # Pinned: if these ever change, old checkpoints would have trained on today's test images.
    assert [kaggle_split(n) for n in ["000_img.jpg", "001_img.jpg", "002_img.jpg"]] == [
        "train",
        "dev",
        "test",
    ]


def test_kaggle_split_is_independent_of_file_order(tmp_path: Path):
    names = [f"{i:03d}_img.jpg" for i in range(40)]
    write_kaggle(tmp_path / "forward", "image,caption\n" + "".join(f"{n},A cat .\n" for n in names), names)
    backward = "image,caption\n" + "".join(f"{n},A cat .\n" for n in reversed(names))
    write_kaggle(tmp_path / "backward", backward, names)

    _, forward_table, _ = read_flickr8k_kaggle(tmp_path / "forward")
    _, backward_table, _ = read_flickr8k_kaggle(tmp_path / "backward")

    assert set(forward_table["split"]) == {"train", "dev", "test"}
    assert forward_table["split"].tolist() == backward_table["split"].tolist()[::-1]


def test_kaggle_without_header_raises_naming_file(tmp_path: Path):
    write_kaggle(tmp_path, f"{A},A dog .\n", [A])

    with pytest.raises(DatasetFormatError, match=r"captions\.txt does not start with the header"):
        read_flickr8k_kaggle(tmp_path)


# ------------------------------------------------------------------------------------------------------
# COCO
# ------------------------------------------------------------------------------------------------------


def coco_json(images: list[tuple[int, str]], annotations: list[tuple[int, int, str]]) -> str:
    return json.dumps(
        {
            "info": {},
            "images": [{"id": i, "file_name": f, "height": 2, "width": 2} for i, f in images],
            "annotations": [{"image_id": i, "id": a, "caption": c} for a, i, c in annotations],
        }
    )


def write_coco(
    root: Path, train: str | None, val: str | None, images: dict[str, list[str]], where="annotations"
):
    (root / where).mkdir(parents=True, exist_ok=True)
    if train is not None:
        (root / where / "captions_train2017.json").write_text(train)
    if val is not None:
        (root / where / "captions_val2017.json").write_text(val)
    for folder, names in images.items():
        write_images(root / folder, names)
    return root


def test_coco_reads_train_and_val_maps_val_to_dev_and_strips_captions(tmp_path: Path):
    train = coco_json(
        [(1, "t1.jpg"), (2, "t2.jpg")], [(10, 2, "A bus .\n"), (11, 1, " A cat  "), (12, 2, "Bus .")]
    )
    val = coco_json([(5, "v5.jpg")], [(20, 5, "A dog.  \n")])
    write_coco(tmp_path, train, val, {"train2017": ["t1.jpg", "t2.jpg"], "val2017": ["v5.jpg"]})

    _, table, skipped = read_coco(tmp_path)

    assert skipped == []
    assert table["caption"].tolist() == ["A bus .", "A cat", "Bus .", "A dog."]
    assert table["split"].tolist() == ["train", "train", "train", "dev"]
    assert table["image"].tolist()[-1] == str(tmp_path / "val2017" / "v5.jpg")


def test_coco_skips_unknown_image_id_missing_file_and_image_without_captions(tmp_path: Path):
    val = coco_json(
        [(1, "a.jpg"), (2, "gone.jpg"), (3, "silent.jpg")],
        [(10, 1, "A cat ."), (11, 99, "Orphan ."), (12, 2, "Gone .")],
    )
    write_coco(tmp_path, None, val, {"val2017": ["a.jpg", "silent.jpg"]})

    _, table, skipped = read_coco(tmp_path)

    assert table["caption"].tolist() == ["A cat ."]
    assert skipped == [
        Skipped("captions_val2017.json annotation 11", "annotation refers to an unknown image id"),
        Skipped("silent.jpg", "image has no captions"),
        Skipped("gone.jpg", "image file not found in val2017/"),
    ]


def test_coco_repeated_image_id_keeps_the_first_entry_and_says_so(tmp_path: Path):
    val = coco_json(
        [(1, "first.jpg"), (1, "second.jpg"), (2, "other.jpg")], [(10, 1, "A cat ."), (11, 2, "A dog .")]
    )
    write_coco(tmp_path, None, val, {"val2017": ["first.jpg", "second.jpg", "other.jpg"]})

    _, table, skipped = read_coco(tmp_path)

    assert table["image"].tolist() == [str(tmp_path / "val2017" / n) for n in ("first.jpg", "other.jpg")]
    assert table["caption"].tolist() == ["A cat .", "A dog ."]
    assert skipped == [Skipped("second.jpg", "repeats an earlier image id; the first entry is kept")]


def test_coco_without_captions_files_names_both_and_where_it_looked(tmp_path: Path):
    (tmp_path / "annotations").mkdir()
    expected = (
        f"No captions_train2017.json or captions_val2017.json in {tmp_path}/annotations or {tmp_path}."
    )
    with pytest.raises(DatasetFormatError) as info:
        read_coco(tmp_path)
    assert str(info.value) == expected


def test_coco_skips_malformed_image_entries_and_annotations_naming_each_and_reads_the_rest(tmp_path: Path):
    val = json.dumps(
        {
            "images": [
                "not an object",
                {"id": "7", "file_name": "s.jpg"},  # an id that is not a number
                {"id": 8},  # no file name
                {"id": 9, "file_name": "   "},  # a blank one
                {"id": 1, "file_name": "a.jpg"},
            ],
            "annotations": [
                "not an object",
                {"image_id": 1, "id": 20},  # no caption
                {"image_id": "1", "caption": "A dog ."},  # no annotation id: named by its position
                {"image_id": 1, "id": 22, "caption": "A cat ."},
                {"image_id": 1, "id": 23, "caption": "  \n"},
            ],
        }
    )
    write_coco(tmp_path, None, val, {"val2017": ["a.jpg", "s.jpg"]})

    _, table, skipped = read_coco(tmp_path)

    assert table["caption"].tolist() == ["A cat ."]
    entry = "image entry without 'id' and 'file_name'"
    no_text = "annotation without an 'image_id' and 'caption' text"
    assert skipped == [
        *(Skipped(f"captions_val2017.json images[{i}]", entry) for i in range(4)),
        Skipped("captions_val2017.json annotations[0]", "annotation is not an object"),
        Skipped("captions_val2017.json annotation 20", no_text),
        Skipped("captions_val2017.json annotation [2]", no_text),
        Skipped("captions_val2017.json annotation 23", "empty caption"),
    ]


def test_coco_accepts_json_directly_in_root(tmp_path: Path):
    write_coco(
        tmp_path, coco_json([(1, "a.jpg")], [(1, 1, "A cat .")]), None, {"train2017": ["a.jpg"]}, where=""
    )

    _, table, skipped = read_coco(tmp_path)

    assert (table["caption"].tolist(), skipped) == (["A cat ."], [])


def test_coco_invalid_json_raises_naming_file(tmp_path: Path):
    write_coco(tmp_path, '{"images": [', None, {})

    with pytest.raises(DatasetFormatError, match=r"captions_train2017\.json is not valid JSON"):
        read_coco(tmp_path)


def test_coco_json_without_annotations_list_raises(tmp_path: Path):
    write_coco(tmp_path, '{"images": []}', None, {})

    with pytest.raises(DatasetFormatError, match=r"captions_train2017\.json has no 'annotations' list"):
        read_coco(tmp_path)


# ------------------------------------------------------------------------------------------------------
# Karpathy
# ------------------------------------------------------------------------------------------------------


def karpathy_image(filename: str, split: str, *raws: str, filepath: str | None = None) -> dict:
    entry = {
        "filename": filename,
        "split": split,
        "sentences": [{"raw": raw, "tokens": raw.lower().split()} for raw in raws],
    }
    if filepath:
        entry["filepath"] = filepath
    return entry


def write_karpathy(root: Path, name: str, images: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps({"images": images, "dataset": name[8:-5]}))
    return root


def test_karpathy_maps_val_to_dev_restval_to_train_and_uses_raw(tmp_path: Path):
    images = [
        karpathy_image("a.jpg", "train", "A Dog runs."),
        karpathy_image("b.jpg", "val", "Kids, playing. "),
        karpathy_image("c.jpg", "test", "A man."),
        karpathy_image("d.jpg", "restval", "A bus."),
    ]
    write_karpathy(tmp_path, "dataset_flickr8k.json", images)
    write_images(tmp_path / "Flicker8k_Dataset", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])

    _, table, skipped = read_karpathy(tmp_path)

    assert skipped == []
    assert table["split"].tolist() == ["train", "dev", "test", "train"]
    assert table["caption"].tolist() == ["A Dog runs.", "Kids, playing.", "A man.", "A bus."]


def test_karpathy_finds_images_via_filepath_root_and_images_folder(tmp_path: Path):
    images = [
        karpathy_image("v.jpg", "val", "A cat.", "Cat.", filepath="val2014"),
        karpathy_image("r.jpg", "train", "A car."),
        karpathy_image("i.jpg", "train", "A van."),
    ]
    write_karpathy(tmp_path, "dataset_coco.json", images)
    write_images(tmp_path / "val2014", ["v.jpg"])
    write_images(tmp_path, ["r.jpg"])
    write_images(tmp_path / "images", ["i.jpg"])

    _, table, skipped = read_karpathy(tmp_path)

    assert skipped == []
    assert table["image"].tolist() == [
        str(tmp_path / "val2014" / "v.jpg"),
        str(tmp_path / "val2014" / "v.jpg"),
        str(tmp_path / "r.jpg"),
        str(tmp_path / "images" / "i.jpg"),
    ]


def test_karpathy_skips_missing_image_image_without_sentences_and_unknown_split(tmp_path: Path):
    images = [
        karpathy_image("a.jpg", "train", "A cat."),
        karpathy_image("gone.jpg", "train", "Gone."),
        karpathy_image("mute.jpg", "test"),
        karpathy_image("odd.jpg", "holdout", "Odd."),
    ]
    write_karpathy(tmp_path, "dataset_flickr30k.json", images)
    write_images(tmp_path / "Images", ["a.jpg", "mute.jpg", "odd.jpg"])

    _, table, skipped = read_karpathy(tmp_path)

    assert table["caption"].tolist() == ["A cat."]
    assert skipped == [
        Skipped("gone.jpg", "image file not found under the root or its image folders"),
        Skipped("mute.jpg", "image has no captions"),
        Skipped("odd.jpg", "unknown split 'holdout'"),
    ]


def test_karpathy_coco_on_a_coco_2017_folder_says_to_fetch_the_2014_images(tmp_path: Path):
    images = [
        karpathy_image("COCO_val2014_000000000042.jpg", "test", "A dog.", filepath="val2014"),
        karpathy_image("COCO_train2014_000000000009.jpg", "train", "A plate.", filepath="train2014"),
    ]
    write_karpathy(tmp_path, "dataset_coco.json", images)
    write_images(tmp_path / "val2017", ["000000000042.jpg"])  # the same photo, under its 2017 name
    write_images(tmp_path / "train2017", ["000000000009.jpg"])

    _, table, skipped = read_karpathy(tmp_path / "dataset_coco.json")

    assert table.empty
    assert [s.item for s in skipped] == [
        "val2014/COCO_val2014_000000000042.jpg",
        "train2014/COCO_train2014_000000000009.jpg",
    ]
    assert "no val2014/ folder" in skipped[0].reason and "data download coco2014" in skipped[0].reason


def test_karpathy_folder_with_several_files_raises_and_file_path_picks_one(tmp_path: Path):
    write_karpathy(tmp_path, "dataset_flickr8k.json", [karpathy_image("a.jpg", "test", "A cat.")])
    write_karpathy(tmp_path, "dataset_coco.json", [])
    write_images(tmp_path / "Images", ["a.jpg"])

    with pytest.raises(DatasetFormatError, match="several Karpathy split files"):
        read_karpathy(tmp_path)
    data = load_captions(tmp_path / "dataset_flickr8k.json")

    assert data.format == "karpathy"
    assert data.table["image"].tolist() == [str(tmp_path / "Images" / "a.jpg")]


# ------------------------------------------------------------------------------------------------------
# Detection, loading, summary
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["Flickr8k_text/Flickr8k.token.txt"], "flickr8k"),
        (["Flickr8k.token.txt", "dataset_flickr8k.json"], "flickr8k"),
        (["captions.txt"], "flickr8k-kaggle"),
        (["annotations/captions_val2017.json"], "coco"),
        (["captions_train2017.json"], "coco"),
        (["dataset_flickr30k.json"], "karpathy"),
    ],
)
def test_detect_format_recognises_each_format_by_its_files(tmp_path: Path, files: list[str], expected: str):
    for file in files:
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text("")

    assert detect_format(tmp_path) == expected
    assert expected in FORMATS


def test_detect_format_on_directory_without_dataset_names_it_and_what_was_looked_for(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")

    with pytest.raises(DatasetFormatError) as error:
        detect_format(tmp_path)

    message = str(error.value)
    assert message.startswith(f"No caption dataset found in {tmp_path}: looked for Flickr8k.token.txt")
    assert "captions.txt" in message and "captions_{train,val}2017.json" in message
    assert message.endswith("subfolders.") and ". " not in message, "one sentence"
    assert isinstance(error.value, ValueError)


def test_detect_format_on_missing_directory_says_it_does_not_exist(tmp_path: Path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        detect_format(tmp_path / "nowhere")


def test_load_captions_detects_then_reads(flickr8k: Path):
    data = load_captions(str(flickr8k))

    assert isinstance(data, CaptionData)
    assert data.format == "flickr8k"
    assert len(data.table) == 6 and data.skipped == []


def test_every_reader_returns_caption_data_naming_its_format(tmp_path: Path):
    roots = {
        "flickr8k": write_flickr8k(tmp_path / "f", [f"{A}#0\tA dog runs ."], {"train": [A]}, [A]),
        "flickr8k-kaggle": write_kaggle(tmp_path / "k", f"image,caption\n{B},Kids play .\n", [B]),
        "coco": write_coco(
            tmp_path / "c", None, coco_json([(1, C)], [(7, 1, "A man surfs .")]), {"val2017": [C]}
        ),
        "karpathy": write_karpathy(
            tmp_path / "p", "dataset_flickr8k.json", [karpathy_image(A, "test", "A dog runs.")]
        ),
    }
    write_images(tmp_path / "p" / "Images", [A])
    readers = {
        "flickr8k": read_flickr8k,
        "flickr8k-kaggle": read_flickr8k_kaggle,
        "coco": read_coco,
        "karpathy": read_karpathy,
    }
    assert list(readers) == list(FORMATS)
    for name, read in readers.items():
        data = read(roots[name])
        assert isinstance(data, CaptionData) and data.format == name
        assert (len(data.table), data.skipped) == (1, [])
        assert data.table.attrs["root"] == str(roots[name])
        loaded = load_captions(roots[name])
        assert (loaded.format, loaded.skipped) == (name, [])
        assert loaded.table.equals(data.table)


def test_load_captions_surfaces_invalid_json_naming_the_file(tmp_path: Path):
    (tmp_path / "dataset_coco.json").write_text("{not json")

    with pytest.raises(
        DatasetFormatError, match=r"dataset_coco\.json is not valid JSON: .* line 1, column 2"
    ):
        load_captions(tmp_path)


def test_summarize_reports_counts_splits_stats_and_skips(tmp_path: Path):
    lines = [
        f"{A}#0\tA dog runs .",
        f"{A}#1\tA dog .",
        f"{A}#2\tDog .",
        f"{B}#0\tTwo kids play in the park .",
        f"{C}#0\tGone .",
        f"{A}.1#0\tA dog runs .",
        "no tab here",
    ]
    write_flickr8k(tmp_path, lines, {"train": [A], "test": [B, C]}, [A, B])

    summary = summarize(load_captions(tmp_path))

    assert json.loads(json.dumps(summary)) == summary
    assert summary["format"] == "flickr8k"
    assert summary["root"] == str(tmp_path)
    assert (summary["images"], summary["captions"]) == (2, 4)
    assert summary["splits"] == {"train": 1, "dev": 0, "test": 1}
    assert summary["captions_per_image"] == {"min": 1, "max": 3, "mean": 2.0}
    assert summary["caption_words"] == {"min": 2, "max": 7, "mean": 4.0}
    assert summary["skipped"][:2] == [
        {"item": "Flickr8k.token.txt line 6", "reason": "known duplicate row: image name ends in '.jpg.1'"},
        {"item": "Flickr8k.token.txt line 7", "reason": "no tab between 'name.jpg#k' and the caption"},
    ]
    assert summary["skipped_by_reason"] == {
        "known duplicate row: image name ends in '.jpg.1'": 1,
        "no tab between 'name.jpg#k' and the caption": 1,
        "image file not found in Flicker8k_Dataset/": 1,
    }


def test_flickr8k_layout_is_defined_once_for_reader_writer_and_download(tmp_path: Path) -> None:
    """The shapes writer and the downloader use the reader's names, so the three cannot drift apart."""
    from helpers import download, flickr8k_captions, scenes

    assert flickr8k_captions.FLICKR8K_IMAGE_DIR == "Flicker8k_Dataset"  # sic, as in the official zip
    assert scenes.IMAGE_DIR is flickr8k_captions.FLICKR8K_IMAGE_DIR
    assert scenes.TOKEN_FILE is flickr8k_captions.FLICKR8K_TOKEN_FILE
    assert scenes.SPLIT_FILES is flickr8k_captions.FLICKR8K_SPLIT_FILES
    text_zip, images_zip = download.DATASETS["flickr8k"]
    assert (text_zip.name, text_zip.extract_to) == ("Flickr8k_text.zip", flickr8k_captions.FLICKR8K_TEXT_DIR)
    assert images_zip.extract_to == "."  # the images zip brings its own Flicker8k_Dataset/
    root = scenes.make_shapes(tmp_path / "shapes", images=8, seed=0)
    _, table, skipped = read_flickr8k(root)
    assert (len(table), skipped) == (5 * 8, [])
    assert sorted(table["split"].unique()) == ["dev", "test", "train"]
    assert {Path(path).parent for path in table["image"]} == {root / flickr8k_captions.FLICKR8K_IMAGE_DIR}


# ------------------------------------------------------------------------------------------------------
# Found by mutation testing (make mutation): messages, malformed entries, rows after a skipped one
# ------------------------------------------------------------------------------------------------------


def test_kaggle_without_captions_file_or_with_an_empty_one_says_which(tmp_path: Path):
    with pytest.raises(DatasetFormatError) as info:
        read_flickr8k_kaggle(tmp_path)
    assert str(info.value) == f"No captions.txt in {tmp_path} or its immediate subfolders."

    write_kaggle(tmp_path, "", [A])
    with pytest.raises(DatasetFormatError) as info:
        read_flickr8k_kaggle(tmp_path)
    assert str(info.value) == f"{tmp_path / 'captions.txt'} is empty."


def test_kaggle_blank_rows_are_ignored_and_the_rows_after_them_are_read(tmp_path: Path):
    write_kaggle(tmp_path, f"image,caption\n{A},A dog .\n\n , \n{B},Kids play .\n", [A, B])

    _, table, skipped = read_flickr8k_kaggle(tmp_path)

    assert (table["caption"].tolist(), skipped) == (["A dog .", "Kids play ."], [])
    assert table.attrs["root"] == str(tmp_path)
    assert table.dtypes.tolist() == [object] * 3  # not pandas 3's inferred "str": prints the same everywhere


def test_karpathy_skips_malformed_entries_and_sentences_naming_each_and_reads_the_rest(tmp_path: Path):
    images = [
        "not an object",
        {"filename": "   ", "split": "train", "sentences": [{"raw": "Blank name."}]},
        {"filename": 7, "split": "train", "sentences": [{"raw": "Numeric name."}]},
        {"filename": "s.jpg", "split": ["train"], "sentences": [{"raw": "A list as split."}]},
        {"filename": "n.jpg", "split": "train", "sentences": "A dog."},  # not a list of sentences
        {
            "filename": "m.jpg",
            "filepath": 5,  # not a folder name: ignored
            "split": "test",
            "sentences": ["A raw string.", {"tokens": ["a"]}, {"raw": 3}, {"raw": "  "}, {"raw": " A cat. "}],
        },
        karpathy_image("a.jpg", "train", "A dog."),
    ]
    write_karpathy(tmp_path, "dataset_flickr8k.json", images)
    write_images(tmp_path / "Images", ["s.jpg", "n.jpg", "m.jpg", "a.jpg"])

    _, table, skipped = read_karpathy(tmp_path)

    assert table["caption"].tolist() == ["A cat.", "A dog."]
    assert table["image"].tolist() == [str(tmp_path / "Images" / n) for n in ("m.jpg", "a.jpg")]
    assert table["split"].tolist() == ["test", "train"]
    assert table.attrs["root"] == str(tmp_path)
    no_name, no_raw = "image entry without a 'filename'", "sentence without 'raw' text"
    assert skipped == [
        *(Skipped(f"dataset_flickr8k.json images[{i}]", no_name) for i in range(3)),
        Skipped("s.jpg", "unknown split ['train']"),
        Skipped("n.jpg", "image has no captions"),
        Skipped("m.jpg sentence 0", no_raw),
        Skipped("m.jpg sentence 1", no_raw),
        Skipped("m.jpg sentence 2", no_raw),
        Skipped("m.jpg sentence 3", "empty caption"),
    ]


def test_karpathy_without_a_split_file_or_with_several_names_them(tmp_path: Path):
    with pytest.raises(DatasetFormatError) as info:
        read_karpathy(tmp_path)
    assert str(info.value) == (
        "No dataset_flickr8k.json, dataset_flickr30k.json, dataset_coco.json in "
        f"{tmp_path} or its immediate subfolders."
    )

    write_karpathy(tmp_path, "dataset_flickr8k.json", [])
    write_karpathy(tmp_path, "dataset_coco.json", [])
    with pytest.raises(DatasetFormatError) as info:
        read_karpathy(tmp_path)
    assert str(info.value) == (
        f"{tmp_path} holds several Karpathy split files (dataset_flickr8k.json, dataset_coco.json); "
        "pass the path of the one you want."
    )


def test_karpathy_coco_image_missing_from_a_2014_folder_that_exists_is_not_told_to_fetch_2014(tmp_path: Path):
    images = [
        karpathy_image("gone.jpg", "test", "A dog.", filepath="val2014"),
        karpathy_image("lost.jpg", "test", "A cat.", filepath="val2017"),
        karpathy_image("far.jpg", "train", "A bus.", filepath="train2014"),
    ]
    write_karpathy(tmp_path, "dataset_coco.json", images)
    write_images(tmp_path / "val2014", ["other.jpg"])

    _, table, skipped = read_karpathy(tmp_path)

    generic = "image file not found under the root or its image folders"
    assert table.empty
    fetch = (
        "image file not found: no train2014/ folder (Karpathy's COCO split names COCO 2014 images; "
        "fetch them with: python -m helpers data download coco2014)"
    )
    assert skipped == [
        Skipped("val2014/gone.jpg", generic),
        Skipped("val2017/lost.jpg", generic),
        Skipped("train2014/far.jpg", fetch),
    ]


def test_kaggle_skips_jpg_dot_1_rows_and_empty_captions_naming_each_line(tmp_path: Path):
    write_kaggle(tmp_path, f"image,caption\n{A}.1,A dog again .\n{A}, \n{A},A dog .\n", [A])

    _, table, skipped = read_flickr8k_kaggle(tmp_path)

    assert table["caption"].tolist() == ["A dog ."]
    assert skipped == [
        Skipped("captions.txt line 2", "known duplicate row: image name ends in '.jpg.1'"),
        Skipped("captions.txt line 3", "empty caption"),
    ]


def test_kaggle_file_that_csv_cannot_read_raises_naming_file_and_line(tmp_path: Path):
    write_kaggle(tmp_path, f"image,caption\n{A},A dog .\n{A},{'x' * 200_000}\n", [A])

    with pytest.raises(DatasetFormatError) as info:
        read_flickr8k_kaggle(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'captions.txt'} is not readable as CSV: "
        "field larger than field limit (131072) (line 3)."
    )


def test_kaggle_finds_images_next_to_a_captions_file_in_a_subfolder_or_names_the_folders(tmp_path: Path):
    write_kaggle(tmp_path / "flickr8k", f"image,caption\n{A},A dog .\n", [A])

    _, table, skipped = read_flickr8k_kaggle(tmp_path)

    assert (table["image"].tolist(), skipped) == ([str(tmp_path / "flickr8k" / "Images" / A)], [])

    (tmp_path / "flickr8k" / "Images" / A).unlink()
    (tmp_path / "flickr8k" / "Images").rmdir()
    _, table, skipped = read_flickr8k_kaggle(tmp_path)
    assert table.empty
    assert skipped == [Skipped(A, f"no image folder found under {tmp_path} (looked for Images/, images/)")]


def test_a_json_file_that_is_not_an_object_raises_naming_file_and_type(tmp_path: Path):
    (tmp_path / "dataset_flickr8k.json").write_text("[]")

    with pytest.raises(DatasetFormatError) as info:
        read_karpathy(tmp_path)
    assert str(info.value) == f"{tmp_path / 'dataset_flickr8k.json'} holds a JSON list, expected an object."


def test_flickr8k_without_token_file_or_split_files_names_every_file_it_looked_for(tmp_path: Path):
    with pytest.raises(DatasetFormatError) as info:
        read_flickr8k(tmp_path)
    assert str(info.value) == f"No Flickr8k.token.txt in {tmp_path} or its immediate subfolders."

    write_flickr8k(tmp_path, [f"{A}#0\tA dog ."], {}, [A])
    with pytest.raises(DatasetFormatError) as info:
        read_flickr8k(tmp_path)
    assert str(info.value) == (
        "None of the split files Flickr_8k.trainImages.txt, Flickr_8k.devImages.txt, "
        f"Flickr_8k.testImages.txt is in {tmp_path} or its immediate subfolders."
    )


def test_flickr8k_finds_split_files_in_another_folder_than_the_token_file(tmp_path: Path):
    write_flickr8k(tmp_path, [f"{A}#0\tA dog .", f"{B}#0\tKids ."], {}, [A, B], text_dir="Flickr8k_text")
    (tmp_path / "Flickr_8k.trainImages.txt").write_text(f"{A}\n")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "Flickr_8k.testImages.txt").write_text(f"{B}\n")

    _, table, skipped = read_flickr8k(tmp_path)

    assert (table["split"].tolist(), skipped) == (["train", "test"], [])


def test_flickr8k_reads_the_names_after_a_blank_line_in_a_split_file(tmp_path: Path):
    write_flickr8k(tmp_path, [f"{A}#0\tA dog .", f"{B}#0\tKids ."], {}, [A, B])
    (tmp_path / "Flickr_8k.trainImages.txt").write_text(f"{A}\n\n  \n{B}\n")

    _, table, skipped = read_flickr8k(tmp_path)

    assert (table["split"].tolist(), skipped) == (["train", "train"], [])


def test_flickr8k_reads_on_after_malformed_lines_and_splits_name_and_number_at_the_last_hash(tmp_path: Path):
    hashed = "4000_#4.jpg"
    lines = [
        f"{A}#0\tA dog .",
        f"{A}#1 no tab .",
        f"{A}#x\tA letter for a number .",
        "#0\tNo name .",
        f"{A}#1\tA brown dog .",
        f"{hashed}#0\tA hash in the name .",
    ]
    write_flickr8k(tmp_path, lines, {"train": [A, hashed]}, [A, hashed])

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["A dog .", "A brown dog .", "A hash in the name ."]
    assert table["image"].tolist()[-1] == str(tmp_path / "Flicker8k_Dataset" / hashed)
    expected = "expected 'name.jpg#k' before the tab"
    assert skipped == [
        Skipped("Flickr8k.token.txt line 2", "no tab between 'name.jpg#k' and the caption"),
        Skipped("Flickr8k.token.txt line 3", expected),
        Skipped("Flickr8k.token.txt line 4", expected),
    ]


def test_flickr8k_checks_every_image_after_one_it_dropped_and_names_the_root_without_images(tmp_path: Path):
    lines = [f"{B}#0\tKids .", f"{B}#1\tMore kids .", f"{A}#0\tA dog .", f"{C}#0\tA man ."]
    write_flickr8k(tmp_path, lines, {"train": [A, C]}, [A])

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["A dog ."]
    assert skipped == [
        Skipped(B, "not in any split file"),
        Skipped(C, "image file not found in Flicker8k_Dataset/"),
    ]

    (tmp_path / "Flicker8k_Dataset" / A).unlink()
    (tmp_path / "Flicker8k_Dataset").rmdir()
    _, _, skipped = read_flickr8k(tmp_path)
    folders = "Flicker8k_Dataset/, Flickr8k_Dataset/, Images/, images/"
    assert skipped[1] == Skipped(A, f"no image folder found under {tmp_path} (looked for {folders})")


def test_flickr8k_skips_empty_captions_and_repeated_rows_with_their_reasons(tmp_path: Path):
    lines = [f"{A}#0\tA dog .", f"{A}#1\t   ", f"{A}#0\tRepeat .", f"{A}#2\tA brown dog ."]
    write_flickr8k(tmp_path, lines, {"train": [A]}, [A])

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["A dog .", "A brown dog ."]
    assert skipped == [
        Skipped("Flickr8k.token.txt line 2", "empty caption"),
        Skipped("Flickr8k.token.txt line 3", "repeats an earlier 'name.jpg#k' row; the first is kept"),
    ]


def test_flickr8k_with_an_empty_image_folder_says_the_image_is_not_in_it(tmp_path: Path):
    write_flickr8k(tmp_path, [f"{A}#0\tA dog ."], {"train": [A]}, [])  # Flicker8k_Dataset/ made, empty

    _, table, skipped = read_flickr8k(tmp_path)

    assert table.empty
    assert skipped == [Skipped(A, "image file not found in Flicker8k_Dataset/")]


def test_flickr8k_looks_past_hidden_folders_and_macosx_leftovers(tmp_path: Path):
    """A hidden folder holding an old token file sorts first, and ``__MACOSX/`` before a lower-case folder
    name: neither may be read instead of the real files."""
    image_dir = "flickr8k/Flicker8k_Dataset"
    write_flickr8k(tmp_path, [f"{A}#0\tA dog ."], {"train": [A]}, [A], text_dir="text", image_dir=image_dir)
    (tmp_path / ".backup").mkdir()
    (tmp_path / ".backup" / "Flickr8k.token.txt").write_text(f"{A}#0\tAn old caption .\n")
    write_images(tmp_path / "__MACOSX" / "Flicker8k_Dataset", [f"._{A}"])

    _, table, skipped = read_flickr8k(tmp_path)

    assert skipped == []
    assert table["caption"].tolist() == ["A dog ."]
    assert table["image"].tolist() == [str(tmp_path / "flickr8k" / "Flicker8k_Dataset" / A)]


def test_flickr8k_reads_a_utf16_token_file(tmp_path: Path):
    write_flickr8k(tmp_path, [], {"train": [A]}, [A])
    (tmp_path / "Flickr8k.token.txt").write_bytes(f"{A}#0\tA caf\u00e9 .\r\n".encode("utf-16"))

    _, table, skipped = read_flickr8k(tmp_path)

    assert (table["caption"].tolist(), skipped) == (["A caf\u00e9 ."], [])


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["windows", "old-mac"])
def test_flickr8k_line_numbers_count_windows_and_old_mac_line_ends_once(tmp_path: Path, newline: str):
    lines = [f"{A}#0\tA dog .", f"{A}#1 no tab .", f"{A}#2\tA brown dog ."]
    write_flickr8k(tmp_path, lines, {"train": [A]}, [A], newline=newline)

    _, table, skipped = read_flickr8k(tmp_path)

    assert table["caption"].tolist() == ["A dog .", "A brown dog ."]
    assert table["image"].tolist() == [str(tmp_path / "Flicker8k_Dataset" / A)] * 2
    assert skipped == [Skipped("Flickr8k.token.txt line 2", "no tab between 'name.jpg#k' and the caption")]


def test_a_file_given_as_the_dataset_folder_is_named_as_a_file(tmp_path: Path):
    (tmp_path / "captions.txt").write_text("image,caption\n")

    with pytest.raises(DatasetFormatError) as info:
        read_flickr8k_kaggle(tmp_path / "captions.txt")
    assert str(info.value) == f"{tmp_path / 'captions.txt'} is a file, not a dataset directory."


def test_coco_names_missing_images_in_the_annotations_order_whatever_the_hash_seed(tmp_path: Path):
    import os
    import subprocess
    import sys

    (tmp_path / "annotations").mkdir()
    names = [f"{i:012d}.jpg" for i in (139, 9, 25, 71, 4)]
    images = [{"id": i, "file_name": name} for i, name in enumerate(names)]
    notes = [{"id": i, "image_id": i, "caption": f"caption {i}"} for i in range(len(names))]
    (tmp_path / "annotations" / "captions_val2017.json").write_text(
        json.dumps({"images": images, "annotations": notes}), encoding="utf-8")
    code = ("import sys; from helpers.coco_captions import read_coco; "
            "print([s.item for s in read_coco(sys.argv[1]).skipped])")
    seen = {
        subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                       check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2", "3")
    }
    assert seen == {f"{names}\n"}
