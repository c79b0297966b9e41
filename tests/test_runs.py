"""Run folders: checkpoints with their vocabulary, and a Run that captions files and PIL images."""

import pytest
import torch
from PIL import Image

from helpers.config import TrainConfig
from helpers.data import image_transform, load_image
from helpers.decoding import decode_features
from helpers.runs import CHECKPOINT, Run, build_model, load_checkpoint, load_run, save_run
from helpers.training import make_optimizer
from helpers.vocabulary import Vocabulary

TINY = dict(embed_size=8, hidden_size=16, image_size=32, weights="random", max_decode=6)
WORDS = ["a", "red", "blue", "circle", "square", "on", "the", "left"]


@pytest.fixture
def run_dir(tmp_path):
    """A tiny untrained run as fit writes it, its decoder sharpened so that captions differ by image."""
    torch.manual_seed(0)
    config, vocab = TrainConfig(**TINY), Vocabulary(WORDS)
    model = build_model(config, len(vocab))
    with torch.no_grad():
        model.decoder.linear.weight.mul_(30)
    optimizer, scheduler = make_optimizer(model, config, steps_per_epoch=2)
    history = [{"epoch": 1, "dev_bleu4": 0.1}]
    save_run(tmp_path, model, optimizer, scheduler, 1, vocab, config, history, "random", best=True)
    return tmp_path


@pytest.fixture
def images(tmp_path):
    paths = []
    for i, colour in enumerate(("red", "navy", "white")):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (40, 30), colour).save(path)
        paths.append(path)
    return paths


def test_a_checkpoint_stores_the_vocabulary_as_to_dict_writes_it(run_dir):
    assert load_checkpoint(run_dir / CHECKPOINT)["vocab"] == Vocabulary(WORDS).to_dict()


def test_run_load_gives_the_model_its_vocabulary_configuration_and_device(run_dir):
    run = Run.load(run_dir, torch.device("cpu"))
    assert isinstance(run, Run) and run.device == torch.device("cpu")
    assert run.vocab == Vocabulary(WORDS) and run.config == TrainConfig(**TINY)
    assert not run.model.training
    assert load_run(run_dir, "cpu").config == run.config  # the same thing, from the function


def test_caption_reads_files_and_pil_images_at_the_configured_size(run_dir, images):
    run = Run.load(run_dir)
    assert run.pixels(images).shape == (3, 3, 32, 32)
    by_path = run.caption(images)
    assert run.caption([load_image(p) for p in images]) == by_path
    assert run.caption([str(p) for p in images]) == by_path
    pixels = torch.stack([image_transform(32)(load_image(p)) for p in images])
    with torch.no_grad():
        pooled = run.model.encoder.backbone_features(pixels)
    assert by_path == decode_features(run.model, pooled, run.vocab, "cpu", max_len=6)
    assert len(set(by_path)) > 1  # the images really are looked at
    assert run.caption([]) == []


def test_caption_with_a_beam_and_a_word_limit(run_dir, images):
    run = Run.load(run_dir)
    assert all(len(c.split()) <= 2 for c in run.caption(images, max_len=2))
    assert any(len(c.split()) > 2 for c in run.caption(images))  # (max_decode 6 otherwise)
    pixels = run.pixels(images)
    with torch.no_grad():
        pooled = run.model.encoder.backbone_features(pixels)
    beam = decode_features(run.model, pooled, run.vocab, "cpu", beam=3, max_len=6)
    assert run.caption(images, beam_size=3) == beam
    with pytest.raises(ValueError, match="beam_size must be 1 or more"):
        run.caption(images, beam_size=0)


def test_one_checkpoint_rule_run_load_reads_best_pt_unless_asked_for_the_last(run_dir):
    """A run's figures come from best.pt (the epoch with the best dev BLEU-4): Run.load, load_run and the
    command line's --checkpoint all default to it, so a notebook and `evaluate` report the same model."""
    first = load_run(run_dir, checkpoint="last").model.state_dict()
    config, vocab = TrainConfig(**TINY), Vocabulary(WORDS)
    later = build_model(config, len(vocab))  # epoch 2: other weights, worse on dev
    optimizer, scheduler = make_optimizer(later, config, steps_per_epoch=2)
    history = [{"epoch": 1, "dev_bleu4": 0.1}, {"epoch": 2, "dev_bleu4": 0.05}]
    save_run(run_dir, later, optimizer, scheduler, 2, vocab, config, history, "random")
    weight = "decoder.linear.weight"
    assert torch.equal(Run.load(run_dir).model.state_dict()[weight], first[weight])
    assert torch.equal(load_run(run_dir).model.state_dict()[weight], first[weight])
    last = Run.load(run_dir, checkpoint="last").model.state_dict()[weight]
    assert torch.equal(last, later.state_dict()[weight])


def test_one_checkpoint_rule_the_command_line_defaults_to_the_same_checkpoint_as_run_load():
    import inspect

    from helpers.cli import build_parser

    parser = build_parser()
    for command in ("evaluate", "caption"):
        extra = ["a.png"] if command == "caption" else ["--data", "data/shapes"]
        args = parser.parse_args([command, "--run", "runs/x", *extra])
        assert args.checkpoint == inspect.signature(Run.load).parameters["checkpoint"].default == "best"
