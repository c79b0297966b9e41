"""Tests for helpers.download: the datasets' table and ``fetch_dataset``, against a real HTTP server on
127.0.0.1 that serves tiny archives in the real layout (``tests/shared.py``).

Nothing here touches the internet: every URL points at the local server, which counts requests,
records ``Range`` headers, and can drop a connection halfway or ignore ranges on demand.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sys
from pathlib import Path

import pytest
from shared import FLICKR_IMAGES_ZIP, FLICKR_TEXT_ZIP, JPEG, TOKEN_TXT, serve, tree, zip_bytes

from helpers import download as dl
from helpers import extract, transfer
from helpers.download import DATASETS, Archive, coco_selection, fetch_dataset
from helpers.transfer import ChecksumError, DownloadError


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


COCO_FILES = {
    "annotations_trainval2017.zip": zip_bytes({"annotations/captions_val2017.json": b'{"annotations": []}'}),
    "val2017.zip": zip_bytes({"val2017/000000000139.jpg": JPEG}),
    "train2017.zip": zip_bytes({"train2017/000000000009.jpg": JPEG}),
}


@pytest.fixture
def server(without_proxies):
    """A threaded HTTP server on 127.0.0.1 (port 0); ``server.base_url``, ``.files``, ``.requests``."""
    files = {"Flickr8k_text.zip": FLICKR_TEXT_ZIP, "Flickr8k_Dataset.zip": FLICKR_IMAGES_ZIP}
    with serve({**files, **COCO_FILES}) as httpd:
        yield httpd


@pytest.fixture
def flickr_with_fixture_md5s(monkeypatch):
    """The flickr8k registry entry, with MD5s of the fixture archives so that checks can pass."""
    archives = [
        Archive(
            a.name,
            a.url_path,
            _md5(FLICKR_TEXT_ZIP if "text" in a.name else FLICKR_IMAGES_ZIP),
            None,
            a.extract_to,
        )
        for a in DATASETS["flickr8k"]
    ]
    monkeypatch.setitem(DATASETS, "flickr8k", archives)
    return archives


# ---------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------


def test_registry_points_at_official_urls_with_md5s():
    flickr = {a.name: a for a in DATASETS["flickr8k"]}
    assert flickr["Flickr8k_Dataset.zip"].url_path == (
        "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_Dataset.zip"
    )
    assert flickr["Flickr8k_text.zip"].md5 == "bf6c1abcb8e4a833b7f922104de18627"
    assert flickr["Flickr8k_Dataset.zip"].md5 == "f18a1e2920de5bd84dae7cf08ec78978"
    coco = {a.name: a for a in DATASETS["coco2017"]}
    assert coco["annotations_trainval2017.zip"].url_path == (
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
    )
    assert coco["val2017.zip"].url_path == "http://images.cocodataset.org/zips/val2017.zip"
    assert coco["train2017.zip"].url_path == "http://images.cocodataset.org/zips/train2017.zip"
    assert coco["val2017.zip"].md5 == "442b8da7639aecaf257c1dceb8ba8c80"
    assert coco["val2017.zip"].size == 815_585_330
    for archives in DATASETS.values():
        for archive in archives:
            assert archive.url_path.endswith("/" + archive.name)
            assert archive.md5 is None or re.fullmatch(r"[0-9a-f]{32}", archive.md5)
            assert archive.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", archive.sha256)


def test_coco_selection_subsets():
    assert coco_selection(annotations_only=True, val_only=False) == {"annotations_trainval2017.zip"}
    assert coco_selection(annotations_only=False, val_only=True) == {
        "annotations_trainval2017.zip",
        "val2017.zip",
    }
    assert coco_selection(annotations_only=False, val_only=False) == {
        "annotations_trainval2017.zip",
        "val2017.zip",
        "train2017.zip",
    }


def test_coco2014_fetches_the_images_karpathys_split_names():
    coco = {a.name: a for a in DATASETS["coco2014"]}
    assert coco["train2014.zip"].url_path == "http://images.cocodataset.org/zips/train2014.zip"
    assert coco["val2014.zip"].url_path == "http://images.cocodataset.org/zips/val2014.zip"
    assert coco["train2014.zip"].md5 == "0da8c0bd3d6becc4dcb32757491aca88"
    assert coco["val2014.zip"].md5 == "a3d79f5ed8d289b7a7554ce06a5782b3"
    assert (coco["train2014.zip"].size, coco["val2014.zip"].size) == (13_510_573_713, 6_645_013_297)
    assert coco["caption_datasets.zip"].url_path.endswith("/karpathy/deepimagesent/caption_datasets.zip")
    assert coco_selection(annotations_only=True, dataset="coco2014") == {"caption_datasets.zip"}
    assert coco_selection(val_only=True, dataset="coco2014") == {"caption_datasets.zip", "val2014.zip"}
    assert len(coco_selection(dataset="coco2014")) == 3


def test_fetch_dataset_rejects_unknown_dataset_and_archive_names(tmp_path):
    with pytest.raises(ValueError) as info:
        fetch_dataset("flickr9k", tmp_path)
    assert str(info.value) == "unknown dataset 'flickr9k'; choose one of coco2014, coco2017, flickr8k"
    with pytest.raises(ValueError) as info:
        fetch_dataset("coco2017", tmp_path, only={"test2017.zip", "a.zip"})
    assert str(info.value) == (
        "coco2017 has no archive named a.zip, test2017.zip; it has annotations_trainval2017.zip, "
        "val2017.zip, train2017.zip"
    )
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------
# fetch_dataset
# ---------------------------------------------------------------------------------------------------


def test_fetch_dataset_downloads_verifies_and_extracts_the_flickr8k_layout(
    server, tmp_path, flickr_with_fixture_md5s
):
    dest = tmp_path / "flickr8k"
    fetched = fetch_dataset("flickr8k", dest, base_url=server.base_url, progress=False, keep_archives=True)
    assert fetched == dest

    assert (dest / "Flickr8k_text" / "Flickr8k.token.txt").read_bytes() == TOKEN_TXT
    assert (
        dest / "Flickr8k_text" / "Flickr_8k.trainImages.txt"
    ).read_bytes() == b"1000268201_693b08cb0e.jpg\n"
    assert (dest / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG
    assert (dest / "downloads" / "Flickr8k_text.zip").read_bytes() == FLICKR_TEXT_ZIP
    assert (dest / "downloads" / "Flickr8k_Dataset.zip").read_bytes() == FLICKR_IMAGES_ZIP
    assert not list(dest.rglob("*.part"))
    assert not list(dest.rglob("__MACOSX"))  # macOS junk is skipped
    assert server.requests == [("Flickr8k_text.zip", None), ("Flickr8k_Dataset.zip", None)]


def test_second_fetch_makes_no_request(server, tmp_path, flickr_with_fixture_md5s):
    fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False)
    assert len(server.requests) == 2
    fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False)
    assert len(server.requests) == 2
    assert (tmp_path / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG


def test_fetch_after_deleting_the_downloaded_zips_makes_no_request(
    server, tmp_path, flickr_with_fixture_md5s
):
    fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False)
    for archive in (tmp_path / "downloads").iterdir():
        archive.unlink()  # learners free the disk space once the images are unpacked
    fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False)
    assert len(server.requests) == 2
    assert (tmp_path / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG


def test_interrupted_fetch_keeps_the_finished_archive_and_the_next_fetch_asks_only_for_the_rest(
    server, tmp_path, flickr_with_fixture_md5s
):
    """What notebook 07 once showed with its own server: the captions zip arrives and is unpacked, the
    images zip breaks off halfway; the same call again requests only the missing bytes of the images."""
    dest = tmp_path / "flickr8k"
    half = len(FLICKR_IMAGES_ZIP) // 2
    server.behaviour["Flickr8k_Dataset.zip"] = "drop_half"
    with pytest.raises(DownloadError) as info:
        fetch_dataset("flickr8k", dest, base_url=server.base_url, progress=False)
    assert "Flickr8k_Dataset.zip" in str(info.value) and f"after {half} of" in str(info.value)
    assert (dest / "Flickr8k_text" / "Flickr8k.token.txt").read_bytes() == TOKEN_TXT
    assert not (dest / "Flicker8k_Dataset").exists()
    assert (dest / "downloads" / "Flickr8k_Dataset.zip.part").read_bytes() == FLICKR_IMAGES_ZIP[:half]

    fetch_dataset("flickr8k", dest, base_url=server.base_url, progress=False)
    assert server.requests == [
        ("Flickr8k_text.zip", None),
        ("Flickr8k_Dataset.zip", None),
        ("Flickr8k_Dataset.zip", f"bytes={half}-"),
    ]
    assert (dest / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG
    assert not list(dest.rglob("*.part")) and not list(dest.rglob("__MACOSX"))


def test_fetch_dataset_with_official_md5s_refuses_other_files_and_deletes_them(server, tmp_path):
    with pytest.raises(ChecksumError) as info:
        fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False)
    message = str(info.value)
    assert "Flickr8k_text.zip" in message
    assert "bf6c1abcb8e4a833b7f922104de18627" in message  # expected
    assert _md5(FLICKR_TEXT_ZIP) in message  # actual
    assert not (tmp_path / "downloads" / "Flickr8k_text.zip").exists()
    assert not (tmp_path / "downloads" / "Flickr8k_text.zip.part").exists()
    assert not (tmp_path / "Flickr8k_text").exists()


def test_fetch_dataset_without_checksum_accepts_mirror_files(server, tmp_path):
    fetch_dataset("flickr8k", tmp_path, base_url=server.base_url + "/", checksum=False, progress=False)
    assert (tmp_path / "Flickr8k_text" / "Flickr8k.token.txt").read_bytes() == TOKEN_TXT
    assert (tmp_path / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG


def test_fetch_dataset_only_downloads_the_selected_coco_archives(server, tmp_path):
    only = coco_selection(annotations_only=False, val_only=True)
    fetch_dataset("coco2017", tmp_path, base_url=server.base_url, checksum=False, only=only, progress=False)
    assert [name for name, _ in server.requests] == ["annotations_trainval2017.zip", "val2017.zip"]
    assert (tmp_path / "annotations" / "captions_val2017.json").read_bytes() == b'{"annotations": []}'
    assert (tmp_path / "val2017" / "000000000139.jpg").read_bytes() == JPEG
    assert not (tmp_path / "train2017").exists()


def test_coco_size_mismatch_is_refused_before_the_body_is_saved(server, tmp_path):
    # With checks on, the registry's size (815,585,330 bytes) cannot match the tiny fixture.
    with pytest.raises(ChecksumError, match=r"val2017\.zip has \d+ bytes on the server, but 815585330"):
        fetch_dataset("coco2017", tmp_path, base_url=server.base_url, only={"val2017.zip"}, progress=False)
    assert not (tmp_path / "downloads" / "val2017.zip").exists()


# ---------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------
# Deleting the archives once unpacked (issue #24, case 10)
# ---------------------------------------------------------------------------------------------------


def test_fetch_dataset_deletes_the_archives_it_downloaded_once_unpacked(
    server, tmp_path, flickr_with_fixture_md5s
):
    dest = tmp_path / "flickr8k"
    fetch_dataset("flickr8k", dest, base_url=server.base_url, progress=False)

    assert (dest / "Flickr8k_text" / "Flickr8k.token.txt").read_bytes() == TOKEN_TXT
    assert (dest / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG
    assert tree(dest / "downloads") == set()
    fetch_dataset("flickr8k", dest, base_url=server.base_url, progress=False)
    assert len(server.requests) == 2  # the markers still say it is done


def test_keep_archives_keeps_the_downloaded_archives(server, tmp_path, flickr_with_fixture_md5s):
    fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False, keep_archives=True)

    assert (tmp_path / "downloads" / "Flickr8k_text.zip").read_bytes() == FLICKR_TEXT_ZIP
    assert (tmp_path / "downloads" / "Flickr8k_Dataset.zip").read_bytes() == FLICKR_IMAGES_ZIP
    assert (tmp_path / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG


def test_an_archive_the_user_put_in_downloads_is_kept_after_unpacking(
    server, tmp_path, flickr_with_fixture_md5s
):
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "Flickr8k_Dataset.zip").write_bytes(FLICKR_IMAGES_ZIP)  # fetched by hand

    fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False)

    assert server.requests == [("Flickr8k_text.zip", None)]
    assert (tmp_path / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG
    assert tree(tmp_path / "downloads") == {"Flickr8k_Dataset.zip"}  # theirs kept, its own deleted
    assert (tmp_path / "downloads" / "Flickr8k_Dataset.zip").read_bytes() == FLICKR_IMAGES_ZIP


def test_an_archive_an_interrupted_run_downloaded_is_deleted_once_a_later_run_unpacks_it(
    server, tmp_path, flickr_with_fixture_md5s
):
    in_the_way = tmp_path / "Flickr8k_text" / "Flickr8k.token.txt"
    in_the_way.parent.mkdir()
    in_the_way.write_bytes(b"my own captions\n")
    with pytest.raises(ValueError, match="would overwrite Flickr8k.token.txt"):
        fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False)
    assert (tmp_path / "downloads" / "Flickr8k_text.zip").read_bytes() == FLICKR_TEXT_ZIP  # not unpacked

    in_the_way.unlink()
    fetch_dataset("flickr8k", tmp_path, base_url=server.base_url, progress=False)
    assert [name for name, _ in server.requests] == ["Flickr8k_text.zip", "Flickr8k_Dataset.zip"]
    assert in_the_way.read_bytes() == TOKEN_TXT
    assert tree(tmp_path / "downloads") == set()


def test_karpathy_split_archive_is_pinned_like_every_other_file():
    karpathy = {a.name: a for a in DATASETS["coco2014"]}["caption_datasets.zip"]
    assert karpathy.url_path == "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
    assert karpathy.sha256 == "4cfd70132527b80933105e5829dc9034eaab9573482e2e680abbab6130244817"
    assert karpathy.size == 36_745_453
    unchecked = [a.name for archives in DATASETS.values() for a in archives if not (a.md5 or a.sha256)]
    assert unchecked == []


def test_karpathy_split_archive_of_another_size_is_refused(server, tmp_path):
    server.files["caption_datasets.zip"] = zip_bytes({"dataset_coco.json": b'{"images": []}'})
    expected = r"caption_datasets\.zip has \d+ bytes on the server, but 36745453 were expected"
    with pytest.raises(ChecksumError, match=expected):
        fetch_dataset(
            "coco2014", tmp_path, base_url=server.base_url, only={"caption_datasets.zip"}, progress=False
        )
    assert not (tmp_path / "dataset_coco.json").exists()


@pytest.mark.parametrize("module", [dl, extract, transfer], ids=lambda module: module.__name__)
def test_modules_use_only_the_standard_library_and_tqdm(module):
    """What a bare Colab kernel has: the download modules import nothing else (not torch, not pandas)."""
    imported = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    siblings = {"helpers.extract", "helpers.transfer"}
    others = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert others - siblings <= {"tqdm.auto"}


# ---------------------------------------------------------------------------------------------------
# The official location, and the sizes in download --help
# ---------------------------------------------------------------------------------------------------


def test_fetch_dataset_without_base_url_asks_the_official_urls_with_every_check(tmp_path, monkeypatch):
    asked = []

    def offline(url, path, **checks):
        asked.append((url, path, checks))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zip_bytes({f"{path.stem}/x.jpg": JPEG}))
        return path

    monkeypatch.setattr(dl, "download", offline)
    fetch_dataset("coco2014", tmp_path, progress=False)
    archives = DATASETS["coco2014"]
    assert [(url, path) for url, path, _ in asked] == [
        (a.url_path, tmp_path / "downloads" / a.name) for a in archives
    ]
    assert [checks for *_, checks in asked] == [
        {"md5": a.md5, "sha256": a.sha256, "size": a.size, "progress": False} for a in archives
    ]
    assert (tmp_path / "val2014" / "x.jpg").read_bytes() == JPEG
    assert tree(tmp_path / "downloads") == set()


def test_fetch_dataset_from_a_mirror_without_checksums_shows_progress_by_default(tmp_path, monkeypatch):
    asked = []

    def offline(url, path, **checks):
        asked.append((url, checks))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(zip_bytes({f"{path.stem}/x.jpg": JPEG}))
        return path

    monkeypatch.setattr(dl, "download", offline)
    fetch_dataset("coco2014", tmp_path, base_url="http://mirror.test/coco-X/", checksum=False)
    assert asked == [
        (f"http://mirror.test/coco-X/{a.name}", {"md5": None, "sha256": None, "size": None, "progress": True})
        for a in DATASETS["coco2014"]
    ]


def test_the_help_of_keep_archives_gives_each_datasets_archive_size():
    assert dl._archives_size_note() == (
        "coco2017 19.0 GiB, coco2014 18.8 GiB of archives (flickr8k: sizes not recorded)"
    )
    assert dl.KEEP_ARCHIVES_HELP.endswith(dl._archives_size_note())


def test_the_size_note_adds_up_each_dataset_and_names_those_with_a_size_missing(monkeypatch):
    def archive(size):
        return Archive("a.zip", "https://example.org/a.zip", None, size, ".")

    table = {
        "one": [archive(2**30), archive(2**29)],
        "two": [archive(3 * 2**30), archive(None)],
        "three": [archive(2**28)],
        "four": [archive(None)],
    }
    monkeypatch.setattr(dl, "DATASETS", table)
    assert dl._archives_size_note() == (
        "one 1.5 GiB, three 0.2 GiB of archives (two, four: sizes not recorded)"
    )
