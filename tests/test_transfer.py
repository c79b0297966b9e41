"""Tests for helpers.transfer.download: a real HTTP server on 127.0.0.1 serves one small file.

Nothing here touches the internet: every URL points at the local server, which counts requests,
records ``Range`` headers, and can drop a connection halfway or ignore ranges on demand.
"""

from __future__ import annotations

import hashlib

import pytest
from shared import serve

from helpers.transfer import ChecksumError, DownloadError, download

BLOB = bytes(range(256)) * 40  # 10,240 bytes


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(without_proxies):
    """A threaded HTTP server on 127.0.0.1 (port 0) serving ``blob.bin``; ``.base_url``, ``.requests``."""
    with serve({"blob.bin": BLOB}) as httpd:
        yield httpd


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
