"""The benchmark's code paths at toy size, so they cannot rot. No timing assertions: machines vary.

The arithmetic is checked with made-up timings: every ratio must be median(A) / median(B).
"""

import json
from pathlib import Path

import pytest
import torch
from shared import copy_shapes

from benchmarks import common, encoder, fine_tune, memory, run
from helpers.config import TrainConfig

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
TOY = dict(
    embed_size=8,
    hidden_size=16,
    batch_size=8,
    image_size=32,
    epochs=2,
    train_captions=20,
    decode_images=4,
    decode_max_len=5,
    encoder_size=32,
    encoder_batch=2,
    repeats=1,
    memory=False,
    flickr_captions=40,
    flickr_images=10,
    flickr_vocab=50,
    flickr_batch=16,
    jpeg_images=4,
    jpeg_width=50,
    jpeg_height=40,
)
POSITIVE_KEYS = [
    "train_speedup_cached_vs_textbook",
    "train_speedup_cached_vs_textbook_per_epoch",
    "train_speedup_cached_vs_textbook_amortised",
    "train_textbook_epoch_s",
    "train_cached_epoch_s",
    "train_cached_extract_s",
    "train_cached_amortised_epoch_s",
    "loss_speedup_full_vs_prefix",
    "loss_prefix_s",
    "loss_full_s",
    "loss_packed_s",
    "loss_speedup_packed_vs_prefix",
    "decode_speedup_batched_vs_naive",
    "decode_naive_s",
    "decode_carried_s",
    "decode_naive_batched_s",
    "decode_batched_s",
    "decode_speedup_state_one_by_one",
    "decode_speedup_batching_naive",
    "decode_speedup_state_batched",
    "decode_speedup_batching_carried",
    "train_cached_extract_cold_s",
    "encoder_img_s_fp32",
    "encoder_img_s_channels_last",
    "flickr_decoder_captions_s",
    "loader_img_s_jpeg",
]


@pytest.fixture(scope="module")
def shapes(drawn_shapes, tmp_path_factory):
    """12 images (not the shared 24): the toy benchmark run needs no more."""
    return copy_shapes(drawn_shapes(12), tmp_path_factory.mktemp("data"))


def test_toy_run_reports_every_key_with_positive_values(shapes):
    result = run.run_benchmarks(
        common.Sizes(**TOY), shapes, torch.device("cpu"), extras_too=True, log=lambda _: None
    )
    for key in POSITIVE_KEYS:
        assert result[key] > 0, key
    assert "encoder_img_s_bf16" in result and "encoder_bf16_note" in result
    assert result["encoder_img_s_bf16"] is None or result["encoder_img_s_bf16"] > 0
    assert result["loss_values_agree"] is True
    assert result["decode_captions_identical"] is True
    assert result["decode_steps"] == TOY["decode_max_len"] + 1
    assert result["train_captions"] == 20 and result["train_images"] == 4  # 5 captions per image
    assert set(result["met"]) == set(common.TARGETS)
    json.loads(json.dumps(result))  # what --json writes
    text = run.table(result)
    assert "training epoch (20 captions, 32 px)" in text and "greedy (4 images, 6 steps)" in text


def test_compare_alternates_the_sides_and_warms_each_up_first():
    calls = []
    sides = [
        common.Side(name, lambda n=name: calls.append(n), lambda n=name: calls.append(n + "-warm"))
        for name in ("a", "b")
    ]
    samples, peaks = common.compare(sides, 3, torch.device("cpu"))
    assert calls == ["a-warm", "b-warm", "a", "b", "b", "a", "a", "b"]
    assert all(len(times) == 3 and min(times) >= 0 for times in samples.values())
    assert peaks == {"a": None, "b": None}  # peaks come from the subprocess check on a CPU


def test_rss_rise_sees_the_memory_a_function_touches():
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc")
    rise = common.rss_rise_mb(lambda: torch.ones(64 * 2**20 // 4).sum())  # 64 MB, every page written
    assert 48 < rise < 256


def test_memory_check_runs_each_side_in_a_fresh_process(shapes):
    specs = [("decode", "batched"), ("loss", "full")]
    peaks = memory.child_memories(specs, common.Sizes(**TOY), shapes)
    assert set(peaks) == set(specs) and all(peak >= 0 for peak in peaks.values())


def test_memory_children_cover_every_side_and_fill_the_table_keys(shapes, monkeypatch):
    calls = []

    def fake(specs, sizes, data):
        calls.extend(specs)
        return dict.fromkeys(specs, 1.0)

    monkeypatch.setattr(memory, "child_memories", fake)
    toy = common.Sizes(**TOY)
    peaks = memory.cpu_memory_children(toy, shapes, log=lambda _: None)
    assert sorted(calls) == sorted((b, side) for b, sides in memory.BENCH_SIDES.items() for side in sides)
    for b, sides in memory.BENCH_SIDES.items():  # each side of each comparison, under the table's key
        assert {side for side in sides} == {
            s.name
            for s in memory.BENCHES[b](
                common.bench_captions(b, toy, shapes), toy, torch.device("cpu")
            ).sides()
        }
    assert set(peaks) == {f"{b}_{side}_peak_mb" for b, side in calls}


def test_quick_sizes_are_the_course_cpu_model_at_the_design_image_size():
    sizes, config = common.sizes_for(torch.device("cpu"), quick=True), TrainConfig.for_device("cpu")
    assert (sizes.embed_size, sizes.hidden_size, sizes.batch_size, sizes.epochs) == (
        config.embed_size,
        config.hidden_size,
        config.batch_size,
        config.epochs,
    )
    assert sizes.image_size == 224  # the textbook pipeline's size, the one caching replaces


def test_help_shows_the_image_size_the_sizes_use(capsys):
    with pytest.raises(SystemExit) as info:
        run.main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    quick = common.sizes_for(torch.device("cpu"), quick=True).image_size
    full = common.sizes_for(torch.device("cpu"), quick=False).image_size
    assert f"(default: {quick} px quick, {full} full)" in text
    assert quick == 224  # what README's benchmark section says


def test_a_device_this_machine_lacks_is_one_error_line(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(SystemExit) as info:
        run.main(["--device", "cuda", "--data", str(tmp_path / "shapes")])
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "no CUDA GPU here" in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_json_refuses_a_file_the_benchmark_did_not_write_before_any_work(capsys, tmp_path, monkeypatch):
    def ran(*args, **kwargs):
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(run, "run_benchmarks", ran)
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "numbers"}\n')
    with pytest.raises(SystemExit) as info:
        run.main(["--device", "cpu", "--json", str(notes), "--data", str(tmp_path / "shapes")])
    assert info.value.code == 2
    assert f"{notes} exists and was not written by this benchmark" in capsys.readouterr().err
    assert notes.read_text() == '{"my": "numbers"}\n'
    assert not (tmp_path / "shapes").exists()  # refused before drawing the dataset
    earlier = tmp_path / "bench.json"
    earlier.write_text(json.dumps({"mode": "quick", "wall_s": 1.0}))
    assert run.written_by_run(earlier) and not run.written_by_run(notes)


# Each side's made-up repetitions: median 2 × base, mean 7/3 × base, minimum 1 × base, so that a ratio
# of means, minima or first samples comes out different from the ratio of medians.
FAKE_BASE = {
    "textbook": 900.0,
    "cached": 7.0,
    "extract": 60.0,
    "prefix": 50.0,
    "full": 5.0,
    "packed": 4.0,
    "naive": 300.0,
    "carried": 170.0,
    "naive_batched": 45.0,
    "batched": 6.0,
    "fp32": 11.0,
    "channels_last": 9.0,
    "bf16": 4.0,  # timed only where helpers.precision.use_bf16 says bf16 helps (a CPU with AMX)
}


def test_every_ratio_is_the_median_of_one_side_over_the_median_of_the_other(shapes, monkeypatch):
    def fake_compare(sides, repeats, device):
        for side in sides:
            side.warmup = side.run = None  # nothing is timed for real
        samples = {side.name: [FAKE_BASE[side.name] * f for f in (1.0, 4.0, 2.0)] for side in sides}
        return samples, dict.fromkeys(samples)

    monkeypatch.setattr(common, "compare", fake_compare)
    monkeypatch.setattr(encoder, "compare", fake_compare)
    sizes = common.Sizes(**{**TOY, "repeats": 3})
    result = run.run_benchmarks(sizes, shapes, torch.device("cpu"), log=lambda _: None)
    m = {name: 2.0 * base for name, base in FAKE_BASE.items()}  # the medians
    amortised = m["cached"] + m["extract"] / sizes.epochs
    expected = {
        "train_speedup_cached_vs_textbook": m["textbook"] / m["cached"],
        "train_speedup_cached_vs_textbook_per_epoch": m["textbook"] / m["cached"],
        "train_speedup_cached_vs_textbook_amortised": m["textbook"] / amortised,
        "loss_speedup_full_vs_prefix": m["prefix"] / m["full"],
        "loss_speedup_packed_vs_prefix": m["prefix"] / m["packed"],
        "decode_speedup_batched_vs_naive": m["naive"] / m["batched"],
        "decode_speedup_state_one_by_one": m["naive"] / m["carried"],
        "decode_speedup_batching_naive": m["naive"] / m["naive_batched"],
        "decode_speedup_state_batched": m["naive_batched"] / m["batched"],
        "decode_speedup_batching_carried": m["carried"] / m["batched"],
    }
    assert {key for key in result if "_speedup_" in key} == set(expected)  # a new ratio needs a line here
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key
    assert result["train_cached_extract_s"] == m["extract"]
    assert result["train_cached_amortised_epoch_s"] == pytest.approx(amortised)
    assert result["train_amortised_over_epochs"] == sizes.epochs
    assert result["encoder_img_s_fp32"] == pytest.approx(sizes.encoder_batch / m["fp32"])
    text = run.table(result)
    for key in expected:
        if key != "train_speedup_cached_vs_textbook_per_epoch":  # the headline key's value, printed once
            assert f"{result[key]:.1f}x" in text, key


def test_help_and_readme_say_training_is_compared_at_the_textbook_size(capsys):
    with pytest.raises(SystemExit):
        run.main(["--help"])
    assert "64 px" not in capsys.readouterr().out
    assert common.Sizes().image_size == 224
    how = (RUN.parent / "README.md").read_text().split("## How it measures")[1].split("## The comparisons")[0]
    assert "training images at the textbook's 224 px on every device" in how


def test_fine_tune_benchmark_times_both_batchings_of_the_same_captions(shapes, monkeypatch):
    """A toy run: both sides train for real; with made-up timings the ratio is one median over the other."""
    toy = dict(images=4, image_size=32, batch_size=10, embed_size=8, hidden_size=16)
    sizes = fine_tune.FineTuneSizes(**toy)
    bench = fine_tune.FineTuneBench(shapes, sizes, torch.device("cpu"))
    assert (len(bench.train.images), len(bench.train.captions), bench.train.per_batch(10)) == (4, 20, 2)
    backbone = {}
    for name, step in (("by_caption", bench.by_caption_step), ("by_image", bench.by_image_step)):
        backbone[name] = []
        step.model.encoder.backbone.register_forward_hook(
            lambda module, args, out, seen=backbone[name]: seen.append(args[0].shape[0])
        )
        before = step.model.decoder.linear.weight.detach().clone()
        getattr(bench, f"{name}_epoch")()
        assert not torch.equal(before, step.model.decoder.linear.weight)  # it trained
    assert sum(backbone["by_caption"]) == 20 and sum(backbone["by_image"]) == 4

    def fake_compare(sides, repeats, device):
        return {"by_caption": [3.0, 9.0, 6.0], "by_image": [1.0, 2.0, 0.5]}, {}

    monkeypatch.setattr(fine_tune, "compare", fake_compare)
    result = fine_tune.run_fine_tune(sizes, shapes, torch.device("cpu"))
    assert (result["by_caption_epoch_s"], result["by_image_epoch_s"]) == (6.0, 1.0)
    assert result["speedup_by_image_vs_by_caption"] == 6.0
    text = fine_tune.report(result)
    assert "6.00 s" in text and "1.00 s" in text and "ratio: 6.0x" in text
