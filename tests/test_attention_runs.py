"""The attention captioner as a run kind: configuration, grid cache, training batches, decoding with maps,
checkpoints, and the command line (train, caption, evaluate, resume, torchrun)."""

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace

import pytest
import torch
from shared import TINY_CONFIG

from helpers.attention import AttentionCaptioner, AttentionDecoder, GridEncoder
from helpers.batches import TrainingSet
from helpers.config import TrainConfig
from helpers.decoding import beam_search, decode_features, greedy
from helpers.features import _fingerprint, cached_features
from helpers.models import Captioner
from helpers.runs import Run, build_model, load_checkpoint, load_run, save_run
from helpers.scenes import IMAGE_DIR
from helpers.vocabulary import Vocabulary

TINY_ATTENTION = {**TINY_CONFIG, "decoder": "attention", "feature_size": 8, "attention_size": 8}
ATTENTION_FLAGS = [
    "--device", "cpu", "--decoder", "attention", "--epochs", "1", "--image-size", "32",
    "--hidden-size", "16", "--batch-size", "16", "--weights", "random",
]


def run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CAPTION_PROGRESS": "0"},
    )


@pytest.fixture
def vocab():
    return Vocabulary.build(["a red circle", "a blue square on the left", "two green triangles"], min_freq=1)


def quiet(_):
    pass


def test_the_decoder_kind_defaults_to_show_tell_and_for_device_picks_the_attention_preset():
    assert TrainConfig().decoder == "show-tell"
    assert TrainConfig.for_device("cpu").decoder == "show-tell"
    config = TrainConfig.for_device("cpu", decoder="attention")
    assert (config.decoder, config.stage, config.strides) == ("attention", "layer1", (2, 2))
    assert config.image_size == 64
    assert (config.feature_size, config.embed_size, config.hidden_size, config.attention_size) == (
        128, 128, 256, 128,
    )
    assert (config.epochs, config.lr, config.penalty) == (8, 4e-3, 0.0)
    assert TrainConfig.for_device("cpu", decoder="attention", epochs=2).epochs == 2


def test_config_refuses_an_unknown_decoder_stage_or_a_fine_tuned_attention_run():
    with pytest.raises(ValueError, match="decoder must be one of"):
        TrainConfig.from_dict({"decoder": "transformer"})
    with pytest.raises(ValueError, match="stage must be one of"):
        TrainConfig.from_dict({"decoder": "attention", "stage": "layer9"})
    with pytest.raises(ValueError, match="attention"):
        TrainConfig.from_dict({"decoder": "attention", "train_backbone": "all"})


def test_strides_read_from_json_become_a_tuple():
    config = TrainConfig.from_dict(json.loads(json.dumps(asdict(TrainConfig(**TINY_ATTENTION)))))
    assert config.strides == (2, 2) and config == TrainConfig(**TINY_ATTENTION)


def test_checkpoint_round_trip_rebuilds_the_attention_model_and_records_its_kind(tmp_path, vocab):
    torch.manual_seed(0)
    config = TrainConfig(**{**TINY_ATTENTION, "stage": "layer2", "strides": (1, 2)})
    model = build_model(config, len(vocab))
    assert isinstance(model, AttentionCaptioner) and model.encoder.stage == "layer2"
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    save_run(tmp_path, model, optimizer, scheduler, 1, vocab, config, [{"dev_bleu4": 0.1}], "random", True)
    stored = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert stored["decoder"] == "attention" and stored == load_checkpoint(tmp_path / "best.pt")["config"]
    loaded = load_run(tmp_path)
    assert isinstance(loaded.model, AttentionCaptioner) and loaded.config == config
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)
    assert isinstance(build_model(TrainConfig(**TINY_CONFIG), len(vocab)), Captioner)


def test_grid_cache_key_changes_with_the_stage_and_grids_are_stored_in_fp16(shapes, tmp_path):
    paths = sorted(str(p) for p in (shapes / IMAGE_DIR).iterdir())[:3]
    device = torch.device("cpu")
    torch.manual_seed(0)
    first = AttentionCaptioner(10, stage="layer1", weights="random")
    torch.manual_seed(0)
    second = AttentionCaptioner(10, stage="layer2", weights="random")
    assert _fingerprint(first, paths, 32, device, None) != _fingerprint(second, paths, 32, device, None)
    assert _fingerprint(first, paths, 32, device, None) != _fingerprint(first, paths, 64, device, None)
    grids = cached_features(first, paths, 32, device, tmp_path, quiet)
    assert grids.dtype == torch.float16 and grids.shape == (3, 256, 8, 8)
    again = cached_features(first, paths, 32, device, tmp_path, quiet)
    assert torch.equal(again, grids) and len(list(tmp_path.iterdir())) == 1


def test_attention_batches_hold_whole_images_each_grid_once():
    image_index = torch.tensor([0, 1, 0, 2, 1, 0])
    captions = torch.arange(6).unsqueeze(1).repeat(1, 4)
    lengths = torch.full((6,), 4)
    grids = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 2, 4, 4).half()
    train = TrainingSet(["a", "b", "c"], image_index, captions, lengths, grids, by_image=True)
    assert train.examples == 3 and train.per_batch(4) == 2
    order = [torch.tensor([2, 0])]
    ((inputs, image_of), batch_captions, _), = list(train.batches(order, torch.device("cpu"), 32))
    assert inputs.shape == (2, 2, 4, 4) and inputs[:, 0, 0, 0].tolist() == [2.0, 0.0]
    assert image_of.tolist() == [0, 1, 1, 1]
    assert batch_captions[:, 0].tolist() == [3, 0, 2, 5]


@pytest.fixture
def decoder(vocab):
    torch.manual_seed(0)
    return AttentionDecoder(6, 5, 7, len(vocab), 4).eval()


def teacher_forced_maps(decoder, features, ids, vocab):
    """The maps and gates of every step of ``ids`` (its words, then ``<end>``), teacher-forced."""
    tokens = torch.tensor([[vocab.start_id, *ids, vocab.end_id]])
    state = decoder.initial_state(features)
    alphas, betas = [], []
    for token in tokens[0, :-1]:
        _, state = decoder.step(decoder.embed(token.view(1)), state)
        alphas.append(state.alpha[0])
        betas.append(state.beta[0])
    return torch.stack(alphas), torch.stack(betas)


def test_greedy_returns_maps_and_gates_of_every_emitted_word(decoder, vocab):
    torch.manual_seed(2)
    features = torch.randn(3, 5, 6) * 3
    decoded, attention = greedy(decoder, features, vocab, max_len=6, return_attention=True)
    steps = attention.alphas.shape[1]
    assert attention.alphas.shape == (3, steps, 5) and attention.betas.shape == (3, steps, 6)
    for b, ids in enumerate(decoded.ids):
        alphas, betas = teacher_forced_maps(decoder, features[b : b + 1], ids, vocab)
        n = min(len(alphas), steps)
        torch.testing.assert_close(attention.alphas[b, :n], alphas[:n])
        torch.testing.assert_close(attention.betas[b, :n], betas[:n])


def test_beam_returns_the_maps_of_the_kept_hypothesis(decoder, vocab):
    torch.manual_seed(1)
    features = torch.randn(4, 5, 6) * 3
    decoded, attention = beam_search(decoder, features, vocab, beam=3, max_len=6, return_attention=True)
    assert decoded == beam_search(decoder, features, vocab, beam=3, max_len=6)
    assert attention.alphas.shape[0] == 4 and attention.alphas.shape[2] == 5
    for b, ids in enumerate(decoded.ids):
        alphas, betas = teacher_forced_maps(decoder, features[b : b + 1], ids, vocab)
        n = min(len(alphas), attention.alphas.shape[1])
        torch.testing.assert_close(attention.alphas[b, :n], alphas[:n])
        torch.testing.assert_close(attention.betas[b, :n], betas[:n])


def test_beam_of_one_is_greedy_with_the_same_maps(decoder, vocab):
    torch.manual_seed(3)
    features = torch.randn(5, 5, 6) * 3
    greedy_decoded, greedy_maps = greedy(decoder, features, vocab, max_len=6, return_attention=True)
    beam_decoded, beam_maps = beam_search(decoder, features, vocab, beam=1, max_len=6, return_attention=True)
    assert beam_decoded == greedy_decoded
    for b, ids in enumerate(greedy_decoded.ids):
        n = min(len(ids) + 1, greedy_maps.alphas.shape[1])
        torch.testing.assert_close(beam_maps.alphas[b, :n], greedy_maps.alphas[b, :n])


def test_decode_features_captions_cached_grids_of_an_attention_model(vocab):
    torch.manual_seed(0)
    model = build_model(TrainConfig(**TINY_ATTENTION), len(vocab)).eval()
    grids = torch.randn(3, 256, 8, 8).half()
    with torch.no_grad():
        features = model.encoder.project_features(grids)
    expected = greedy(model.decoder, features, vocab, max_len=5).captions
    assert decode_features(model, grids, vocab, "cpu", max_len=5) == expected


def test_run_caption_works_for_an_attention_run(shapes, vocab):
    torch.manual_seed(0)
    config = TrainConfig(**TINY_ATTENTION)
    model = build_model(config, len(vocab)).eval()
    images = sorted((shapes / IMAGE_DIR).iterdir())[:2]
    captions = Run(model, vocab, config, torch.device("cpu")).caption(images, max_len=4)
    grids = model.encoder.backbone_features(Run(model, vocab, config, torch.device("cpu")).pixels(images))
    assert captions == decode_features(model, grids, vocab, "cpu", max_len=4)


@pytest.fixture(scope="module")
def attention_run(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "attention"
    done = run("-m", "helpers", "train", "--data", str(shapes), "--out", str(out), *ATTENTION_FLAGS)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dev BLEU-4" in done.stdout and "Decoder: attention over layer1 grids, λ 0.0." in done.stdout
    return out


def test_train_decoder_attention_writes_an_attention_run(attention_run):
    config = json.loads((attention_run / "config.json").read_text(encoding="utf-8"))
    assert config["decoder"] == "attention" and config["stage"] == "layer1"
    assert isinstance(load_run(attention_run).model, AttentionCaptioner)


def test_caption_greedy_and_beam_on_an_attention_run(attention_run, shapes):
    image = shapes / IMAGE_DIR / "scene_000001.jpg"
    for beam in ("1", "2"):
        done = run("-m", "helpers", "caption", "--run", str(attention_run), str(image), "--beam", beam,
                   "--device", "cpu")
        assert done.returncode == 0 and done.stdout.startswith(f"{image}\t"), done.stderr[-2000:]


def test_evaluate_json_on_an_attention_run(attention_run, shapes):
    done = run("-m", "helpers", "evaluate", "--run", str(attention_run), "--data", str(shapes), "--json",
               "--device", "cpu")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["decoder"] == "attention" and 0 <= result["bleu4"] <= 1 and "attributes" in result
    assert result["grounded_words"] > 0 and 0 <= result["attention_on_object"] <= 1
    assert 0 <= result["attention_mass_on_object"] <= 1
    assert 0 <= result["uniform"]["attention_on_object"] <= 1  # the same words scored with a uniform map
    assert 0 <= result["first_word_first_shape"]["attention_on_object"] <= 1


def test_an_attention_run_resumes_with_more_epochs(attention_run, shapes, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for path in attention_run.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    done = run("-m", "helpers", "train", "--data", str(shapes), "--out", str(out), "--resume",
               *[flag if flag != "1" else "2" for flag in ATTENTION_FLAGS])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Resuming after epoch 1 of 2" in done.stdout and "epoch 2/2" in done.stdout
    assert load_run(out, checkpoint="last").config.decoder == "attention"


def test_torchrun_trains_an_attention_run_with_two_processes(shapes, tmp_path):
    out = tmp_path / "ddp"
    done = run(
        "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29527",
        "-m", "helpers", "train", "--data", str(shapes), "--out", str(out), *ATTENTION_FLAGS,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("epoch 1/1") == 1 and "2 processes" in done.stdout
    assert isinstance(load_run(out).model, AttentionCaptioner)


def test_help_of_train_names_the_decoder_flag_and_imports_no_torch():
    done = run("-c", "import sys; from helpers.cli import main\n"
               "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
               "print('torch' in sys.modules)")
    assert "--decoder" in done.stdout and done.stdout.strip().endswith("False")


def test_the_grid_encoder_offers_parameter_groups_like_the_pooled_one():
    encoder = GridEncoder("layer1", 8, "random")
    groups = encoder.parameter_groups()
    assert groups["backbone"] == [] and len(groups["head"]) == len(list(encoder.adapter.parameters()))
    assert replace(TrainConfig(), decoder="attention").decoder == "attention"
