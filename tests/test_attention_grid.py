import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "attention_grid.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("attention_grid", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their own module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_toy_run_scores_every_configuration_with_learnt_and_uniform_maps(bench, shapes, tmp_path, capsys):
    rows_file, cache = tmp_path / "rows.json", tmp_path / "cache"
    args = ["--data", str(shapes), "--cache", str(cache), "--epochs", "1", "--penalty", "0", "1",
            "--batch-images", "4", "--hidden-size", "16", "--embed-size", "8", "--feature-size", "8",
            "--attention-size", "8", "--uniform-control", "--json", str(rows_file)]
    bench.main(args)
    rows = json.loads(rows_file.read_text(encoding="utf-8"))
    assert [(row["penalty"], row["maps"]) for row in rows] == [
        (0.0, "learnt"), (0.0, "uniform"), (1.0, "learnt"), (1.0, "uniform")
    ]
    for row in rows:
        assert row["cells"] == 16 and row["stage"] == "layer1"  # 64 px → 16×16 → strides (2, 2) → 4×4
        assert 0 <= row["bleu4"] <= 1 and 0 <= row["colour"] <= 1 and 0 <= row["all"] <= 1
        assert row["train_cpu_s"] > 0 and row["extract_cpu_s"] > 0
    table = capsys.readouterr().out
    assert len(table.splitlines()) == 2 + len(rows) and "uniform" in table
    (stored,) = cache.iterdir()
    again = tmp_path / "again.json"
    bench.main([*args[:-1], str(again)])  # the grids are read back, with the seconds of their making
    assert list(cache.iterdir()) == [stored]
    for first, second in zip(rows, json.loads(again.read_text(encoding="utf-8")), strict=True):
        assert second["extract_cpu_s"] == first["extract_cpu_s"]
        scores = {name: first[name] for name in bench.SCORES}
        assert {name: second[name] for name in bench.SCORES} == pytest.approx(scores, nan_ok=True)


def test_help_names_every_setting(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--stage", "--strides", "--epochs", "--penalty", "--uniform-control", "--threads"):
        assert option in text
