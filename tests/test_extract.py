"""Tests for helpers.extract.safe_extract: tiny zip and tar archives, made in the test, some hostile."""

from __future__ import annotations

import io
import json
import stat
import tarfile
import zipfile

import pytest
from shared import FLICKR_IMAGES_ZIP, FLICKR_TEXT_ZIP, JPEG, TOKEN_TXT, tree, zip_bytes

from helpers import extract
from helpers.extract import UnsafeArchiveError, safe_extract


def test_zip_member_climbing_out_of_dest_is_refused_and_nothing_is_written(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"ok.txt": b"fine", "../evil.txt": b"pwned"}))
    dest = tmp_path / "out"
    before = tree(tmp_path)

    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, dest)
    assert "evil.zip" in str(info.value) and "'../evil.txt'" in str(info.value)
    assert not (tmp_path / "evil.txt").exists()
    assert tree(tmp_path) == before  # not even ok.txt, nor dest itself


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
    assert tree(tmp_path) == {"win.zip"}


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
    before = tree(tmp_path)

    with pytest.raises(UnsafeArchiveError, match=rf"evil\.{kind}.*'\.\./evil\.txt'.*outside"):
        safe_extract(archive, tmp_path / "out")
    assert tree(tmp_path) == before  # nothing outside, and not even ok.txt inside


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_sibling_folder_sharing_the_dest_name_prefix_is_outside(tmp_path, kind):
    # "../out_evil/x" resolves to <tmp>/out_evil/x, whose path *string* starts with "<tmp>/out":
    # a containment check by string prefix lets it through; a check by path components does not.
    archive = tmp_path / f"prefix.{kind}"
    archive.write_bytes(_archive(kind, {"../out_evil/x.txt": b"pwned"}))

    with pytest.raises(UnsafeArchiveError, match=rf"prefix\.{kind}.*'\.\./out_evil/x\.txt'.*outside"):
        safe_extract(archive, tmp_path / "out")
    assert tree(tmp_path) == {f"prefix.{kind}"}


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
    before = tree(dest)
    with pytest.raises(ValueError) as info:
        safe_extract(archive, dest)
    assert str(info.value) == (
        f"Flickr8k_text.zip would overwrite Flickr8k.token.txt in {dest}, which it did not write; "
        "nothing was extracted: move them, or choose another folder (--out)"
    )
    assert tree(dest) == before
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

    monkeypatch.setattr(extract.shutil, "copyfileobj", interrupted)
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
    assert tree(dest) == {"Flickr8k.token.txt"}
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
    assert tree(dest) == {"mine.txt"}
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
# Tars: the standard library's data filter where it exists, the member checks everywhere
# ---------------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_file_in_the_way_with_the_members_bytes_is_kept_for_both_archive_kinds(tmp_path, kind):
    archive = tmp_path / f"data.{kind}"
    archive.write_bytes(_archive(kind, {"a/x.txt": b"the member's bytes"}))
    dest = tmp_path / "out"
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "x.txt").write_bytes(b"the member's bytes")  # put there by hand, before any extraction

    assert safe_extract(archive, dest) == [dest / "a" / "x.txt"]
    assert (dest / "a" / "x.txt").read_bytes() == b"the member's bytes"
