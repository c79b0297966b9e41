"""Diagrams of our own, drawn with matplotlib so they regenerate exactly: ``assets/*.png``.

Each ``*_figure()`` returns a matplotlib Figure; :func:`save_all` writes every diagram under ``assets/``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def box(ax, x: float, y: float, w: float, h: float, text: str, color: str = "#dbe9f6", fontsize: int = 9):
    """A rounded box with centred text, in data coordinates."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="#333333", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def arrow(ax, start: tuple[float, float], end: tuple[float, float], text: str = "", fontsize: int = 8):
    """An arrow from ``start`` to ``end``, with an optional label beside its middle."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#333333", lw=1))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.05, (start[1] + end[1]) / 2, text, fontsize=fontsize, va="center")


# --- data flow (notebook 01) ---


# --- model: architecture and packing (notebook 02) ---


def save_all(folder: Path = ASSETS) -> list[Path]:
    """Write every diagram as a PNG under ``folder`` and return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in DIAGRAMS.items():
        figure = make()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})
        plt.close(figure)
        written.append(path)
    return written


DIAGRAMS: dict = {}
