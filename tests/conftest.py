"""Fixtures the unit tests share. (The repository root's ``conftest.py`` is nbval's, for the notebooks.)

The shapes sets are drawn once per session and copied for each user, because the tests that read them
also write into them: a run caches features and image checks under ``DATA/.cache``, and a few tests
break an image on purpose. A copy keeps every module (or test) starting from the same clean set.
Constants and helpers that are not fixtures live in ``tests/shared.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from shared import copy_shapes

from helpers.scenes import make_shapes

SHAPES_IMAGES = 24  # 18 train, 3 dev, 3 test: enough for a one-epoch run with a dev and a test split
SHAPES_SEED = 0


@pytest.fixture(scope="session")
def drawn_shapes(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """``drawn_shapes(images)`` → a shapes set of that many images (seed 0), drawn once per session.

    Read-only: copy it (``shared.copy_shapes``) before anything may write into it.
    """
    drawn: dict[int, Path] = {}

    def draw(images: int) -> Path:
        if images not in drawn:
            drawn[images] = make_shapes(
                tmp_path_factory.mktemp(f"shapes{images}") / "shapes", images=images, seed=SHAPES_SEED
            )
        return drawn[images]

    return draw


@pytest.fixture(scope="module")
def shapes(drawn_shapes: Callable[[int], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's own 24-image shapes set (seed 0); its tests share the caches written into it."""
    return copy_shapes(drawn_shapes(SHAPES_IMAGES), tmp_path_factory.mktemp("data"))


@pytest.fixture
def fresh_shapes(drawn_shapes: Callable[[int], Path], tmp_path: Path) -> Path:
    """A 24-image shapes set (seed 0) of the test's own, at ``tmp_path/shapes``: break it as you like."""
    return copy_shapes(drawn_shapes(SHAPES_IMAGES), tmp_path)


@pytest.fixture
def without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests go straight to the tests' own server on 127.0.0.1, whatever proxy the machine sets."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
