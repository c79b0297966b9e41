"""Tests for helpers.download: a real HTTP server on 127.0.0.1 serves tiny archives in the real layout.

Nothing here touches the internet: every URL points at the local server, which counts requests,
records ``Range`` headers, and can drop a connection halfway or ignore ranges on demand.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from shared import JPEG, serve, zip_bytes

from helpers import download as dl
from helpers.download import (
    DATASETS,
    Archive,
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    coco_selection,
    download,
    fetch_dataset,
    safe_extract,
)

TOKEN_TXT = b"1000268201_693b08cb0e.jpg#0\tA child in a pink dress is climbing up a set of stairs .\n"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


FLICKR_TEXT_ZIP = zip_bytes(
    {
        "Flickr8k.token.txt": TOKEN_TXT,
        "Flickr_8k.trainImages.txt": b"1000268201_693b08cb0e.jpg\n",
        "Flickr_8k.devImages.txt": b"",
        "Flickr_8k.testImages.txt": b"",
        "__MACOSX/._Flickr8k.token.txt": b"mac resource fork",
    }
)
FLICKR_IMAGES_ZIP = zip_bytes(
    {
        "Flicker8k_Dataset/x.jpg": JPEG,
        "__MACOSX/Flicker8k_Dataset/._x.jpg": b"mac resource fork",
    }
)
COCO_FILES = {
    "annotations_trainval2017.zip": zip_bytes({"annotations/captions_val2017.json": b'{"annotations": []}'}),
    "val2017.zip": zip_bytes({"val2017/000000000139.jpg": JPEG}),
    "train2017.zip": zip_bytes({"train2017/000000000009.jpg": JPEG}),
}
BLOB = bytes(range(256)) * 40  # 10,240 bytes for the download-level tests


@pytest.fixture
def server(monkeypatch):
    """A threaded HTTP server on 127.0.0.1 (port 0); ``server.base_url``, ``.files``, ``.requests``."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    files = {"Flickr8k_text.zip": FLICKR_TEXT_ZIP, "Flickr8k_Dataset.zip": FLICKR_IMAGES_ZIP}
    with serve({**files, **COCO_FILES, "blob.bin": BLOB}) as httpd:
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
    with pytest.raises(ValueError, match="unknown dataset 'flickr9k'"):
        fetch_dataset("flickr9k", tmp_path)
    with pytest.raises(ValueError, match="test2017.zip"):
        fetch_dataset("coco2017", tmp_path, only={"test2017.zip"})
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
# download
# ---------------------------------------------------------------------------------------------------


def test_download_of_an_already_downloaded_file_makes_no_request(server, tmp_path):
    dest = tmp_path / "blob.bin"
    download(f"{server.base_url}/blob.bin", dest, md5=_md5(BLOB), progress=False)
    download(f"{server.base_url}/blob.bin", dest, md5=_md5(BLOB), progress=False)
    assert server.requests == [("blob.bin", None)]
    assert dest.read_bytes() == BLOB


def test_download_keeps_a_mismatching_file_it_did_not_write_and_says_so(server, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"a learner's own copy")  # download only renames checked files into place
    with pytest.raises(ChecksumError) as info:
        download(f"{server.base_url}/blob.bin", dest, md5=_md5(BLOB), progress=False)
    message = str(info.value)
    assert message.startswith(f"{dest} is already there, but blob.bin has MD5 {_md5(dest.read_bytes())}")
    assert "it is kept" in message and "\n" not in message
    assert dest.read_bytes() == b"a learner's own copy"
    assert server.requests == []
    dest.unlink()  # as the message says: then it downloads afresh
    download(f"{server.base_url}/blob.bin", dest, md5=_md5(BLOB), progress=False)
    assert dest.read_bytes() == BLOB


def test_dropped_connection_raises_download_error_and_keeps_the_part_file(server, tmp_path):
    url = f"{server.base_url}/blob.bin"
    dest = tmp_path / "blob.bin"
    half = len(BLOB) // 2
    server.behaviour["blob.bin"] = "drop_half"

    with pytest.raises(DownloadError) as info:
        download(url, dest, md5=_md5(BLOB), progress=False)
    assert url in str(info.value)
    assert f"after {half} of {len(BLOB)} bytes" in str(info.value)
    assert not dest.exists()
    assert (tmp_path / "blob.bin.part").read_bytes() == BLOB[:half]


def test_download_resumes_a_part_file_with_a_range_request(server, tmp_path):
    url = f"{server.base_url}/blob.bin"
    dest = tmp_path / "blob.bin"
    half = len(BLOB) // 2
    server.behaviour["blob.bin"] = "drop_half"
    with pytest.raises(DownloadError):
        download(url, dest, md5=_md5(BLOB), progress=False)

    assert download(url, dest, md5=_md5(BLOB), progress=False) == dest
    assert server.requests == [("blob.bin", None), ("blob.bin", f"bytes={half}-")]
    assert dest.read_bytes() == BLOB
    assert not (tmp_path / "blob.bin.part").exists()


def test_server_ignoring_range_restarts_the_download_from_zero(server, tmp_path):
    dest = tmp_path / "blob.bin"
    stale = b"stale bytes that must not survive"
    (tmp_path / "blob.bin.part").write_bytes(stale)
    server.behaviour["blob.bin"] = "ignore_range"

    messages = []
    download(f"{server.base_url}/blob.bin", dest, md5=_md5(BLOB), progress=False, log=messages.append)
    assert server.requests == [("blob.bin", f"bytes={len(stale)}-")]  # asked to resume, got a 200
    assert dest.read_bytes() == BLOB
    assert messages == [  # its own partial file, but never discarded without a word
        f"Discarding blob.bin.part ({len(stale)} bytes): the server cannot resume; starting over."
    ]


def test_part_file_already_complete_is_finished_without_downloading_again(server, tmp_path):
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(BLOB)  # cut off after the last byte, before the rename
    download(f"{server.base_url}/blob.bin", dest, md5=_md5(BLOB), progress=False)
    assert server.requests == [("blob.bin", f"bytes={len(BLOB)}-")]  # answered 416
    assert dest.read_bytes() == BLOB


def test_checksum_mismatch_deletes_the_file_and_names_file_and_digests(server, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(ChecksumError) as info:
        download(f"{server.base_url}/blob.bin", dest, md5="0" * 32, progress=False)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "blob.bin" in message and "0" * 32 in message and _md5(BLOB) in message
    assert not dest.exists()
    assert not (tmp_path / "blob.bin.part").exists()


def test_download_without_md5_accepts_the_bytes(server, tmp_path):
    dest = download(f"{server.base_url}/blob.bin", tmp_path / "sub" / "blob.bin", md5=None, progress=False)
    assert dest.read_bytes() == BLOB


def test_missing_file_raises_download_error_with_status(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.base_url}/nope.zip", tmp_path / "nope.zip", md5=None, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_raises_download_error(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    with pytest.raises(DownloadError, match="could not reach http://127.0.0.1:9/x.zip"):
        download("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", md5=None, progress=False)


# ---------------------------------------------------------------------------------------------------
# safe_extract
# ---------------------------------------------------------------------------------------------------


def _tree(folder: Path) -> set[str]:
    """Every path under ``folder``, relative, so that "nothing else was written" can be asserted."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_zip_member_climbing_out_of_dest_is_refused_and_nothing_is_written(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"ok.txt": b"fine", "../evil.txt": b"pwned"}))
    dest = tmp_path / "out"
    before = _tree(tmp_path)

    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, dest)
    assert "evil.zip" in str(info.value) and "'../evil.txt'" in str(info.value)
    assert not (tmp_path / "evil.txt").exists()
    assert _tree(tmp_path) == before  # not even ok.txt, nor dest itself


def test_zip_member_with_absolute_path_is_refused(tmp_path):
    outside = tmp_path / "elsewhere" / "abs.txt"
    archive = tmp_path / "abs.zip"
    archive.write_bytes(zip_bytes({str(outside): b"pwned"}))

    expected = r"abs\.zip holds member '.*', which has an absolute or Windows path$"
    with pytest.raises(UnsafeArchiveError, match=expected):
        safe_extract(archive, tmp_path / "out")
    assert not outside.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["..\\evil.txt", "C:\\evil.txt", "C:/evil.txt", "sub\\..\\..\\evil.txt"])
def test_zip_member_with_windows_drive_or_backslash_is_refused(tmp_path, name):
    archive = tmp_path / "win.zip"
    archive.write_bytes(zip_bytes({name: b"pwned"}))
    with pytest.raises(UnsafeArchiveError, match="win.zip"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == {"win.zip"}


def test_zip_entry_marked_as_symlink_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        link = zipfile.ZipInfo("passwd")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    archive = tmp_path / "link.zip"
    archive.write_bytes(buffer.getvalue())

    with pytest.raises(UnsafeArchiveError, match="link.zip.*'passwd'.*symbolic link"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _tar_gz(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for member in members:
            payload = data.get(member.name)
            if payload is not None:
                member.size = len(payload)
            tf.addfile(member, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_with_link_member_is_refused(tmp_path, kind):
    regular = tarfile.TarInfo("images/a.jpg")
    link = tarfile.TarInfo("images/b.jpg")
    link.type = kind
    link.linkname = "/etc/passwd"
    archive = tmp_path / "links.tar.gz"
    archive.write_bytes(_tar_gz([regular, link], {"images/a.jpg": JPEG}))

    with pytest.raises(UnsafeArchiveError, match="links.tar.gz.*'images/b.jpg'.*link"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a.jpg, listed first, was not written either


def _archive(kind: str, members: dict[str, bytes]) -> bytes:
    """A zip or a tar.gz, in memory, holding ``members`` (name → bytes), in that order."""
    if kind == "zip":
        return zip_bytes(members)
    return _tar_gz([tarfile.TarInfo(name) for name in members], members)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_member_climbing_out_of_dest_is_refused_for_both_archive_kinds(tmp_path, kind):
    archive = tmp_path / f"evil.{kind}"
    archive.write_bytes(_archive(kind, {"ok.txt": b"fine", "../evil.txt": b"pwned"}))
    before = _tree(tmp_path)

    with pytest.raises(UnsafeArchiveError, match=rf"evil\.{kind}.*'\.\./evil\.txt'.*outside"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == before  # nothing outside, and not even ok.txt inside


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_sibling_folder_sharing_the_dest_name_prefix_is_outside(tmp_path, kind):
    # "../out_evil/x" resolves to <tmp>/out_evil/x, whose path *string* starts with "<tmp>/out":
    # a containment check by string prefix lets it through; a check by path components does not.
    archive = tmp_path / f"prefix.{kind}"
    archive.write_bytes(_archive(kind, {"../out_evil/x.txt": b"pwned"}))

    with pytest.raises(UnsafeArchiveError, match=rf"prefix\.{kind}.*'\.\./out_evil/x\.txt'.*outside"):
        safe_extract(archive, tmp_path / "out")
    assert _tree(tmp_path) == {f"prefix.{kind}"}


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_dotdot_that_stays_inside_dest_is_extracted(tmp_path, kind):
    archive = tmp_path / f"inside.{kind}"
    archive.write_bytes(_archive(kind, {"a/../b.txt": b"kept"}))

    files = safe_extract(archive, tmp_path / "out")
    assert files == [tmp_path / "out" / "b.txt"]
    assert files[0].read_bytes() == b"kept"


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_with_special_file_member_is_refused(tmp_path, kind):
    special = tarfile.TarInfo("images/device")
    special.type = kind
    archive = tmp_path / "special.tar.gz"
    archive.write_bytes(_tar_gz([tarfile.TarInfo("images/a.jpg"), special], {"images/a.jpg": JPEG}))

    expected = r"^special\.tar\.gz holds member 'images/device', which is a special file$"
    with pytest.raises(UnsafeArchiveError, match=expected):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_gz_with_regular_files_is_extracted(tmp_path):
    folder = tarfile.TarInfo("images")
    folder.type = tarfile.DIRTYPE
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(_tar_gz([folder, tarfile.TarInfo("images/a.jpg")], {"images/a.jpg": JPEG}))

    files = safe_extract(archive, tmp_path / "out")
    assert files == [tmp_path / "out" / "images" / "a.jpg"]
    assert files[0].read_bytes() == JPEG


def test_safe_extract_skips_work_when_the_marker_says_it_is_done(tmp_path):
    archive = tmp_path / "Flickr8k_Dataset.zip"
    archive.write_bytes(FLICKR_IMAGES_ZIP)
    dest = tmp_path / "out"
    first = safe_extract(archive, dest)
    assert first == [dest / "Flicker8k_Dataset" / "x.jpg"]
    assert (dest / ".extracted-Flickr8k_Dataset.zip").exists()

    (dest / "Flicker8k_Dataset" / "x.jpg").write_bytes(b"edited by the learner")
    assert safe_extract(archive, dest) == first
    assert (dest / "Flicker8k_Dataset" / "x.jpg").read_bytes() == b"edited by the learner"


def test_safe_extract_never_overwrites_a_file_it_did_not_write(tmp_path):
    archive = tmp_path / "Flickr8k_text.zip"
    archive.write_bytes(FLICKR_TEXT_ZIP)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "Flickr8k.token.txt").write_bytes(b"my corrected captions\n")
    before = _tree(dest)
    with pytest.raises(ValueError) as info:
        safe_extract(archive, dest)
    assert str(info.value) == (
        f"Flickr8k_text.zip would overwrite Flickr8k.token.txt in {dest}, which it did not write; "
        "nothing was extracted: move them, or choose another folder (--out)"
    )
    assert _tree(dest) == before
    assert (dest / "Flickr8k.token.txt").read_bytes() == b"my corrected captions\n"


def test_safe_extract_keeps_identical_files_and_redoes_an_interrupted_extraction(tmp_path, monkeypatch):
    archive = tmp_path / "Flickr8k_text.zip"
    archive.write_bytes(FLICKR_TEXT_ZIP)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "Flickr8k.token.txt").write_bytes(TOKEN_TXT)  # unpacked by hand earlier: the same bytes
    copies = []

    def interrupted(src, out, length=0):
        copies.append(out.name)
        out.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(dl.shutil, "copyfileobj", interrupted)
    with pytest.raises(KeyboardInterrupt):
        safe_extract(archive, dest)
    monkeypatch.undo()
    assert not (dest / ".extracted-Flickr8k_text.zip").exists()
    files = safe_extract(archive, dest)  # the half-written file is its own: written again
    assert {p.name for p in files} == {
        "Flickr8k.token.txt",
        "Flickr_8k.trainImages.txt",
        "Flickr_8k.devImages.txt",
        "Flickr_8k.testImages.txt",
    }
    assert (dest / "Flickr8k.token.txt").read_bytes() == TOKEN_TXT
    assert (dest / "Flickr_8k.trainImages.txt").read_bytes() == b"1000268201_693b08cb0e.jpg\n"
    assert not (dest / ".extracting-Flickr8k_text.zip").exists()


def test_safe_extract_rejects_a_file_that_is_not_an_archive(tmp_path):
    not_archive = tmp_path / "page.zip"
    not_archive.write_bytes(b"<html>rate limit exceeded</html>")
    with pytest.raises(ValueError, match="page.zip is neither a zip nor a tar archive"):
        safe_extract(not_archive, tmp_path / "out")


def test_module_uses_only_the_standard_library_and_tqdm():
    source = Path(dl.__file__).read_text()
    imported = set(re.findall(r"^(?:from|import) (\w+)", source, flags=re.MULTILINE))
    assert imported - {"__future__", "tqdm"} <= {
        "collections",
        "typing",
        "hashlib",
        "http",
        "json",
        "re",
        "shutil",
        "stat",
        "tarfile",
        "urllib",
        "zipfile",
        "dataclasses",
        "pathlib",
    }


# ---------------------------------------------------------------------------------------------------
# Found by mutation testing (make mutation): what counts as "the member's exact bytes"
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "in_the_way",
    [TOKEN_TXT[:-2] + b"?\n", TOKEN_TXT + b"my extra line\n"],
    ids=["same-size-other-bytes", "the-member-then-more"],
)
def test_a_file_in_the_way_that_only_resembles_the_member_is_not_overwritten(tmp_path, in_the_way):
    archive = tmp_path / "Flickr8k_text.zip"
    archive.write_bytes(FLICKR_TEXT_ZIP)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "Flickr8k.token.txt").write_bytes(in_the_way)

    with pytest.raises(ValueError, match=r"would overwrite Flickr8k\.token\.txt in .*which it did not write"):
        safe_extract(archive, dest)
    assert _tree(dest) == {"Flickr8k.token.txt"}
    assert (dest / "Flickr8k.token.txt").read_bytes() == in_the_way


def test_an_identical_file_larger_than_one_read_is_kept(tmp_path):
    big = bytes(range(251)) * 4200  # 1,054,200 bytes: more than one 1 MiB chunk
    archive = tmp_path / "big.zip"
    archive.write_bytes(zip_bytes({"big.bin": big}))
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "big.bin").write_bytes(big)
    mtime = (dest / "big.bin").stat().st_mtime_ns

    assert safe_extract(archive, dest) == [dest / "big.bin"]
    assert (dest / "big.bin").read_bytes() == big
    assert (dest / "big.bin").stat().st_mtime_ns == mtime  # kept, not written again


def test_every_file_in_the_way_is_checked_not_only_those_before_the_first_free_one(tmp_path):
    archive = tmp_path / "two.zip"
    archive.write_bytes(zip_bytes({"new.txt": b"new", "mine.txt": b"from the archive"}))
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mine.txt").write_bytes(b"the learner's own")

    with pytest.raises(ValueError, match=r"^two\.zip would overwrite mine\.txt in "):
        safe_extract(archive, dest)
    assert _tree(dest) == {"mine.txt"}
    assert (dest / "mine.txt").read_bytes() == b"the learner's own"


@pytest.mark.parametrize(
    ("count", "shown"), [(3, "f0.txt, f1.txt, f2.txt"), (4, "f0.txt, f1.txt, f2.txt and 1 more")]
)
def test_the_refusal_names_three_files_in_the_way_and_counts_the_rest(tmp_path, count, shown):
    names = [f"f{i}.txt" for i in range(count)]
    archive = tmp_path / "many.zip"
    archive.write_bytes(zip_bytes({name: b"archive" for name in names}))
    dest = tmp_path / "out"
    dest.mkdir()
    for name in names:
        (dest / name).write_bytes(b"mine")

    with pytest.raises(ValueError) as info:
        safe_extract(archive, dest)
    assert str(info.value) == (
        f"many.zip would overwrite {shown} in {dest}, which it did not write; "
        "nothing was extracted: move them, or choose another folder (--out)"
    )


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_changed_archive_overwrites_the_files_its_marker_says_it_wrote(tmp_path, kind):
    archive = tmp_path / f"data.{kind}"
    dest = tmp_path / "out"
    archive.write_bytes(_archive(kind, {"a/x.txt": b"version 1"}))
    assert safe_extract(archive, dest) == [dest / "a" / "x.txt"]

    archive.write_bytes(_archive(kind, {"a/x.txt": b"version 2, longer", "a/y.txt": b"new"}))
    assert safe_extract(archive, dest) == [dest / "a" / "x.txt", dest / "a" / "y.txt"]
    assert (dest / "a" / "x.txt").read_bytes() == b"version 2, longer"
    assert (dest / "a" / "y.txt").read_bytes() == b"new"
    marker = json.loads((dest / f".extracted-data.{kind}").read_text())
    size = archive.stat().st_size
    assert marker == {"archive": f"data.{kind}", "size": size, "files": ["a/x.txt", "a/y.txt"]}
    assert not (dest / f".extracting-data.{kind}").exists()


def test_extraction_makes_every_missing_parent_of_the_destination(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_bytes({"x.txt": b"x"}))

    files = safe_extract(archive, tmp_path / "new" / "nested" / "out")

    assert files == [tmp_path / "new" / "nested" / "out" / "x.txt"]
    assert files[0].read_bytes() == b"x"


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_folders_are_made_with_their_parents_in_any_order_and_may_already_exist(tmp_path, kind):
    archive = tmp_path / f"tree.{kind}"
    if kind == "zip":
        archive.write_bytes(zip_bytes({"top/sub/": b"", "top/": b"", "deep/er/x.txt": b"x"}))
    else:
        folders = [tarfile.TarInfo("top/sub"), tarfile.TarInfo("top")]
        for folder in folders:
            folder.type = tarfile.DIRTYPE
        archive.write_bytes(_tar_gz([*folders, tarfile.TarInfo("deep/er/x.txt")], {"deep/er/x.txt": b"x"}))

    files = safe_extract(archive, tmp_path / "out")

    assert files == [tmp_path / "out" / "deep" / "er" / "x.txt"]
    assert files[0].read_bytes() == b"x"
    assert (tmp_path / "out" / "top" / "sub").is_dir()


# ---------------------------------------------------------------------------------------------------
# Issue #24, case 10: archives deleted after a verified extraction, Karpathy's zip pinned, tar data filter
# ---------------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_fetch_dataset_deletes_the_archives_it_downloaded_once_unpacked(
    server, tmp_path, flickr_with_fixture_md5s
):
    dest = tmp_path / "flickr8k"
    fetch_dataset("flickr8k", dest, base_url=server.base_url, progress=False)

    assert (dest / "Flickr8k_text" / "Flickr8k.token.txt").read_bytes() == TOKEN_TXT
    assert (dest / "Flicker8k_Dataset" / "x.jpg").read_bytes() == JPEG
    assert _tree(dest / "downloads") == set()
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
    assert _tree(tmp_path / "downloads") == {"Flickr8k_Dataset.zip"}  # theirs kept, its own deleted
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
    assert _tree(tmp_path / "downloads") == set()


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


def test_download_checks_a_sha256_digest_and_deletes_a_mismatch(server, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(ChecksumError) as info:
        download(f"{server.base_url}/blob.bin", dest, md5=None, sha256="0" * 64, progress=False)
    assert str(info.value) == (
        f"blob.bin has SHA-256 {_sha256(BLOB)}, but {'0' * 64} was expected; "
        "the file was deleted, run again to download it afresh"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_resumed_download_checks_the_sha256_of_every_byte(server, tmp_path):
    url, dest = f"{server.base_url}/blob.bin", tmp_path / "blob.bin"
    server.behaviour["blob.bin"] = "drop_half"
    with pytest.raises(DownloadError):
        download(url, dest, md5=None, sha256=_sha256(BLOB), progress=False)

    assert download(url, dest, md5=None, sha256=_sha256(BLOB), progress=False) == dest
    assert server.requests[-1] == ("blob.bin", f"bytes={len(BLOB) // 2}-")
    assert dest.read_bytes() == BLOB


def test_tar_members_are_unpacked_with_the_data_filter(tmp_path):
    script = tarfile.TarInfo("bin/run.sh")
    script.mode, script.mtime = 0o4777, 1_000_000_000  # set-user-ID, writable by anyone
    archive = tmp_path / "tools.tar.gz"
    archive.write_bytes(_tar_gz([script], {"bin/run.sh": b"#!/bin/sh\n"}))

    [path] = safe_extract(archive, tmp_path / "out")

    assert path.read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o755  # executable kept, set-user-ID and others' write not
    assert path.stat().st_mtime == 1_000_000_000


def test_tar_without_the_data_filter_falls_back_to_the_member_checks(tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter")
    ok = tmp_path / "ok.tar.gz"
    ok.write_bytes(_archive("tar.gz", {"images/a.jpg": JPEG}))
    assert [p.read_bytes() for p in safe_extract(ok, tmp_path / "out")] == [JPEG]

    link = tarfile.TarInfo("images/b.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(_tar_gz([tarfile.TarInfo("images/c.jpg"), link], {"images/c.jpg": JPEG}))
    expected = r"^evil\.tar\.gz holds member 'images/b\.jpg', which is a link$"
    with pytest.raises(UnsafeArchiveError, match=expected):
        safe_extract(evil, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
