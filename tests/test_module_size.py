"""Issue #25: a reader finds any function by guessing its file and reads each file in one sitting, so no
module in helpers/ or benchmarks/ is above 450 lines and no function above 60 (decorators and docstring
included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
MODULES = sorted(
    path.relative_to(REPO).as_posix()
    for folder in ("helpers", "benchmarks")
    for path in (REPO / folder).glob("*.py")
)


def too_long(text: str) -> list[str]:
    """Python source → what is too long: ``"N lines"`` (the module), ``"name: N lines"`` (a function)."""
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{lines} lines")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{node.name}: {length} lines")
    return found


def test_too_long_counts_a_functions_decorator_and_docstring():
    def source(statements: int) -> str:
        body = "".join(f"    x{i} = {i}\n" for i in range(statements))
        return f'@decorator\ndef f():\n    """Doc."""\n{body}'

    assert too_long(source(57)) == []
    assert too_long(source(58)) == ["f: 61 lines"]
    assert too_long("x = 1\n" * 450) == []
    assert too_long("x = 1\n" * 451) == ["451 lines"]


@pytest.mark.parametrize("module", MODULES)
def test_module_reads_in_one_sitting(module: str):
    assert too_long((REPO / module).read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("module", MODULES)
def test_the_code_does_not_explain_itself_by_a_test_tool(module: str):
    text = (REPO / module).read_text(encoding="utf-8").lower()
    assert "mutmut" not in text and "mutant" not in text, module
