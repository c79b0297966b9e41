"""The real datasets for the "scaling up" chapter: which files, from where, and fetching them.

``fetch_dataset("flickr8k", Path("data/flickr8k"))`` is all a notebook needs: it downloads each archive
of ``DATASETS`` with ``helpers.transfer.download`` (resumable, verified), unpacks it with
``helpers.extract.safe_extract`` (every member checked first), and then deletes the archives it
downloaded, unless asked to keep them.

Only the standard library and tqdm are used, so this module also runs on a bare Colab kernel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from helpers.extract import extraction_marker, safe_extract
from helpers.transfer import download


@dataclass(frozen=True)
class Archive:
    """One downloadable file of a dataset.

    ``name`` is the file name (also the name on any mirror), ``url_path`` the official URL, ``md5``
    the expected MD5 hex digest (``None``: not checked by MD5), ``size`` the expected size in
    bytes (``None``: not checked by size), ``extract_to`` the folder, relative to the dataset
    folder, that the archive is unpacked into (``"."``: the dataset folder itself), and ``sha256`` the
    expected SHA-256 hex digest, for a file whose only published digest is a SHA-256 (``None``: not
    checked by SHA-256).
    """

    name: str
    url_path: str
    md5: str | None
    size: int | None
    extract_to: str
    sha256: str | None = None


_FLICKR8K_BASE = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
_COCO_ANNOTATIONS_BASE = "http://images.cocodataset.org/annotations/"
_COCO_ZIPS_BASE = "http://images.cocodataset.org/zips/"
_KARPATHY_BASE = "https://cs.stanford.edu/people/karpathy/deepimagesent/"

# Small archives come first, so that a failure on a big one still leaves the captions usable.
# Flickr8k: MD5s as recorded by mlverse/torchvision (R/dataset-flickr.R) for these exact mirror URLs;
# no public source we trust records their sizes, so the MD5 is the only check.
# COCO 2017: MD5s as recorded by PaddlePaddle/PaddleDetection (ppdet/utils/download.py) and
# mlverse/torchvision (R/dataset-coco.R); sizes as recorded by tensorflow/datasets
# (tensorflow_datasets/url_checksums/coco.txt).
# COCO 2014 (for Karpathy's split, whose dataset_coco.json names 2014 images): MD5s as recorded by
# salesforce/LAVIS (lavis/datasets/download_scripts/download_coco.py) and wkentaro/fcn; sizes by
# tensorflow/datasets (same file). Karpathy's caption_datasets.zip: no public source we found records an
# MD5; its SHA-256 and size are as recorded by tensorflow/datasets
# (tensorflow_datasets/url_checksums/coco_captions.txt, for this https URL).
DATASETS: dict[str, list[Archive]] = {
    "flickr8k": [
        Archive(
            name="Flickr8k_text.zip",
            url_path=_FLICKR8K_BASE + "Flickr8k_text.zip",
            md5="bf6c1abcb8e4a833b7f922104de18627",
            size=None,
            # The text files sit at the top of this zip; a folder of their own keeps dest tidy. The name is
            # flickr8k_captions.FLICKR8K_TEXT_DIR, written out because this module imports no pandas (a test
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
            size=36_745_453,
            # dataset_coco.json (and Karpathy's Flickr8k/30k files) at the top; pass its path to train
            extract_to=".",
            sha256="4cfd70132527b80933105e5829dc9034eaab9573482e2e680abbab6130244817",
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


def _archives_size_note() -> str:
    """The archives' total size per dataset, from ``DATASETS``, for ``download --help``."""
    known, unknown = [], []
    for dataset, archives in DATASETS.items():
        sizes = [archive.size for archive in archives]
        if None in sizes:
            unknown.append(dataset)
        else:
            known.append(f"{dataset} {sum(sizes) / 2**30:.1f} GiB")
    return f"{', '.join(known)} of archives ({', '.join(unknown)}: sizes not recorded)"


KEEP_ARCHIVES_HELP = (
    "keep the archives in OUT/downloads/ once unpacked; otherwise each archive this command downloaded is "
    "deleted after its verified extraction (one you put there yourself is kept). Until then a dataset "
    f"takes twice its archives' size on disk: {_archives_size_note()}"
)
"""The help of ``download --keep-archives``, with the sizes that ``DATASETS`` records."""


def fetch_dataset(
    name: str,
    dest: Path,
    *,
    base_url: str | None = None,
    checksum: bool = True,
    only: set[str] | None = None,
    progress: bool = True,
    keep_archives: bool = False,
) -> Path:
    """Download, verify and unpack dataset ``name`` (a key of ``DATASETS``) into ``dest``; return ``dest``.

    Archives are downloaded into ``dest/downloads/`` and unpacked into ``dest`` (see
    ``Archive.extract_to``). Once an archive is unpacked completely, it is deleted if this function
    downloaded it (now, or in an earlier call that stopped before unpacking it: a
    ``downloads/.downloaded-<name>`` record says so); ``keep_archives=True`` keeps it, and an archive
    found in ``downloads/`` without such a record (put there by hand) is always kept.
    ``only`` restricts the work to the archives with these file names (for COCO, see
    ``coco_selection``). ``base_url`` replaces the official location of every file by a mirror that
    holds the same file names (``base_url + "/" + file name``). ``checksum=False`` skips the MD5,
    SHA-256 and size checks, for a mirror whose files differ from the official ones.

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
        if extraction_marker(archive.name, target).exists():
            continue  # already unpacked completely
        url = f"{base_url.rstrip('/')}/{archive.name}" if base_url else archive.url_path
        path = dest / "downloads" / archive.name
        ours = not path.exists() or _downloaded_by_us(path)
        download(
            url,
            path,
            md5=archive.md5 if checksum else None,
            sha256=archive.sha256 if checksum else None,
            size=archive.size if checksum else None,
            progress=progress,
        )
        if ours:
            _record_download(path)
        safe_extract(path, target)
        if ours and not keep_archives:
            path.unlink()
            _download_record(path).unlink()
    return dest


def _download_record(path: Path) -> Path:
    """The file whose presence says that ``fetch_dataset`` downloaded the archive at ``path``."""
    return path.with_name(f".downloaded-{path.name}")


def _record_download(path: Path) -> None:
    """Record that the archive at ``path`` (its size) was downloaded by ``fetch_dataset``."""
    record = {"archive": path.name, "size": path.stat().st_size}
    _download_record(path).write_text(json.dumps(record), encoding="utf-8")


def _downloaded_by_us(path: Path) -> bool:
    """Whether a record says ``fetch_dataset`` downloaded the archive at ``path`` (same size)."""
    try:
        record = json.loads(_download_record(path).read_text(encoding="utf-8"))
        return record["size"] == path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return False
