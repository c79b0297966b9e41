"""Downloading the real datasets for the "scaling up" chapter: resumable, verified, safely extracted.

``fetch_dataset("flickr8k", Path("data/flickr8k"))`` is all a notebook needs. Underneath:

* ``download`` streams one file to ``<name>.part``, resumes an interrupted download with an HTTP
  ``Range`` request, and renames the file only once every byte has arrived and its MD5 matches;
* ``safe_extract`` unpacks a zip or tar archive, refusing any member that would land outside the
  target folder or that is a link, before it writes a single byte.

Every failure is an exception whose message is one sentence, so a command line can print it as is.
Only the standard library and tqdm are used, so this module also runs on a bare Colab kernel.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm.auto import tqdm

TIMEOUT_S = 60
"""Seconds to wait for the server before a download gives up (a stalled connection ends a download)."""


class DownloadError(OSError):
    """A download failed: the server could not be reached, answered an error, or closed the connection."""


class ChecksumError(ValueError):
    """A downloaded file does not match its expected MD5 digest (or size)."""


class UnsafeArchiveError(ValueError):
    """An archive holds a member that would be written outside the target folder, or a link."""


@dataclass(frozen=True)
class Archive:
    """One downloadable file of a dataset.

    ``name`` is the file name (also the name on any mirror), ``url_path`` the official URL, ``md5``
    the expected MD5 hex digest (``None``: not checked by digest), ``size`` the expected size in
    bytes (``None``: not checked by size), and ``extract_to`` the folder, relative to the dataset
    folder, that the archive is unpacked into (``"."``: the dataset folder itself).
    """

    name: str
    url_path: str
    md5: str | None
    size: int | None
    extract_to: str


_FLICKR8K_BASE = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
_COCO_ANNOTATIONS_BASE = "http://images.cocodataset.org/annotations/"
_COCO_ZIPS_BASE = "http://images.cocodataset.org/zips/"
_KARPATHY_BASE = "http://cs.stanford.edu/people/karpathy/deepimagesent/"

# Small archives come first, so that a failure on a big one still leaves the captions usable.
# Flickr8k: MD5s as recorded by mlverse/torchvision (R/dataset-flickr.R) for these exact mirror URLs;
# no public source we trust records their sizes, so the MD5 is the only check.
# COCO 2017: MD5s as recorded by PaddlePaddle/PaddleDetection (ppdet/utils/download.py) and
# mlverse/torchvision (R/dataset-coco.R); sizes as recorded by tensorflow/datasets
# (tensorflow_datasets/url_checksums/coco.txt).
# COCO 2014 (for Karpathy's split, whose dataset_coco.json names 2014 images): MD5s as recorded by
# salesforce/LAVIS (lavis/datasets/download_scripts/download_coco.py) and wkentaro/fcn; sizes by
# tensorflow/datasets (same file). Karpathy's caption_datasets.zip: no public source we found records its
# MD5 or size, so it is not checked (the download still must arrive whole).
DATASETS: dict[str, list[Archive]] = {
    "flickr8k": [
        Archive(
            name="Flickr8k_text.zip",
            url_path=_FLICKR8K_BASE + "Flickr8k_text.zip",
            md5="bf6c1abcb8e4a833b7f922104de18627",
            size=None,
            # The text files sit at the top of this zip; a folder of their own keeps dest tidy. The name is
            # caption_files.FLICKR8K_TEXT_DIR, written out because this module imports no pandas (a test
            # checks that the two agree).
            extract_to="Flickr8k_text",
        ),
        Archive(
            name="Flickr8k_Dataset.zip",
            url_path=_FLICKR8K_BASE + "Flickr8k_Dataset.zip",
            md5="f18a1e2920de5bd84dae7cf08ec78978",
            size=None,
            extract_to=".",  # the zip holds Flicker8k_Dataset/ (FLICKR8K_IMAGE_DIR)
        ),
    ],
    "coco2017": [
        Archive(
            name="annotations_trainval2017.zip",
            url_path=_COCO_ANNOTATIONS_BASE + "annotations_trainval2017.zip",
            md5="f4bbac642086de4f52a3fdda2de5fa2c",
            size=252_907_541,
            extract_to=".",  # the zip holds annotations/
        ),
        Archive(
            name="val2017.zip",
            url_path=_COCO_ZIPS_BASE + "val2017.zip",
            md5="442b8da7639aecaf257c1dceb8ba8c80",
            size=815_585_330,
            extract_to=".",  # the zip holds val2017/
        ),
        Archive(
            name="train2017.zip",
            url_path=_COCO_ZIPS_BASE + "train2017.zip",
            md5="cced6f7f71b7629ddf16f17bbcfab6b2",
            size=19_336_861_798,
            extract_to=".",  # the zip holds train2017/
        ),
    ],
    "coco2014": [
        Archive(
            name="caption_datasets.zip",
            url_path=_KARPATHY_BASE + "caption_datasets.zip",
            md5=None,
            size=None,
            # dataset_coco.json (and Karpathy's Flickr8k/30k files) at the top; pass its path to train
            extract_to=".",
        ),
        Archive(
            name="val2014.zip",
            url_path=_COCO_ZIPS_BASE + "val2014.zip",
            md5="a3d79f5ed8d289b7a7554ce06a5782b3",
            size=6_645_013_297,
            extract_to=".",  # the zip holds val2014/: Karpathy's val and test images, and restval
        ),
        Archive(
            name="train2014.zip",
            url_path=_COCO_ZIPS_BASE + "train2014.zip",
            md5="0da8c0bd3d6becc4dcb32757491aca88",
            size=13_510_573_713,
            extract_to=".",  # the zip holds train2014/
        ),
    ],
}


def coco_selection(
    annotations_only: bool = False, val_only: bool = False, dataset: str = "coco2017"
) -> set[str]:
    """Names of the COCO archives to fetch, for ``fetch_dataset(dataset, ..., only=...)``.

    ``dataset="coco2017"``: ``annotations_only`` → the captions and other annotations (about 240 MiB);
    ``val_only`` → those plus the 5,000 validation images (about 780 MiB more); neither → everything,
    including the 18 GiB of training images. ``dataset="coco2014"`` (for Karpathy's split):
    ``annotations_only`` → Karpathy's caption files; ``val_only`` → those plus val2014 (6.2 GiB: all of
    Karpathy's dev and test images); neither → train2014 too (12.6 GiB more). ``annotations_only`` wins
    when both are set.
    """
    names = [archive.name for archive in DATASETS[dataset]]  # captions, val images, train images
    if annotations_only:
        return set(names[:1])
    if val_only:
        return set(names[:2])
    return set(names)


# ---------------------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------------------


def _md5_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """MD5 hex digest of the file at ``path``, read in chunks so that big files fit in memory."""
    digest = hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, name: str, md5: str | None, size: int | None, actual_md5: str | None = None) -> None:
    """Raise ``ChecksumError`` when ``path`` has the wrong size or MD5; ``None`` skips a check."""
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(f"{name} has {path.stat().st_size} bytes, but {size} were expected")
    if md5 is not None:
        actual = actual_md5 if actual_md5 is not None else _md5_of(path)
        if actual != md5.lower():
            raise ChecksumError(f"{name} has MD5 {actual}, but {md5.lower()} was expected")


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

    ``md5`` (hex digest) and ``size`` (bytes), when not ``None``, are checked: a downloaded file that
    fails the check is deleted and ``ChecksumError`` is raised. If ``dest`` already exists and passes
    the checks, nothing is requested at all; if it fails them, this function did not write it (it renames
    only checked files into place), so it is kept and ``ChecksumError`` says so. A ``.part`` file the
    server will not resume is discarded with a ``log`` line.

    A connection that drops halfway raises ``DownloadError`` (naming the URL and the bytes that
    arrived) and keeps the ``.part`` file, so that calling ``download`` again resumes. ``progress``
    shows a tqdm bar with sizes in bytes.
    """
    dest = Path(dest)
    if dest.exists():
        try:
            _check(dest, dest.name, md5, size)
            return dest  # already downloaded
        except ChecksumError as err:
            raise ChecksumError(
                f"{dest} is already there, but {err}; it is kept (this download did not write it): "
                "move or delete it to download afresh"
            ) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")

    for _attempt in range(2):  # a second attempt only after discarding a .part the server won't resume
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:
                # Range past the end: the .part may already hold the whole file, else it is stale.
                _, total = _total_from_content_range(err.headers.get("Content-Range"))
                if total == offset:
                    return _finish(part, dest, md5, size, digest=None)
                log(f"Discarding {part.name} ({offset} bytes): the server says the file is shorter.")
                part.unlink()
                continue
            raise DownloadError(f"could not download {url}: the server answered HTTP {err.code}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise DownloadError(f"could not reach {url}: {reason}") from None

        with response:
            length = response.headers.get("Content-Length")
            length = int(length) if length is not None and length.isdigit() else None
            if response.status == 206:
                start, total = _total_from_content_range(response.headers.get("Content-Range"))
                if start != offset:
                    # the server sent some other range; start clean rather than guess
                    log(f"Discarding {part.name} ({offset} bytes): the server sent another range.")
                    part.unlink()
                    continue
                if total is None and length is not None:
                    total = offset + length
            elif response.status == 200:
                if offset:
                    log(f"Discarding {part.name} ({offset} bytes): the server cannot resume; starting over.")
                offset, total = 0, length  # the server ignored the Range header: start over
            else:
                raise DownloadError(f"could not download {url}: the server answered HTTP {response.status}")
            if size is not None and total is not None and total != size:
                # Fail before fetching gigabytes of the wrong file (a mirror with a different version).
                raise ChecksumError(f"{dest.name} has {total} bytes on the server, but {size} were expected")

            digest = hashlib.md5() if md5 is not None else None
            if digest is not None and offset:
                with part.open("rb") as f:
                    while chunk := f.read(chunk_size):
                        digest.update(chunk)
            received, broken = offset, False
            with (
                part.open("ab" if offset else "wb") as f,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
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
                    if digest is not None:
                        digest.update(chunk)
                    bar.update(len(chunk))
            if broken or (total is not None and received != total):
                of_total = f" of {total}" if total is not None else ""
                raise DownloadError(
                    f"the connection to {url} closed after {received}{of_total} bytes; "
                    f"run again to resume from {part.name}"
                )
            return _finish(part, dest, md5, size, digest=digest.hexdigest() if digest is not None else None)
    raise DownloadError(f"could not download {url}: the server would not resume {part.name}")


def _finish(part: Path, dest: Path, md5: str | None, size: int | None, digest: str | None) -> Path:
    """Check a complete ``part`` file, then rename it to ``dest``; a bad file is deleted."""
    try:
        _check(part, dest.name, md5, size, actual_md5=digest)
    except ChecksumError as err:
        part.unlink()
        raise ChecksumError(f"{err}; the file was deleted, run again to download it afresh") from None
    part.replace(dest)
    return dest


# ---------------------------------------------------------------------------------------------------
# Extracting
# ---------------------------------------------------------------------------------------------------

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def _marker(archive_name: str, dest: Path) -> Path:
    """The file whose presence says that ``archive_name`` was extracted into ``dest`` completely."""
    return dest / f".extracted-{archive_name}"


def _target(archive: Path, name: str, dest: Path) -> Path:
    """Where member ``name`` lands under the resolved folder ``dest``; raise if anywhere else."""
    if "\\" in name or "\x00" in name or name.startswith("/") or _WINDOWS_DRIVE.match(name):
        # Backslashes and drive letters are path separators/roots on Windows, whatever Linux thinks.
        raise UnsafeArchiveError(
            f"{archive.name} holds member {name!r}, which has an absolute or Windows path"
        )
    target = (dest / name).resolve()
    if not target.is_relative_to(dest):
        raise UnsafeArchiveError(f"{archive.name} holds member {name!r}, which points outside {dest}")
    return target


def _skipped(name: str) -> bool:
    """macOS resource forks (``__MACOSX/``) ride along in zips made on a Mac; they are never wanted."""
    return PurePosixPath(name).parts[:1] == ("__MACOSX",)


def _plan_zip(archive: Path, zf: zipfile.ZipFile, dest: Path) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Check every member of a zip and return (member, target) pairs; raise before anything is written."""
    plan = []
    for info in zf.infolist():
        target = _target(archive, info.filename, dest)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchiveError(
                f"{archive.name} holds member {info.filename!r}, which is a symbolic link"
            )
        plan.append((info, target))
    return plan


def _plan_tar(archive: Path, tf: tarfile.TarFile, dest: Path) -> list[tuple[tarfile.TarInfo, Path]]:
    """Check every member of a tar and return (member, target) pairs; raise before anything is written."""
    plan = []
    for member in tf.getmembers():
        target = _target(archive, member.name, dest)
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(f"{archive.name} holds member {member.name!r}, which is a link")
        if not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"{archive.name} holds member {member.name!r}, which is a special file")
        plan.append((member, target))
    return plan


def _recorded(marker: Path) -> set[str]:
    """The files (relative to the folder) a marker says an extraction wrote; empty if none or unreadable."""
    try:
        return {str(name) for name in json.loads(marker.read_text(encoding="utf-8"))["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _same_bytes(path: Path, size: int, open_member: Callable[[], BinaryIO]) -> bool:
    """Whether the file at ``path`` already holds exactly the member's ``size`` bytes."""
    if not path.is_file() or path.stat().st_size != size:
        return False
    with open_member() as src, path.open("rb") as existing:
        while chunk := src.read(1 << 20):
            if existing.read(len(chunk)) != chunk:
                return False
    return True


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Unpack the zip or tar(.gz) file ``archive`` into the folder ``dest``; return the files written.

    Every member is checked before anything is written: a member whose path would land outside
    ``dest`` (``../x``, ``/etc/x``, ``C:\\x``, backslashes), a symbolic or hard link, or a special
    file raises ``UnsafeArchiveError`` naming the archive and the member. ``__MACOSX/`` entries are
    skipped. When done, a marker file ``dest/.extracted-<archive name>`` records the archive's size
    and the files; a later call for the same archive (same size) returns that list without unpacking.

    It overwrites only files an extraction of this archive wrote (its marker, or the
    ``.extracting-<archive name>`` list written before the first byte, which lets an interrupted
    extraction be redone). A file already there with the member's exact bytes is kept as it is; any
    other file in the way raises ``ValueError`` naming it, before anything is written.
    """
    archive, dest = Path(archive), Path(dest)
    marker = _marker(archive.name, dest)
    if marker.exists():
        try:
            record = json.loads(marker.read_text(encoding="utf-8"))
            if record["size"] == archive.stat().st_size:
                return [dest / name for name in record["files"]]
        except (ValueError, KeyError, TypeError, OSError):
            pass  # an unreadable marker means: extract again

    root = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            plan = _plan_zip(archive, zf, root)
            entries = [
                (target, info.is_dir(), info.file_size, lambda info=info: zf.open(info))
                for info, target in plan
                if not _skipped(info.filename)
            ]
            written = _write_members(archive, entries, root, dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            plan = _plan_tar(archive, tf, root)
            entries = [
                (target, member.isdir(), member.size, lambda member=member: tf.extractfile(member))
                for member, target in plan
                if not _skipped(member.name)
            ]
            written = _write_members(archive, entries, root, dest)
    else:
        raise ValueError(f"{archive.name} is neither a zip nor a tar archive")

    files = [path.relative_to(root).as_posix() for path in written]
    marker.write_text(
        json.dumps({"archive": archive.name, "size": archive.stat().st_size, "files": files}),
        encoding="utf-8",
    )
    (dest / f".extracting-{archive.name}").unlink(missing_ok=True)
    return [dest / name for name in files]


def _write_members(
    archive: Path, entries: list[tuple[Path, bool, int, Callable[[], BinaryIO]]], root: Path, dest: Path
) -> list[Path]:
    """Write checked members ``(target, is_dir, size, open)`` under ``root``; return the files.

    Refuses first (``ValueError``) if a file in the way was not written by an extraction of ``archive``.
    """
    partial = dest / f".extracting-{archive.name}"
    own = _recorded(_marker(archive.name, dest)) | _recorded(partial)
    files = [(target, size, open_member) for target, is_dir, size, open_member in entries if not is_dir]
    keep, foreign = set(), []
    for target, size, open_member in files:
        if not (target.exists() or target.is_symlink()) or target.relative_to(root).as_posix() in own:
            continue
        if _same_bytes(target, size, open_member):
            keep.add(target)
        else:
            foreign.append(target.relative_to(root).as_posix())
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ValueError(
            f"{archive.name} would overwrite {shown} in {dest}, which it did not write; nothing was "
            "extracted: move them, or choose another folder (--out)"
        )
    root.mkdir(parents=True, exist_ok=True)
    partial.write_text(
        json.dumps({"files": [t.relative_to(root).as_posix() for t, _, _ in files]}), encoding="utf-8"
    )
    for target, is_dir, _, open_member in entries:
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
        elif target not in keep:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open_member() as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    return [target for target, _, _ in files]


# ---------------------------------------------------------------------------------------------------
# Whole datasets
# ---------------------------------------------------------------------------------------------------


def fetch_dataset(
    name: str,
    dest: Path,
    *,
    base_url: str | None = None,
    checksum: bool = True,
    only: set[str] | None = None,
    progress: bool = True,
) -> Path:
    """Download, verify and unpack dataset ``name`` (a key of ``DATASETS``) into ``dest``; return ``dest``.

    Archives are kept in ``dest/downloads/`` and unpacked into ``dest`` (see ``Archive.extract_to``).
    ``only`` restricts the work to the archives with these file names (for COCO, see
    ``coco_selection``). ``base_url`` replaces the official location of every file by a mirror that
    holds the same file names (``base_url + "/" + file name``). ``checksum=False`` skips the MD5 and
    size checks, for a mirror whose files differ from the official ones.

    An archive already unpacked completely (its marker is in place) is skipped without any request,
    so calling this again is cheap; an interrupted download resumes where it stopped.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    archives = DATASETS[name]
    if only is not None:
        unknown = set(only) - {archive.name for archive in archives}
        if unknown:
            known = ", ".join(archive.name for archive in archives)
            raise ValueError(f"{name} has no archive named {', '.join(sorted(unknown))}; it has {known}")
        archives = [archive for archive in archives if archive.name in only]

    dest = Path(dest)
    for archive in archives:
        target = dest / archive.extract_to
        if _marker(archive.name, target).exists():
            continue  # already unpacked completely
        url = f"{base_url.rstrip('/')}/{archive.name}" if base_url else archive.url_path
        path = download(
            url,
            dest / "downloads" / archive.name,
            md5=archive.md5 if checksum else None,
            size=archive.size if checksum else None,
            progress=progress,
        )
        safe_extract(path, target)
    return dest
