"""Unpacking an archive safely: every member checked before a single byte is written.

``safe_extract(archive, dest)`` unpacks a zip or tar archive into ``dest``, refusing any member that
would land outside ``dest`` or that is a link or a special file, and never overwriting a file that an
extraction of the same archive did not write. A marker per archive makes a second call free.

Every failure is an exception whose message is one sentence, so a command line can print it as is.
Only the standard library is used, so this module also runs on a bare Colab kernel.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple


class UnsafeArchiveError(ValueError):
    """An archive holds a member that would be written outside the target folder, or a link."""


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def extraction_marker(archive_name: str, dest: Path) -> Path:
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


class _Entry(NamedTuple):
    """One checked member: where it lands, whether it is a folder, its size in bytes, how to open it."""

    target: Path
    is_dir: bool
    size: int
    open_bytes: Callable[[], BinaryIO]


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Unpack the zip or tar(.gz) file ``archive`` into the folder ``dest``; return the files written.

    Every member is checked before anything is written: a member whose path would land outside
    ``dest`` (``../x``, ``/etc/x``, ``C:\\x``, backslashes), a symbolic or hard link, or a special
    file raises ``UnsafeArchiveError`` naming the archive and the member. ``__MACOSX/`` entries are
    skipped. A tar's members are then written by the standard library's ``filter="data"`` where
    ``tarfile.data_filter`` exists (no set-user-ID or others' write permission; modification times
    kept), else by a plain copy. When done, a marker file ``dest/.extracted-<archive name>`` records
    the archive's size and the files; a later call for the same archive (same size) returns that list
    without unpacking.

    It overwrites only files an extraction of this archive wrote (its marker, or the
    ``.extracting-<archive name>`` list written before the first byte, which lets an interrupted
    extraction be redone). A file already there with the member's exact bytes is kept as it is; any
    other file in the way raises ``ValueError`` naming it, before anything is written.
    """
    archive, dest = Path(archive), Path(dest)
    marker = extraction_marker(archive.name, dest)
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
            entries = [
                _Entry(target, info.is_dir(), info.file_size, lambda info=info: zf.open(info))
                for info, target in _plan_zip(archive, zf, root)
                if not _skipped(info.filename)
            ]
            written = _write_members(archive, entries, root, dest, _copy_members)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            plan = [(m, target) for m, target in _plan_tar(archive, tf, root) if not _skipped(m.name)]
            entries = [
                _Entry(target, member.isdir(), member.size, lambda member=member: tf.extractfile(member))
                for member, target in plan
            ]
            written = _write_members(archive, entries, root, dest, _tar_writer(tf, plan, root))
    else:
        raise ValueError(f"{archive.name} is neither a zip nor a tar archive")

    files = [path.relative_to(root).as_posix() for path in written]
    record = {"archive": archive.name, "size": archive.stat().st_size, "files": files}
    marker.write_text(json.dumps(record), encoding="utf-8")
    (dest / f".extracting-{archive.name}").unlink(missing_ok=True)
    return [dest / name for name in files]


def _copy_members(entries: list[_Entry]) -> None:
    """Make each folder entry, and copy each file entry's bytes to its target."""
    for entry in entries:
        if entry.is_dir:
            entry.target.mkdir(parents=True, exist_ok=True)
        else:
            entry.target.parent.mkdir(parents=True, exist_ok=True)
            with entry.open_bytes() as src, entry.target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _tar_writer(
    tf: tarfile.TarFile, plan: list[tuple[tarfile.TarInfo, Path]], root: Path
) -> Callable[[list[_Entry]], None]:
    """How to write a tar's checked entries: ``extractall(filter="data")`` if the standard library has
    ``tarfile.data_filter``, else ``_copy_members``. Each member is renamed to its checked target, so that
    both write the same paths."""
    if not hasattr(tarfile, "data_filter"):
        return _copy_members
    members = {
        target: m.replace(name=target.relative_to(root).as_posix(), deep=False) for m, target in plan
    }

    def write(entries: list[_Entry]) -> None:
        tf.extractall(root, members=[members[entry.target] for entry in entries], filter="data")

    return write


def _write_members(
    archive: Path, entries: list[_Entry], root: Path, dest: Path, write: Callable[[list[_Entry]], None]
) -> list[Path]:
    """Write checked ``entries`` under ``root`` with ``write``; return the files.

    Refuses first (``ValueError``) if a file in the way was not written by an extraction of ``archive``.
    A file in the way with the entry's exact bytes is kept, not passed to ``write``.
    """
    partial = dest / f".extracting-{archive.name}"
    own = _recorded(extraction_marker(archive.name, dest)) | _recorded(partial)
    files = [entry for entry in entries if not entry.is_dir]
    keep, foreign = set(), []
    for entry in files:
        target = entry.target
        if not (target.exists() or target.is_symlink()) or target.relative_to(root).as_posix() in own:
            continue
        if _same_bytes(target, entry.size, entry.open_bytes):
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
    listed = [entry.target.relative_to(root).as_posix() for entry in files]
    partial.write_text(json.dumps({"files": listed}), encoding="utf-8")
    write([entry for entry in entries if entry.target not in keep])
    return [entry.target for entry in files]
