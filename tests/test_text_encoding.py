"""Every text file the package, the benchmarks and the tools open names its encoding.

Without ``encoding=``, Python uses the locale's, which is ASCII under ``LC_ALL=C`` (common in containers
and CI): a word like "café" then cannot be written, and a UTF-8 file cannot be read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("helpers", "benchmarks", "tools") for p in (ROOT / folder).glob("*.py"))
TEXT_METHODS = {"read_text", "write_text", "to_csv", "read_csv"}
BINARY_OPENERS = {"Image", "tarfile", "zipfile", "zf", "os", "urllib"}  # .open() that never decodes text


def _binary(call: ast.Call, position: int) -> bool:
    """Whether an ``open`` call's mode (positional at ``position`` or by keyword) is binary: every string
    it can be (``"ab" if offset else "wb"``) holds a ``b``. No mode means ``"r"``, text."""
    mode = next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None and len(call.args) > position:
        mode = call.args[position]
    strings = [n.value for n in ast.walk(mode) if isinstance(n, ast.Constant)] if mode is not None else []
    return bool(strings) and all(isinstance(s, str) and "b" in s for s in strings)


def _opens_text_without_encoding(call: ast.Call) -> bool:
    if any(keyword.arg == "encoding" for keyword in call.keywords):
        return False
    function = call.func
    if isinstance(function, ast.Name):
        return function.id == "open" and not _binary(call, 1)
    if not isinstance(function, ast.Attribute):
        return False
    if function.attr in TEXT_METHODS:
        return True
    receiver = function.value
    if function.attr != "open" or (isinstance(receiver, ast.Name) and receiver.id in BINARY_OPENERS):
        return False
    return not _binary(call, 0)


def text_opens_without_encoding(source: str) -> list[int]:
    """The line numbers of the calls in ``source`` that read or write a text file in the locale's encoding."""
    calls = (node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call))
    return sorted(call.lineno for call in calls if _opens_text_without_encoding(call))


@pytest.mark.parametrize(
    "line, found",
    [
        ('Path("a").write_text("x")', True),
        ('Path("a").write_text("x", encoding="utf-8")', False),
        ('Path("a").read_text(errors="replace")', True),
        ('open("a", "w")', True),
        ('open("a")', True),
        ('open("a", "rb")', False),
        ('path.open("ab")', False),
        ('path.open("ab" if offset else "wb")', False),
        ('path.open("a" if offset else "wb")', True),
        ("path.open()", True),
        ('path.open(mode="w", encoding="utf-8")', False),
        ('table.to_csv("a.csv", index=False)', True),
        ('Image.open("a.png")', False),
        ('tarfile.open("a.tar", "r:*")', False),
    ],
)
def test_the_scan_finds_text_opens_without_an_encoding(line, found):
    assert bool(text_opens_without_encoding(line)) == found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_text_file_is_opened_with_an_explicit_encoding(path):
    lines = text_opens_without_encoding(path.read_text(encoding="utf-8"))
    assert lines == [], f"{path.relative_to(ROOT)}: text opened in the locale's encoding on lines {lines}"
