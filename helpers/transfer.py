"""Downloading one file: resumable, verified, and renamed into place only when it is whole.

``download(url, dest, md5=...)`` streams ``url`` to ``dest`` + ``".part"``, resumes an interrupted
download with an HTTP ``Range`` request, and renames the file to ``dest`` only once every byte has
arrived and its digests (MD5, SHA-256) and size match.

Every failure is an exception whose message is one sentence, so a command line can print it as is.
Only the standard library and tqdm are used, so this module also runs on a bare Colab kernel.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

TIMEOUT_S = 60
"""Seconds to wait for the server before a download gives up (a stalled connection ends a download)."""


class DownloadError(OSError):
    """A download failed: the server could not be reached, answered an error, or closed the connection."""


class ChecksumError(ValueError):
    """A downloaded file does not match its expected MD5 or SHA-256 digest (or size)."""


_DIGEST_NAMES = {"md5": "MD5", "sha256": "SHA-256"}


def _expected_digests(md5: str | None, sha256: str | None) -> dict[str, str]:
    """``{"md5": hex, "sha256": hex}`` for the digests given (lower case); ``None`` leaves one out."""
    given = {"md5": md5, "sha256": sha256}
    return {algorithm: hexdigest.lower() for algorithm, hexdigest in given.items() if hexdigest is not None}


def _hashes(algorithms: list[str], path: Path | None = None, chunk_size: int = 1 << 20) -> dict:
    """``{algorithm: hashlib object}``, fed the bytes of the file at ``path`` (read in chunks) if given."""
    hashes = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
    if path is not None and hashes:
        with path.open("rb") as f:
            while chunk := f.read(chunk_size):
                for digest in hashes.values():
                    digest.update(chunk)
    return hashes


def _check(
    path: Path, name: str, digests: dict[str, str], size: int | None, actual: dict[str, str] | None = None
) -> None:
    """Raise ``ChecksumError`` when ``path`` has the wrong size or digest; ``size=None`` skips the size.

    ``digests`` maps ``"md5"``/``"sha256"`` to the expected hex digest; ``actual``, when given, holds the
    digests already computed while the file was written.
    """
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(f"{name} has {path.stat().st_size} bytes, but {size} were expected")
    if actual is None:
        actual = {algorithm: digest.hexdigest() for algorithm, digest in _hashes(list(digests), path).items()}
    for algorithm, expected in digests.items():
        if actual[algorithm] != expected:
            raise ChecksumError(
                f"{name} has {_DIGEST_NAMES[algorithm]} {actual[algorithm]}, but {expected} was expected"
            )


def _total_from_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes 100-199/200"`` → ``(100, 200)``; ``"bytes */200"`` → ``(None, 200)``; unknown parts → None."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def download(
    url: str,
    dest: Path,
    *,
    md5: str | None,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    log: Callable[[str], None] = print,
) -> Path:
    """Download ``url`` to the file ``dest`` and return ``dest``.

    Bytes go to ``dest`` + ``".part"`` first. If such a ``.part`` file is already there (an earlier
    download was cut off), the download resumes with a ``Range: bytes=N-`` request; a server that
    ignores ranges and sends the whole file again is handled by starting over from zero. ``.part`` is
    renamed to ``dest`` only when every byte announced by the server has arrived.

    ``md5`` and ``sha256`` (hex digests) and ``size`` (bytes), when not ``None``, are checked: a
    downloaded file that fails the check is deleted and ``ChecksumError`` is raised. If ``dest`` already
    exists and passes the checks, nothing is requested at all; if it fails them, this function did not
    write it (it renames only checked files into place), so it is kept and ``ChecksumError`` says so. A
    ``.part`` file the server will not resume is discarded with a ``log`` line.

    A connection that drops halfway raises ``DownloadError`` (naming the URL and the bytes that
    arrived) and keeps the ``.part`` file, so that calling ``download`` again resumes. ``progress``
    shows a tqdm bar with sizes in bytes.
    """
    dest = Path(dest)
    digests = _expected_digests(md5, sha256)
    if dest.exists():
        _check_existing(dest, digests, size)
        return dest  # already downloaded
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")

    for _attempt in range(2):  # a second attempt only after discarding a .part the server won't resume
        offset = part.stat().st_size if part.exists() else 0
        response, total = _open(url, offset)
        if response is None:  # a range past the end: the .part may hold the whole file, else it is stale
            if total == offset:
                return _finish(part, dest, digests, size, actual=None)
            log(f"Discarding {part.name} ({offset} bytes): the server says the file is shorter.")
            part.unlink()
            continue
        with response:
            span = _span(response, url, part, offset, log)
            if span is None:
                part.unlink(missing_ok=True)  # asked from byte 0, there may be no .part yet
                continue
            offset, total = span
            if size is not None and total is not None and total != size:
                # Fail before fetching gigabytes of the wrong file (a mirror with a different version).
                raise ChecksumError(f"{dest.name} has {total} bytes on the server, but {size} were expected")
            hashes = _hashes(list(digests), part if offset else None, chunk_size)
            _receive(response, part, offset, total, hashes, url=url, progress=progress, chunk_size=chunk_size)
            actual = {algorithm: digest.hexdigest() for algorithm, digest in hashes.items()}
            return _finish(part, dest, digests, size, actual=actual)
    raise DownloadError(f"could not download {url}: the server would not resume {part.name}")


def _check_existing(dest: Path, digests: dict[str, str], size: int | None) -> None:
    """Check a ``dest`` already there; a mismatch raises ``ChecksumError`` saying that it is kept."""
    try:
        _check(dest, dest.name, digests, size)
    except ChecksumError as err:
        raise ChecksumError(
            f"{dest} is already there, but {err}; it is kept (this download did not write it): "
            "move or delete it to download afresh"
        ) from None


def _open(url: str, offset: int) -> tuple[http.client.HTTPResponse | None, int | None]:
    """Request ``url`` from byte ``offset`` on: ``(response, None)``.

    A server that answers a range request with HTTP 416 (the range starts past the end) gives
    ``(None, total)``, ``total`` being the file's size it names (``None``: not named). Any other HTTP
    error, or no answer, raises ``DownloadError``.
    """
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S), None
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return None, _total_from_content_range(err.headers.get("Content-Range"))[1]
        raise DownloadError(f"could not download {url}: the server answered HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"could not reach {url}: {reason}") from None


def _span(
    response: http.client.HTTPResponse, url: str, part: Path, offset: int, log: Callable[[str], None]
) -> tuple[int, int | None] | None:
    """``(first byte, total size or None)`` of what the server sends, asked from ``offset`` on.

    ``None`` (after a ``log`` line) when the server sent another range than asked for: the ``.part``
    file must go. A server that ignores the range and sends the whole file gives ``(0, size)``.
    """
    length = response.headers.get("Content-Length")
    length = int(length) if length is not None and length.isdigit() else None
    if response.status == 206:
        start, total = _total_from_content_range(response.headers.get("Content-Range"))
        if start != offset:
            # the server sent some other range; start clean rather than guess
            log(f"Discarding {part.name} ({offset} bytes): the server sent another range.")
            return None
        if total is None and length is not None:
            total = offset + length
        return offset, total
    if response.status == 200:
        if offset:
            log(f"Discarding {part.name} ({offset} bytes): the server cannot resume; starting over.")
        return 0, length  # the server ignored the Range header: start over
    raise DownloadError(f"could not download {url}: the server answered HTTP {response.status}")


def _receive(
    response: http.client.HTTPResponse,
    part: Path,
    offset: int,
    total: int | None,
    hashes: dict,
    *,
    url: str,
    progress: bool,
    chunk_size: int,
) -> None:
    """Append the response's bytes to ``part`` (from ``offset`` on; overwrite it if 0) and feed ``hashes``.

    Raises ``DownloadError`` when the connection breaks or fewer than ``total`` bytes arrive; ``part``
    keeps what arrived.
    """
    received, broken = offset, False
    with (
        part.open("ab" if offset else "wb") as f,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=not progress,
        ) as bar,
    ):
        while True:
            try:
                chunk = response.read(chunk_size)
            except (OSError, http.client.HTTPException):
                broken = True  # reset, timeout, or a chunked body cut short
                break
            if not chunk:
                break
            f.write(chunk)
            received += len(chunk)
            for digest in hashes.values():
                digest.update(chunk)
            bar.update(len(chunk))
    if broken or (total is not None and received != total):
        of_total = f" of {total}" if total is not None else ""
        raise DownloadError(
            f"the connection to {url} closed after {received}{of_total} bytes; "
            f"run again to resume from {part.name}"
        )


def _finish(
    part: Path, dest: Path, digests: dict[str, str], size: int | None, actual: dict[str, str] | None
) -> Path:
    """Check a complete ``part`` file, then rename it to ``dest``; a bad file is deleted."""
    try:
        _check(part, dest.name, digests, size, actual=actual)
    except ChecksumError as err:
        part.unlink()
        raise ChecksumError(f"{err}; the file was deleted, run again to download it afresh") from None
    part.replace(dest)
    return dest
