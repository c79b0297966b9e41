"""Build the course's website from the notebooks' stored outputs, without executing any of them.

``make site`` runs this; by hand, from the repository root::

    .venv/bin/python tools/site_build.py                 # the site in build/site/ (index.html)
    .venv/bin/python tools/site_build.py --out DIR       # somewhere else

Sphinx with MyST-NB (``nb_execution_mode = "off"``) and the Sphinx Book Theme render every
``notebooks/NN_*.ipynb`` with the outputs it stores, beside the pages of ``tools/site_pages.py``. The
sources Sphinx reads are written to ``<out>-src`` and its cache to ``<out>-doctrees``; the site in
``<out>`` is self-contained (``python -m http.server -d build/site``), its PNG images re-compressed
losslessly, and at most :data:`MAX_SITE_BYTES` (else the build fails). Its address comes from
``[tool.course]`` in ``pyproject.toml``, as the Colab links do (:func:`site_pages.site_url`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from publish import Address, PublishError, read_address  # noqa: E402
from site_pages import (  # noqa: E402
    GPU_LOG,
    SiteError,
    gpu_times,
    landing_page,
    prepare_notebook,
    read_notebooks,
    results_page,
    site_url,
)

ROOT = Path(__file__).resolve().parents[1]
MAX_SITE_BYTES = 50 * 1024 * 1024

CONF = """\
project = {title!r}
html_title = {title!r}
author = "the course's contributors"
extensions = ["myst_nb"]
exclude_patterns = []
nb_execution_mode = "off"  # the pages show the outputs the notebooks store; nothing runs
nb_ipywidgets_js = {{}}  # no widget JavaScript from a CDN: the pages replace widgets with a note
myst_heading_anchors = 3
html_theme = "sphinx_book_theme"
html_copy_source = False  # the notebooks' JSON is not copied next to the pages (their images would be twice)
html_show_sourcelink = False
html_baseurl = {baseurl!r}
html_theme_options = {options!r}
"""


def theme_options(address: Address) -> dict:
    """The Sphinx Book Theme's options: Colab launch buttons and a repository link when on GitHub."""
    if address.github is None:
        return {"use_download_button": False}
    return {
        "repository_url": f"https://github.com/{address.github}",
        "repository_branch": address.ref,
        "path_to_docs": "",
        "use_repository_button": True,
        "use_download_button": False,
        "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    }


def course_title(readme: Path) -> str:
    """The README's first heading."""
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise SiteError(f"{readme}: no '# title' line")


def write_sources(root: Path, src: Path, address: Address) -> int:
    """Write Sphinx's sources for the course in ``root`` into ``src`` (emptied first); the notebook count."""
    notebooks = read_notebooks(root)
    title = course_title(root / "README.md")
    shutil.rmtree(src, ignore_errors=True)
    (src / "notebooks").mkdir(parents=True)
    shutil.copytree(root / "assets", src / "assets")
    for notebook in notebooks:
        prepared = json.dumps(prepare_notebook(notebook, address), indent=1, ensure_ascii=False)
        (src / "notebooks" / notebook.name).write_text(prepared + "\n", encoding="utf-8")
    gpu = gpu_times(root / GPU_LOG)
    (src / "index.md").write_text(landing_page(notebooks, address, gpu, title), encoding="utf-8")
    results = results_page(notebooks, address, root / "benchmarks" / "README.md")
    (src / "results.md").write_text(results, encoding="utf-8")
    conf = CONF.format(title=title, baseurl=site_url(address) or "", options=theme_options(address))
    (src / "conf.py").write_text(conf, encoding="utf-8")
    return len(notebooks)


def compress_images(site: Path) -> None:
    """Re-save every PNG of ``site`` with zlib's best compression, keeping the smaller file (lossless)."""
    for path in site.rglob("*.png"):
        with Image.open(path) as image:
            image.load()
        candidate = path.with_suffix(".tmp.png")
        image.save(candidate, optimize=True)
        if candidate.stat().st_size < path.stat().st_size:
            candidate.replace(path)
        else:
            candidate.unlink()


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def build(root: Path, out: Path) -> int:
    """Build the site of the course in ``root`` into ``out`` (replaced); its size in bytes."""
    src, doctrees = out.with_name(out.name + "-src"), out.with_name(out.name + "-doctrees")
    address = read_address(root / "pyproject.toml")
    count = write_sources(root, src, address)
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-q",
        "-E",
        "-d",
        str(doctrees),
        str(src),
        str(out),
    ]
    if subprocess.run(command).returncode != 0:
        raise SiteError(f"sphinx-build failed on {src} (its messages are above)")
    # what a page never reads: the build's record, and the themes' template fragments copied as static files
    for leftover in [out / ".buildinfo", out / "_sources", *(out / "_static").glob("*macros.html")]:
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    compress_images(out)
    size = size_of(out)
    if size > MAX_SITE_BYTES:
        raise SiteError(
            f"{out}: {size / 2**20:.1f} MB, over the {MAX_SITE_BYTES / 2**20:.0f} MB the site may take"
        )
    print(f"site: {count} notebooks in {out}, {size / 2**20:.1f} MB; address: {site_url(address) or 'none'}")
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the course (default: this checkout)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="default: build/site")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        build(args.root, args.out.resolve())
    except (SiteError, PublishError) as error:
        print(f"site: {error}", file=sys.stderr)
        return 1
    print(f"site: built in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
