"""Tests for helpers.transfer.download: a real HTTP server on 127.0.0.1 serves one small file.

Nothing here touches the internet: every URL points at the local server, which counts requests,
records ``Range`` headers, and can drop a connection halfway or ignore ranges on demand.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import socket
import threading

import pytest
from shared import serve

from helpers import transfer
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
    with pytest.raises(DownloadError) as info:
        download("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", md5=None, progress=False)
    refused = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
    assert str(info.value) == f"could not reach http://127.0.0.1:9/x.zip: {refused}"  # not "<urlopen error>"


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


# ---------------------------------------------------------------------------------------------------
# Sizes, ranges, odd answers and stalled servers
# ---------------------------------------------------------------------------------------------------


class _Answer:
    """An HTTP response as ``download`` reads it: ``status``, ``headers``, ``read(n)``; ``body`` is sent in
    chunks of 5 bytes, then ``OSError`` where ``cut`` (a connection reset), else the end."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"", cut: bool = False):
        self.status, self.headers = status, http.client.HTTPMessage()
        for name, value in headers.items():
            self.headers[name] = value
        self._body, self._cut = body, cut

    def read(self, size: int) -> bytes:
        if not self._body and self._cut:
            raise ConnectionResetError("connection reset by peer")
        chunk, self._body = self._body[:5], self._body[5:]
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _answering(monkeypatch, *answers: _Answer) -> list[int]:
    """``transfer._open`` gives ``answers`` in turn; returns the offsets asked for."""
    asked, left = [], list(answers)

    def answer(url, offset):
        asked.append(offset)
        return left.pop(0), None

    monkeypatch.setattr(transfer, "_open", answer)
    return asked


def test_download_checks_the_size_it_is_given(server, tmp_path):
    url, dest = f"{server.base_url}/blob.bin", tmp_path / "blob.bin"
    assert download(url, dest, md5=None, size=len(BLOB), progress=False).read_bytes() == BLOB
    with pytest.raises(ChecksumError) as info:
        download(url, dest, md5=None, size=len(BLOB) + 1, progress=False)
    assert str(info.value) == (
        f"{dest} is already there, but blob.bin has {len(BLOB)} bytes, but {len(BLOB) + 1} were expected; "
        "it is kept (this download did not write it): move or delete it to download afresh"
    )


def test_a_complete_part_file_of_the_wrong_size_is_deleted(server, tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(BLOB)  # complete: the server answers 416
    with pytest.raises(ChecksumError) as info:
        download(f"{server.base_url}/blob.bin", tmp_path / "blob.bin", md5=None, size=10, progress=False)
    assert str(info.value) == (
        f"blob.bin has {len(BLOB)} bytes, but 10 were expected; the file was deleted, run again to download "
        "it afresh"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_body_without_a_length_is_checked_against_the_size_once_complete(tmp_path, monkeypatch):
    _answering(monkeypatch, _Answer(200, {}, b"0123456789"))
    with pytest.raises(
        ChecksumError, match="^blob.bin has 10 bytes, but 11 were expected; the file was deleted"
    ):
        download("http://mirror.test/blob.bin", tmp_path / "blob.bin", md5=None, size=11, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_connection_reset_without_a_length_keeps_what_arrived_and_says_how_much(tmp_path, monkeypatch):
    _answering(monkeypatch, _Answer(200, {}, b"0123456789", cut=True))
    with pytest.raises(DownloadError) as info:
        download("http://mirror.test/blob.bin", tmp_path / "blob.bin", md5=None, progress=False)
    assert str(info.value) == (
        "the connection to http://mirror.test/blob.bin closed after 10 bytes; run again to resume from "
        "blob.bin.part"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin.part"]
    assert (tmp_path / "blob.bin.part").read_bytes() == b"0123456789"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("bytes 100-199/200", (100, 200)),
        ("bytes */200", (None, 200)),
        ("bytes 0-99/*", (0, None)),
        (" bytes 5-9/10 ", (5, 10)),
        ("items 0-1/2", (None, None)),
        (None, (None, None)),
    ],
)
def test_content_range_gives_the_first_byte_and_the_total(value, expected):
    assert transfer._total_from_content_range(value) == expected


def test_a_part_file_longer_than_the_file_is_discarded_and_downloaded_afresh(server, tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(bytes(len(BLOB) + 7))
    messages = []
    dest = download(
        f"{server.base_url}/blob.bin",
        tmp_path / "blob.bin",
        md5=_md5(BLOB),
        progress=False,
        log=messages.append,
    )
    assert dest.read_bytes() == BLOB
    assert server.requests == [("blob.bin", f"bytes={len(BLOB) + 7}-"), ("blob.bin", None)]
    assert messages == [
        f"Discarding blob.bin.part ({len(BLOB) + 7} bytes): the server says the file is shorter."
    ]


def test_a_server_that_twice_sends_another_range_than_asked_fails_in_one_sentence(tmp_path, monkeypatch):
    (tmp_path / "blob.bin.part").write_bytes(b"abc")
    asked = _answering(
        monkeypatch,
        _Answer(206, {"Content-Range": "bytes 0-9/10"}, b"0123456789"),  # asked from byte 3
        _Answer(206, {"Content-Range": "bytes 5-9/10"}, b"56789"),  # asked for the whole file
    )
    messages = []
    with pytest.raises(DownloadError) as info:
        download(
            "http://mirror.test/blob.bin",
            tmp_path / "blob.bin",
            md5=None,
            progress=False,
            log=messages.append,
        )
    assert (
        str(info.value)
        == "could not download http://mirror.test/blob.bin: the server would not resume blob.bin.part"
    )
    assert asked == [3, 0]
    assert messages == [
        "Discarding blob.bin.part (3 bytes): the server sent another range.",
        "Discarding blob.bin.part (0 bytes): the server sent another range.",
    ]
    assert list(tmp_path.iterdir()) == []


def test_an_answer_that_is_neither_200_nor_206_is_a_download_error_naming_its_status(tmp_path, monkeypatch):
    _answering(monkeypatch, _Answer(203, {"Content-Length": "10"}, b"0123456789"))
    with pytest.raises(DownloadError) as info:
        download("http://mirror.test/blob.bin", tmp_path / "blob.bin", md5=None, progress=False)
    assert str(info.value) == "could not download http://mirror.test/blob.bin: the server answered HTTP 203"


@pytest.mark.parametrize(
    "status, headers, offset, expected",
    [
        (206, {"Content-Range": "bytes 5-9/*", "Content-Length": "5"}, 5, (5, 10)),  # total from the length
        (206, {"Content-Range": "bytes 5-9/12", "Content-Length": "5"}, 5, (5, 12)),
        (206, {"Content-Range": "bytes 5-9/*"}, 5, (5, None)),
        (200, {"Content-Length": "10"}, 0, (0, 10)),
        (200, {}, 0, (0, None)),
        (200, {"Content-Length": "ten"}, 0, (0, None)),
    ],
)
def test_span_is_the_first_byte_and_the_total_the_server_announces(
    status, headers, offset, expected, tmp_path
):
    answer = _Answer(status, headers)
    assert transfer._span(answer, "http://mirror.test/x", tmp_path / "x.part", offset, print) == expected


def test_a_server_error_while_resuming_keeps_the_part_file(server, tmp_path):
    (tmp_path / "nope.zip.part").write_bytes(b"abc")
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.base_url}/nope.zip", tmp_path / "nope.zip", md5=None, progress=False)
    assert (tmp_path / "nope.zip.part").read_bytes() == b"abc"
    assert server.requests == [("nope.zip", "bytes=3-")]


def test_a_stalled_server_ends_the_download_after_the_timeout(tmp_path, monkeypatch, without_proxies):
    """A server that accepts the connection and says nothing for 5 s (then hangs up)."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def stall():
        connection, _ = listener.accept()
        done.wait(5)
        connection.close()

    threading.Thread(target=stall, daemon=True).start()
    monkeypatch.setattr(transfer, "TIMEOUT_S", 0.2)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/blob.bin"
    try:
        with pytest.raises(DownloadError) as info:
            download(url, tmp_path / "blob.bin", md5=None, progress=False)
    finally:
        done.set()
        listener.close()
    assert str(info.value) == f"could not reach {url}: timed out"


def _bar(text: str) -> str:
    """The last state of a tqdm bar written to a stream (it redraws with carriage returns)."""
    return text.replace("\n", "\r").strip("\r").split("\r")[-1]


def test_the_progress_bar_counts_the_files_bytes_from_where_it_resumed(server, tmp_path, capsys):
    url, dest = f"{server.base_url}/blob.bin", tmp_path / "blob.bin"
    server.behaviour["blob.bin"] = "drop_half"
    with pytest.raises(DownloadError):
        download(url, dest, md5=None, progress=False)
    assert capsys.readouterr().err == ""
    download(url, dest, md5=_md5(BLOB))  # progress shown by default
    bar = _bar(capsys.readouterr().err)
    assert bar.startswith("blob.bin: 100%") and "| 10.0k/10.0k [" in bar, bar
    assert re.search(r"\d[kMG]?B/s\]$", bar), bar
