"""The model commands end to end: train, caption, evaluate, and training under torchrun."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from shared import TINY_TRAIN_FLAGS as TINY_FLAGS

from helpers.attributes import ATTRIBUTES, attribute_accuracy, read_scenes, scenes_for
from helpers.evaluation import evaluate_split
from helpers.prepare import prepare_data
from helpers.runs import load_run
from helpers.scenes import IMAGE_DIR, TRUTH_FILE


def quiet(_):
    pass


def run(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CAPTION_PROGRESS": "0", **(env or {})},
    )


@pytest.fixture(scope="module")
def run_dir(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    done = run("-m", "helpers", "train", "--data", str(shapes), "--out", str(out), *TINY_FLAGS)
    assert done.returncode == 0, done.stderr
    assert "dev BLEU-4" in done.stdout
    return out


def test_train_writes_the_run_folder(run_dir):
    assert {p.name for p in run_dir.iterdir()} >= {
        "checkpoint.pt",
        "vocab.json",
        "config.json",
        "history.csv",
    }
    assert json.loads((run_dir / "config.json").read_text())["image_size"] == 32


def test_caption_prints_one_line_per_image_and_names_broken_ones(run_dir, shapes, tmp_path):
    good = shapes / IMAGE_DIR / "scene_000000.jpg"
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(rgba)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    done = run(
        "-m",
        "helpers",
        "caption",
        "--run",
        str(run_dir),
        str(good),
        str(broken),
        str(rgba),
        "--device",
        "cpu",
    )
    lines = done.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(good), str(rgba)]
    assert done.returncode == 1
    assert str(broken) in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_train_stores_the_vocabulary_threshold_it_used(run_dir, shapes, tmp_path):
    assert json.loads((run_dir / "config.json").read_text())["min_freq"] == 1  # the shapes set's default
    out = tmp_path / "rare"
    done = run(
        "-m", "helpers", "train", "--data", str(shapes), "--out", str(out), *TINY_FLAGS, "--min-freq", "40"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "config.json").read_text())["min_freq"] == 40
    words = [json.loads((run / "vocab.json").read_text())["itos"] for run in (out, run_dir)]
    assert 4 < len(words[0]) < len(words[1])


def test_running_out_of_gpu_memory_is_one_line_naming_batch_size(shapes, tmp_path, monkeypatch, capsys):
    import torch

    import helpers.training
    from helpers import cli

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(helpers.training, "fit", out_of_memory)
    code = cli.main(["train", "--data", str(shapes), "--out", str(tmp_path / "run"), *TINY_FLAGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "ran out of memory with batches of 16 captions at 32 px" in err[0]
    assert "--batch-size (e.g. 8)" in err[0]


@pytest.mark.parametrize(
    "flags, mode, backbone",
    [
        ([], "cached", "none"),
        (["--fine-tune"], "fine-tune", "last"),
        (["--fine-tune", "all"], "fine-tune", "all"),
        (["--fine-tune", "none"], "cached", "none"),
    ],
)
def test_fine_tune_flag_picks_the_mode(shapes, tmp_path, monkeypatch, flags, mode, backbone):
    import helpers.training
    from helpers import cli

    class Seen(Exception):  # stops the command where it would start training
        pass

    def fit(data, out, config, **kw):
        raise Seen(config)

    monkeypatch.setattr(helpers.training, "fit", fit)
    with pytest.raises(Seen) as seen:
        cli.main(["train", "--data", str(shapes), "--out", str(tmp_path / "run"), *TINY_FLAGS, *flags])
    config = seen.value.args[0]
    assert (config.mode, config.train_backbone) == (mode, backbone)


@pytest.mark.parametrize(("flags", "standardize"), [([], True), (["--no-standardize"], False)])
def test_no_standardize_flag_reaches_the_configuration(shapes, tmp_path, monkeypatch, flags, standardize):
    import helpers.training
    from helpers import cli

    class Seen(Exception):  # stops the command where it would start training
        pass

    def fit(data, out, config, **kw):
        raise Seen(config)

    monkeypatch.setattr(helpers.training, "fit", fit)
    with pytest.raises(Seen) as seen:
        cli.main(["train", "--data", str(shapes), "--out", str(tmp_path / "run"), *TINY_FLAGS, *flags])
    assert seen.value.args[0].standardize is standardize


def test_train_resume_reads_the_checkpoint_once(run_dir, shapes, tmp_path, monkeypatch, capsys):
    import helpers.runs
    from helpers import cli

    out = copy_of(run_dir, tmp_path)
    reads = []
    real = helpers.runs.load_checkpoint
    counted = lambda path, *a: reads.append(path) or real(path, *a)  # noqa: E731
    monkeypatch.setattr(helpers.runs, "load_checkpoint", counted)
    monkeypatch.setenv("CAPTION_PROGRESS", "0")
    flags = [*TINY_FLAGS, "--epochs", "2", "--resume"]
    code = cli.main(["train", "--data", str(shapes), "--out", str(out), *flags])
    assert code == 0 and "Resuming after epoch 1 of 2." in capsys.readouterr().out
    assert reads == [out / "checkpoint.pt"]


def test_caption_and_evaluate_use_the_best_epoch_unless_told(run_dir, shapes, tmp_path):
    image = str(shapes / IMAGE_DIR / "scene_000000.jpg")
    done = run("-m", "helpers", "caption", "--run", str(run_dir), image, "--device", "cpu")
    assert done.returncode == 0 and done.stdout.startswith(image) and done.stderr == ""
    (run_dir / "best.pt").rename(tmp_path / "best.pt")  # now --checkpoint best must fail, last must not
    try:
        last = run("-m", "helpers", "caption", "--run", str(run_dir), image, "--checkpoint", "last")
        assert last.returncode == 0 and last.stderr == ""
        (run_dir / "checkpoint.pt").rename(tmp_path / "checkpoint.pt")
        best = run("-m", "helpers", "evaluate", "--run", str(run_dir), "--data", str(shapes), "--json")
        assert best.returncode == 2 and "best.pt" in best.stderr
    finally:
        for name in ("best.pt", "checkpoint.pt"):
            if (tmp_path / name).exists():
                (tmp_path / name).rename(run_dir / name)


def test_caption_with_beam_search(run_dir, shapes):
    image = shapes / IMAGE_DIR / "scene_000001.jpg"
    done = run(
        "-m", "helpers", "caption", "--run", str(run_dir), str(image), "--beam", "3", "--device", "cpu"
    )
    assert done.returncode == 0 and done.stdout.startswith(f"{image}\t")


def test_evaluate_prints_bleu_as_json(run_dir, shapes):
    done = run(
        "-m", "helpers", "evaluate", "--run", str(run_dir), "--data", str(shapes), "--json", "--device", "cpu"
    )
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    assert scores["split"] == "test" and scores["images"] == 3
    assert all(0 <= scores[k] <= 1 for k in ("bleu1", "bleu2", "bleu3", "bleu4"))


def test_evaluate_json_has_each_attributes_accuracy_as_the_scorer_computes_it(run_dir, shapes):
    done = run(
        "-m", "helpers", "evaluate", "--run", str(run_dir), "--data", str(shapes), "--json", "--device", "cpu"
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)["attributes"]
    assert list(printed) == list(ATTRIBUTES)
    trained = load_run(run_dir)
    data = prepare_data(shapes, log=lambda _: None)
    _, table = evaluate_split(
        trained.model, trained.vocab, trained.config, data, "test", cache_dir=shapes / ".cache", log=quiet
    )
    expected = attribute_accuracy(table["generated"], scenes_for(table["image"], read_scenes(shapes)))
    for name in ATTRIBUTES:
        if math.isnan(expected[name]):
            assert printed[name] is None  # NaN is not JSON
        else:
            assert printed[name] == pytest.approx(expected[name])


def test_evaluate_json_has_cider_d_coco_bleu_and_the_diagnostics_that_diagnose_prints(run_dir, shapes):
    from helpers.diagnostics import diagnose
    from helpers.features import cached_features
    from helpers.metrics import cider_d, coco_bleu

    flags = ["--run", str(run_dir), "--data", str(shapes), "--json", "--device", "cpu"]
    done = run("-m", "helpers", "evaluate", *flags)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    trained = load_run(run_dir)
    data = prepare_data(shapes, log=lambda _: None)
    _, table = evaluate_split(
        trained.model, trained.vocab, trained.config, data, "test", cache_dir=shapes / ".cache", log=quiet
    )
    references, generated = table["references"].tolist(), table["generated"].tolist()
    assert printed["cider_d"] == pytest.approx(cider_d(references, generated)[0])
    assert printed["coco_bleu"] == pytest.approx(coco_bleu(references, generated))
    images, cache = data.images("test"), shapes / ".cache"
    features = cached_features(trained.model, images, trained.config.image_size, "cpu", cache, quiet)
    config = trained.config
    expected = diagnose(trained.model, features, trained.vocab, references, "cpu", max_len=config.max_decode)
    alone = run("-m", "helpers", "diagnose", *flags)
    assert alone.returncode == 0, alone.stderr
    diagnosed = json.loads(alone.stdout)
    for key, value in expected.items():
        if isinstance(value, float):
            assert diagnosed[key] == pytest.approx(value), key
        else:
            assert diagnosed[key] == value, key
        if key in ("distinct_1", "distinct_2", "most_common_caption_share", "image_sensitivity", "flags"):
            assert printed[key] == diagnosed[key], key
    text = run("-m", "helpers", "diagnose", *flags[:-3])
    assert text.returncode == 0 and "image sensitivity" in text.stdout


def test_evaluate_text_lists_the_attributes_and_with_baselines_the_floor_and_ceiling(run_dir, shapes):
    done = run(
        "-m",
        "helpers",
        "evaluate",
        "--run",
        str(run_dir),
        "--data",
        str(shapes),
        "--device",
        "cpu",
        "--baselines",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = lines.index("  attributes (share right of those the captions state; see helpers.attributes):")
    assert [line.split()[0] for line in lines[start + 1 : start + 1 + len(ATTRIBUTES)]] == list(ATTRIBUTES)
    assert any(line.startswith("  best image-blind caption (chosen on dev): '") for line in lines)
    assert "  human references, each against the others (mean over the annotators):" in lines
    humans = json.loads(
        run(
            "-m",
            "helpers",
            "evaluate",
            "--run",
            str(run_dir),
            "--data",
            str(shapes),
            "--device",
            "cpu",
            "--baselines",
            "--json",
        ).stdout
    )["human"]
    assert humans["attributes"]["colour"] == humans["attributes"]["all"] == 1.0  # references are right
    assert 0 < humans["bleu1"] <= 1


def test_evaluate_says_nothing_about_attributes_without_a_truth_file(run_dir, shapes, tmp_path):
    flickr_like = tmp_path / "flickr_like"
    shutil.copytree(shapes, flickr_like, ignore=shutil.ignore_patterns(TRUTH_FILE, ".cache"))
    args = ["-m", "helpers", "evaluate", "--run", str(run_dir), "--data", str(flickr_like), "--device", "cpu"]
    as_json = run(*args, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert "attributes" not in json.loads(as_json.stdout)
    as_text = run(*args)
    assert as_text.returncode == 0 and "BLEU4" in as_text.stdout and "attributes" not in as_text.stdout


def test_train_seed_is_stored_in_the_run(shapes, tmp_path):
    out = tmp_path / "seeded"
    done = run("-m", "helpers", "train", "--data", str(shapes), "--out", str(out), *TINY_FLAGS, "--seed", "5")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "config.json").read_text())["seed"] == 5


def test_a_missing_run_is_one_clear_line(tmp_path, shapes):
    done = run(
        "-m",
        "helpers",
        "caption",
        "--run",
        str(tmp_path / "nope"),
        str(shapes / IMAGE_DIR / "scene_000000.jpg"),
    )
    assert done.returncode == 2 and "no checkpoint there" in done.stderr and "Traceback" not in done.stderr


def test_torchrun_trains_with_two_processes_and_one_checkpoint(shapes, tmp_path):
    out = tmp_path / "ddp"
    done = run(
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "helpers",
        "train",
        "--data",
        str(shapes),
        "--out",
        str(out),
        *TINY_FLAGS,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("epoch 1/1") == 1  # only rank 0 logs
    assert "2 processes" in done.stdout
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["best.pt", "checkpoint.pt"]
    image = shapes / IMAGE_DIR / "scene_000002.jpg"
    captioned = run("-m", "helpers", "caption", "--run", str(out), str(image), "--device", "cpu")
    assert captioned.returncode == 0 and captioned.stdout.startswith(f"{image}\t")


def copy_of(run_dir, tmp_path):
    """A copy of the module's run, so that a test may change it."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_train_on_a_folder_holding_a_run_is_refused_and_the_checkpoint_is_kept(run_dir, shapes, tmp_path):
    out = copy_of(run_dir, tmp_path)
    before = (out / "checkpoint.pt").read_bytes()
    done = run("-m", "helpers", "train", "--data", str(shapes), "--out", str(out), *TINY_FLAGS)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {out} already holds a run (trained to epoch 1 of 1)"
    )
    assert "--resume" in lines[0] and "--overwrite" in lines[0]
    assert (out / "checkpoint.pt").read_bytes() == before


def test_train_with_overwrite_replaces_the_run_and_says_so(run_dir, shapes, tmp_path):
    out = copy_of(run_dir, tmp_path)
    flags = [*TINY_FLAGS, "--hidden-size", "8", "--overwrite"]
    done = run("-m", "helpers", "train", "--data", str(shapes), "--out", str(out), *flags)
    assert done.returncode == 0, done.stderr
    assert f"Replacing the run in {out} (trained to epoch 1 of 1)" in done.stdout
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 8


def test_train_resume_with_more_epochs_trains_them_and_names_the_ignored_flags(run_dir, shapes, tmp_path):
    out = copy_of(run_dir, tmp_path)
    flags = [*TINY_FLAGS, "--epochs", "2", "--lr", "0.5", "--resume"]
    done = run("-m", "helpers", "train", "--data", str(shapes), "--out", str(out), *flags)
    assert done.returncode == 0, done.stderr
    assert "Resuming after epoch 1 of 2." in done.stdout
    assert "it now trains to 2" in done.stdout and "epoch 2/2" in done.stdout
    ignored = [line for line in done.stdout.splitlines() if line.startswith("Ignored with resume")]
    assert ignored == ["Ignored with resume (the run keeps its saved configuration): lr=0.5 (saved 0.004)."]
    config = json.loads((out / "config.json").read_text())
    assert (config["epochs"], config["lr"]) == (2, 0.004)
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1, 2]


def test_resume_and_overwrite_together_are_a_usage_error(tmp_path, shapes):
    done = run(
        "-m", "helpers", "train", "--data", str(shapes), "--out", str(tmp_path), "--resume", "--overwrite"
    )
    assert done.returncode == 2 and "not allowed with argument" in done.stderr
