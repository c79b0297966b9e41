"""``python -m helpers data download`` end to end: the command runs in a subprocess and fetches tiny
archives, in the real Flickr8k and COCO layouts, from a real HTTP server on 127.0.0.1 (port 0, in a
thread of the test process). Nothing here touches the internet.

The server (ranges, dropped connections) and the zip builder come from ``tests/shared.py``, so this
file and ``tests/test_download.py`` test against the same server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shared import JPEG, serve, zip_bytes

IMAGES = {
    "1000268201_693b08cb0e.jpg": "train",
    "1001773457_577c3a7d70.jpg": "train",
    "1002674143_1b742ab4b8.jpg": "dev",
    "1003163366_44323f5815.jpg": "test",
}
TOKEN_TXT = "".join(
    f"{name}#{k}\tcaption {k} of {name.split('_')[0]} .\n" for name in IMAGES for k in range(5)
).encode()


def _split_file(split: str) -> bytes:
    return "".join(f"{name}\n" for name, s in IMAGES.items() if s == split).encode()


FLICKR_TEXT_ZIP = zip_bytes(
    {
        "Flickr8k.token.txt": TOKEN_TXT,
        "Flickr_8k.trainImages.txt": _split_file("train"),
        "Flickr_8k.devImages.txt": _split_file("dev"),
        "Flickr_8k.testImages.txt": _split_file("test"),
        "readme.txt": b"Flickr8k text files (test fixture)\n",
    }
)
# Big enough that half of it is more than one TCP packet; the bytes need not decode for `data stats`.
FLICKR_IMAGES_ZIP = zip_bytes({f"Flicker8k_Dataset/{name}": JPEG * 8 for name in IMAGES})
COCO_ANNOTATIONS_ZIP = zip_bytes(
    {
        "annotations/captions_val2017.json": json.dumps(
            {
                "images": [{"id": 139, "file_name": "000000000139.jpg", "height": 426, "width": 640}],
                "annotations": [{"id": 1, "image_id": 139, "caption": "A woman stands in a kitchen."}],
            }
        ).encode()
    }
)
EVIL_TEXT_ZIP = zip_bytes({"Flickr8k.token.txt": TOKEN_TXT, "../evil.txt": b"written outside dest"})


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1 (port 0): ``.base_url``, ``.files``, ``.requests``, ``.behaviour``
    (what ``tests/shared.py``'s handler reads)."""
    files = {
        "Flickr8k_text.zip": FLICKR_TEXT_ZIP,
        "Flickr8k_Dataset.zip": FLICKR_IMAGES_ZIP,
        "annotations_trainval2017.zip": COCO_ANNOTATIONS_ZIP,
    }
    with serve(files) as httpd:
        yield httpd


def helpers_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m helpers ARGS`` in a fresh process, without proxies and progress bars."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(CAPTION_PROGRESS="0", no_proxy="*")
    return subprocess.run(
        [sys.executable, "-m", "helpers", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
    )


def _one_clear_line(done: subprocess.CompletedProcess) -> str:
    """The single ``error: ...`` line a failed command must print, with no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_download_from_a_mirror_without_checksums_then_stats_reads_it(server, tmp_path):
    dest = tmp_path / "flickr8k"
    done = helpers_cli(
        "data", "download", "flickr8k", "--out", str(dest), "--base-url", server.base_url, "--no-checksum",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"flickr8k is in {dest}; check it with: python -m helpers data stats --data {dest}"
    )
    assert [name for name, _ in server.requests] == ["Flickr8k_text.zip", "Flickr8k_Dataset.zip"]
    assert (dest / "Flickr8k_text" / "Flickr8k.token.txt").read_bytes() == TOKEN_TXT
    assert sorted(p.name for p in (dest / "Flicker8k_Dataset").iterdir()) == sorted(IMAGES)

    stats = helpers_cli("data", "stats", "--data", str(dest), "--json", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    summary = json.loads(stats.stdout)
    assert summary["format"] == "flickr8k"
    assert (summary["images"], summary["captions"]) == (4, 20)
    assert summary["splits"] == {"train": 2, "dev": 1, "test": 1}
    assert summary["skipped"] == []


def test_a_second_download_makes_no_request(server, tmp_path):
    args = ("data", "download", "flickr8k", "--out", "ds", "--base-url", server.base_url, "--no-checksum")
    assert helpers_cli(*args, cwd=tmp_path).returncode == 0
    assert len(server.requests) == 2
    again = helpers_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == 2


def test_official_checksums_refuse_mirror_files_in_one_line(server, tmp_path):
    done = helpers_cli(
        "data", "download", "flickr8k", "--out", "ds", "--base-url", server.base_url, cwd=tmp_path
    )
    assert done.returncode == 2
    line = _one_clear_line(done)
    assert "Flickr8k_text.zip has MD5" in line and "bf6c1abcb8e4a833b7f922104de18627" in line
    assert not (tmp_path / "ds" / "downloads" / "Flickr8k_text.zip").exists()


def test_a_dropped_connection_fails_in_one_line_and_the_next_run_resumes(server, tmp_path):
    dest = tmp_path / "flickr8k"
    args = ("data", "download", "flickr8k", "--out", str(dest), "--base-url", server.base_url,
            "--no-checksum", "--keep-archives")
    server.behaviour["Flickr8k_Dataset.zip"] = "drop_half"  # the first request only

    first = helpers_cli(*args, cwd=tmp_path)
    assert first.returncode != 0
    line = _one_clear_line(first)
    assert "Flickr8k_Dataset.zip" in line and "resume" in line
    part = dest / "downloads" / "Flickr8k_Dataset.zip.part"
    half = len(FLICKR_IMAGES_ZIP) // 2
    assert part.stat().st_size == half
    assert not (dest / "Flicker8k_Dataset").exists()

    second = helpers_cli(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert server.requests == [
        ("Flickr8k_text.zip", None),
        ("Flickr8k_Dataset.zip", None),
        ("Flickr8k_Dataset.zip", f"bytes={half}-"),  # only the missing half; the text zip is not fetched
    ]
    assert (dest / "downloads" / "Flickr8k_Dataset.zip").read_bytes() == FLICKR_IMAGES_ZIP
    assert not part.exists()
    stats = helpers_cli("data", "stats", "--data", str(dest), "--json", cwd=tmp_path)
    assert json.loads(stats.stdout)["images"] == 4


def test_an_archive_member_climbing_out_of_dest_is_refused(server, tmp_path):
    server.files["Flickr8k_text.zip"] = EVIL_TEXT_ZIP
    dest = tmp_path / "flickr8k"
    before = _tree(tmp_path)

    done = helpers_cli(
        "data", "download", "flickr8k", "--out", str(dest), "--base-url", server.base_url, "--no-checksum",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    line = _one_clear_line(done)
    assert "Flickr8k_text.zip" in line and "'../evil.txt'" in line
    assert not (dest / "evil.txt").exists() and not (dest.parent / "evil.txt").exists()
    assert not (dest / "Flickr8k_text").exists()  # nothing of the archive was unpacked
    outside = {path for path in _tree(tmp_path) - before if not path.startswith("flickr8k")}
    assert outside == set()
    assert [name for name, _ in server.requests] == ["Flickr8k_text.zip"]  # it stopped there


def test_annotations_only_with_flickr8k_is_a_clear_error(server, tmp_path):
    done = helpers_cli(
        "data", "download", "flickr8k", "--out", "ds", "--base-url", server.base_url, "--annotations-only",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert _one_clear_line(done) == (
        "error: --annotations-only and --val-only apply to coco2017 and coco2014 only"
    )
    assert server.requests == []
    assert not (tmp_path / "ds").exists()


def test_coco_annotations_only_fetches_the_captions_and_nothing_else(server, tmp_path):
    done = helpers_cli(
        "data", "download", "coco2017", "--out", "coco", "--base-url", server.base_url, "--no-checksum",
        "--annotations-only", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert server.requests == [("annotations_trainval2017.zip", None)]
    assert (tmp_path / "coco" / "annotations" / "captions_val2017.json").is_file()
    assert not (tmp_path / "coco" / "val2017").exists()


def test_download_help_names_keep_archives_and_the_disk_space_it_saves(tmp_path):
    done = helpers_cli("data", "download", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "--keep-archives" in text
    assert "coco2017 19.0 GiB, coco2014 18.8 GiB" in text


def test_archives_are_deleted_once_unpacked_unless_keep_archives(server, tmp_path):
    args = ("data", "download", "flickr8k", "--base-url", server.base_url, "--no-checksum")
    assert helpers_cli(*args, "--out", "deleted", cwd=tmp_path).returncode == 0
    kept = helpers_cli(*args, "--out", "kept", "--keep-archives", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr

    assert _tree(tmp_path / "deleted" / "downloads") == set()
    assert (tmp_path / "kept" / "downloads" / "Flickr8k_Dataset.zip").read_bytes() == FLICKR_IMAGES_ZIP
    for folder in ("deleted", "kept"):
        assert sorted(p.name for p in (tmp_path / folder / "Flicker8k_Dataset").iterdir()) == sorted(IMAGES)
