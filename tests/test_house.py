"""The house rules of helpers/ and benchmarks/ (README, "For contributors"): a file a newcomer reads in one
sitting, a function that fits on a screen, and no test tool named in the product's code."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60  # docstring and decorators included
SOURCES = sorted([*(ROOT / "helpers").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")])


def function_lengths(source: str) -> dict[str, int]:
    """Each function's (and method's) length in lines, from its first decorator to its last line."""
    lengths = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lengths[f"{node.name} (line {start})"] = node.end_lineno - start + 1
    return lengths


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_module_reads_in_one_sitting(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_MODULE_LINES})"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_function_fits_on_a_screen(path):
    lengths = function_lengths(path.read_text(encoding="utf-8"))
    too_long = {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES}
    assert not too_long, f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_LINES} lines: {too_long}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_code_does_not_explain_itself_by_a_test_tool(path):
    text = path.read_text(encoding="utf-8").lower()
    assert "mutmut" not in text and "mutant" not in text, path.relative_to(ROOT)


def test_the_length_rules_catch_a_planted_long_function_and_count_decorators():
    body = "\n".join(f"    x{i} = {i}" for i in range(58))
    source = f"@staticmethod\n@property\ndef planted():\n{body}\n"  # 2 decorators + def + 58 lines = 61
    assert function_lengths(source) == {"planted (line 1)": 61}
