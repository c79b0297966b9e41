import json
from pathlib import Path

import pytest
import torch

from helpers.shapes import make_shapes
from helpers.training import (
    CHECKPOINT,
    TrainConfig,
    atomic_save,
    autocast_dtype,
    batches,
    cached_features,
    default_min_freq,
    fit,
    load_checkpoint,
    load_run,
    prepare_data,
    training_precision,
    use_bf16,
    use_tf32,
)

TINY = dict(
    embed_size=8, hidden_size=16, image_size=32, epochs=1, batch_size=16, val_images=4, weights="random"
)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("data") / "shapes", images=24, seed=0)


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    result = fit(shapes, run, TrainConfig(**TINY), device="cpu", log=lambda _: None)
    return run, result


def test_for_device_picks_the_small_cpu_and_full_gpu_configurations():
    cpu, gpu = TrainConfig.for_device("cpu"), TrainConfig.for_device("cuda")
    assert cpu.image_size < gpu.image_size == 224
    assert TrainConfig.for_device("cpu", epochs=2).epochs == 2


def test_unknown_configuration_keys_are_refused():
    with pytest.raises(ValueError, match="epochz"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ValueError, match="mode"):
        TrainConfig.from_dict({"mode": "fast"})


def test_batches_cover_every_example_once_and_never_leave_a_batch_of_one():
    order = batches(33, 16, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(order).tolist()) == list(range(33))
    assert [len(b) for b in order] == [16, 17]


def test_fit_one_tiny_epoch_writes_a_complete_run(trained):
    run, result = trained
    assert {p.name for p in run.iterdir()} >= {CHECKPOINT, "vocab.json", "config.json", "history.csv"}
    assert list(result.history["epoch"]) == [1]
    assert 0 < result.history["train_loss"][0] < 10
    assert 0 <= result.history["dev_bleu4"][0] <= 1
    assert json.loads((run / "config.json").read_text())["hidden_size"] == 16
    assert not result.model.training


def test_checkpoint_round_trip_gives_the_same_model(trained):
    run, result = trained
    model, vocab, config = load_run(run)
    assert vocab == result.vocab and config == result.config
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_checkpoint_holds_plain_data_only(trained):
    run, _ = trained
    state = torch.load(run / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1 and state["vocab"][:4] == ["<pad>", "<start>", "<end>", "<unk>"]


def test_resume_continues_from_the_last_completed_epoch(shapes, tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 2})
    straight = fit(shapes, tmp_path / "straight", config, device="cpu", log=lambda _: None)

    def stop_after_first_epoch(message):
        if message.startswith("epoch 1/2"):
            raise KeyboardInterrupt  # the checkpoint of epoch 1 is already on disk

    with pytest.raises(KeyboardInterrupt):
        fit(shapes, tmp_path / "cut", config, device="cpu", log=stop_after_first_epoch)
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["epoch"] == 1
    messages = []
    resumed = fit(shapes, tmp_path / "cut", None, device="cpu", resume=True, log=messages.append)
    assert any("Resuming after epoch 1" in m for m in messages)
    assert list(resumed.history["epoch"]) == [1, 2]
    assert resumed.history["train_loss"][1] == pytest.approx(straight.history["train_loss"][1], rel=1e-5)


def test_feature_cache_is_reused_and_a_damaged_one_is_rebuilt(shapes, tmp_path):
    from helpers.training import build_model

    torch.manual_seed(0)
    model = build_model(TrainConfig(**TINY), vocab_size=10)
    paths = sorted(str(p) for p in (shapes / "Flicker8k_Dataset").iterdir())[:3]
    messages = []
    first = cached_features(model, paths, 32, torch.device("cpu"), tmp_path, messages.append)
    again = cached_features(model, paths, 32, torch.device("cpu"), tmp_path, messages.append)
    assert torch.equal(first, again) and first.shape == (3, 2048)
    assert "Reusing" in messages[-1]
    cache = next(tmp_path.glob("features-*.pt"))
    cache.write_bytes(cache.read_bytes()[:100])  # as if the writer had been killed
    rebuilt = cached_features(model, paths, 32, torch.device("cpu"), tmp_path, messages.append)
    assert torch.equal(rebuilt, first)
    assert any("damaged" in m for m in messages)


def test_feature_cache_key_is_the_same_for_relative_and_absolute_paths(shapes, tmp_path, monkeypatch):
    from helpers.training import _fingerprint, build_model

    torch.manual_seed(0)
    model = build_model(TrainConfig(**TINY), vocab_size=10)
    absolute = sorted(str(p) for p in (shapes / "Flicker8k_Dataset").iterdir())[:3]
    monkeypatch.chdir(shapes)
    relative = [str(Path(p).relative_to(shapes)) for p in absolute]
    assert _fingerprint(model, relative, 32) == _fingerprint(model, absolute, 32)
    assert _fingerprint(model, absolute[:2], 32) != _fingerprint(model, absolute, 32)


def test_load_checkpoint_refuses_broken_and_foreign_files(tmp_path):
    truncated = tmp_path / "truncated.pt"
    atomic_save({"model": {}, "vocab": [], "config": {}, "epoch": 1}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:20])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a checkpoint of this course"):
        load_checkpoint(foreign)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        load_checkpoint(pickled)


def test_fine_tuning_changes_the_last_block_and_nothing_before_it(shapes, tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(**{**TINY, "mode": "fine-tune", "train_backbone": "last", "batch_size": 32})
    result = fit(shapes, tmp_path / "ft", config, device="cpu", log=lambda _: None)
    fresh = load_run(tmp_path / "ft")[0]
    assert torch.equal(
        fresh.encoder.backbone[7][0].conv1.weight, result.model.encoder.backbone[7][0].conv1.weight
    )
    # rebuild the untrained backbone from the same seed to compare against
    from helpers.training import build_model
    from helpers.utils import seed_everything

    seed_everything(config.seed)
    untrained = build_model(config, len(result.vocab))
    trained = result.model.encoder.backbone
    assert torch.equal(untrained.encoder.backbone[4][0].conv1.weight, trained[4][0].conv1.weight)
    assert not torch.equal(untrained.encoder.backbone[7][0].conv1.weight, trained[7][0].conv1.weight)


@pytest.fixture
def gpu(monkeypatch):
    """Pretend a CUDA GPU of a given compute capability is there: ``gpu(7, 5)`` is a T4."""

    def pretend(major: int, minor: int) -> torch.device:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        return torch.device("cuda")

    return pretend


def test_tf32_is_switched_on_only_on_gpus_that_have_it(gpu):
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert use_tf32(torch.device("cpu")) is False
        assert use_tf32(gpu(7, 5)) is False  # a T4: no TF32
        assert torch.get_float32_matmul_precision() == "highest"  # neither changes anything
        assert use_tf32(gpu(8, 0)) is True  # only sets a flag: runs without a GPU too
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_precision_follows_the_compute_capability(gpu, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    cpu = torch.device("cpu")
    assert (use_bf16(cpu), autocast_dtype(cpu)) == (False, None)
    assert training_precision(cpu, "fine-tune")[0] is None
    assert "fp32" in training_precision(cpu, "cached")[1]

    t4 = gpu(7, 5)
    assert (use_bf16(t4), autocast_dtype(t4)) == (False, torch.float16)
    dtype, why = training_precision(t4, "fine-tune")
    assert dtype == torch.float16 and "gradient scaling" in why and "7.5" in why
    assert training_precision(t4, "cached")[0] == torch.float16  # no TF32 on a T4 either

    a100 = gpu(8, 0)
    assert (use_bf16(a100), autocast_dtype(a100)) == (True, torch.bfloat16)
    assert training_precision(a100, "fine-tune")[0] == torch.bfloat16
    dtype, why = training_precision(a100, "cached")
    assert dtype is None and "TF32" in why


def test_fit_logs_the_precision_it_chose(shapes, tmp_path):
    messages = []
    fit(shapes, tmp_path / "run", TrainConfig(**TINY), device="cpu", log=messages.append)
    assert messages[0].startswith("Device: cpu. Precision: fp32 (on cpu")


def test_fp16_training_scales_the_loss_and_still_learns(shapes, tmp_path, monkeypatch):
    """The T4 path (fp16 autocast and a GradScaler), run on the CPU: the same loop code runs there."""
    import helpers.training as training

    monkeypatch.setattr(training, "training_precision", lambda device, mode: (torch.float16, "fp16 (test)"))
    config = TrainConfig(**{**TINY, "epochs": 2})
    result = fit(shapes, tmp_path / "fp16", config, device="cpu", log=lambda _: None)
    state = load_checkpoint(tmp_path / "fp16" / CHECKPOINT)
    assert state["scaler"]["scale"] > 0  # the scaler ran and its state is kept for --resume
    losses = list(result.history["train_loss"])
    assert all(0 < loss < 10 for loss in losses) and losses[1] < losses[0]


def test_fine_tune_defaults_fit_a_16_gb_gpu():
    from helpers.training import FINE_TUNE_GPU_BATCH

    assert TrainConfig.for_device("cuda", mode="fine-tune").batch_size == FINE_TUNE_GPU_BATCH == 64
    assert TrainConfig.for_device("cuda", mode="fine-tune", batch_size=32).batch_size == 32
    assert TrainConfig.for_device("cuda").batch_size == 256  # cached features: no backbone activations


def test_fine_tuning_keeps_the_backbone_channels_last(shapes, tmp_path):
    config = TrainConfig(**{**TINY, "mode": "fine-tune", "train_backbone": "last", "batch_size": 32})
    result = fit(shapes, tmp_path / "ft", config, device="cpu", log=lambda _: None)
    weight = result.model.encoder.backbone[0].weight  # extracting dev features each epoch left it so
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_best_and_last_checkpoints_are_kept_apart(shapes, tmp_path, monkeypatch):
    import helpers.training as training

    scores = iter([0.2, 0.5, 0.3])  # epoch 2 is the best, epoch 3 the last
    real = training.evaluate_bleu

    def scripted(*args, **kwargs):
        result, hypotheses = real(*args, **kwargs)
        return {**result, "bleu4": next(scores)}, hypotheses

    monkeypatch.setattr(training, "evaluate_bleu", scripted)
    fit(shapes, tmp_path / "run", TrainConfig(**{**TINY, "epochs": 3}), device="cpu", log=lambda _: None)
    best = load_checkpoint(tmp_path / "run" / training.BEST_CHECKPOINT)
    last = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert (best["epoch"], last["epoch"]) == (2, 3)
    assert "optimizer" not in best and "optimizer" in last  # only resuming needs it
    best_model = load_run(tmp_path / "run", checkpoint="best")[0]
    last_model = load_run(tmp_path / "run")[0]
    key = "decoder.linear.weight"
    assert torch.equal(best_model.state_dict()[key], best["model"][key])
    assert not torch.equal(best_model.state_dict()[key], last_model.state_dict()[key])


def test_dropout_is_off_by_default_and_regularises_when_asked():
    from helpers.training import build_model

    plain = build_model(TrainConfig(**TINY), vocab_size=10)
    assert isinstance(plain.decoder.dropout, torch.nn.Identity)
    dropped = build_model(TrainConfig(**{**TINY, "dropout": 0.5}), vocab_size=10)
    assert set(dropped.state_dict()) == set(plain.state_dict())  # checkpoints stay interchangeable
    features, captions = torch.randn(2, 8), torch.tensor([[1, 4, 2], [1, 5, 2]])
    decoder = dropped.decoder.train()
    assert not torch.equal(decoder(features, captions, [3, 3]), decoder(features, captions, [3, 3]))
    decoder.eval()
    assert torch.equal(decoder(features, captions, [3, 3]), decoder(features, captions, [3, 3]))
    with pytest.raises(ValueError, match="dropout"):
        TrainConfig.from_dict({"dropout": 1.0})


def test_min_freq_default_is_1_on_shapes_and_5_on_real_data(shapes, tmp_path):
    (tmp_path / "flickr").mkdir()
    assert default_min_freq(shapes) == 1
    assert default_min_freq(tmp_path / "flickr") == 5


def test_min_freq_shrinks_the_vocabulary_and_is_stored_in_the_run(shapes, tmp_path):
    full = prepare_data(shapes, min_freq=1, log=lambda _: None).vocab
    rare_cut = prepare_data(shapes, min_freq=50, log=lambda _: None).vocab
    assert len(rare_cut) < len(full)
    fit(shapes, tmp_path / "run", TrainConfig(**{**TINY, "min_freq": 50}), device="cpu", log=lambda _: None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["min_freq"] == 50
    assert len(load_run(tmp_path / "run")[1]) == len(rare_cut)


def test_prepare_data_checks_only_the_splits_asked_for(shapes, monkeypatch):
    import helpers.data as data_module

    decoded = []
    real = data_module.load_image
    monkeypatch.setattr(data_module, "load_image", lambda path: decoded.append(path) or real(path))
    cache = shapes / ".cache" / data_module.IMAGE_CHECKS_FILE
    cache.unlink(missing_ok=True)  # (other tests of this module check every split)
    data = prepare_data(shapes, log=lambda _: None, splits=("test",))
    assert set(data.table["split"]) == {"test"}
    assert sorted(decoded) == sorted(data.images("test"))
    assert len(data.vocab) > 4  # from the train captions, although their images were not decoded


def test_a_caption_file_path_puts_the_cache_beside_the_dataset(tmp_path):
    from helpers.training import dataset_root

    (tmp_path / "coco").mkdir()
    karpathy = tmp_path / "coco" / "dataset_coco.json"
    karpathy.write_text("{}")
    assert dataset_root(karpathy) == tmp_path / "coco"
    assert dataset_root(tmp_path / "coco") == tmp_path / "coco"


def test_a_cache_folder_that_cannot_be_made_fails_before_any_feature_is_computed(tmp_path, monkeypatch):
    import helpers.training as training

    def never(*args, **kwargs):
        raise AssertionError("features were computed before the cache folder was checked")

    monkeypatch.setattr(training, "extract_features", never)
    a_file = tmp_path / "dataset_coco.json"
    a_file.write_text("{}")
    model = training.build_model(TrainConfig(**TINY), vocab_size=10)
    with pytest.raises(OSError):
        cached_features(model, ["x.jpg"], 32, torch.device("cpu"), a_file / ".cache", lambda _: None)


def test_torchrun_processes_wait_as_long_as_asked(monkeypatch):
    from datetime import timedelta

    import helpers.training as training

    joined = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(training.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(training.dist, "init_process_group", lambda backend, **kw: joined.update(kw))
    monkeypatch.setattr(training.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(training.dist, "get_world_size", lambda: 2)
    assert training.distributed_context(torch.device("cpu"), timeout_minutes=90)[:2] == (1, 2)
    assert joined["timeout"] == timedelta(minutes=90)
    training.distributed_context(torch.device("cpu"))
    assert joined["timeout"] == timedelta(minutes=training.DIST_TIMEOUT_MINUTES) > timedelta(minutes=10)
