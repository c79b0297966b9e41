"""TrainConfig: one setting for which layers learn, standardisation."""

import json
from dataclasses import asdict

import pytest
import torch

from helpers.batches import TrainingSet, batches
from helpers.config import TrainConfig
from helpers.presets import DEVICE_PRESETS
from helpers.runs import build_model

TINY = dict(embed_size=8, hidden_size=16, image_size=32, weights="random")


def test_one_setting_says_which_layers_learn_and_mode_follows_from_it():
    """``train_backbone`` is the one setting; ``mode`` is read from it and never stored, nor accepted."""
    assert TrainConfig(train_backbone="none").mode == "cached"
    assert TrainConfig(train_backbone="last").mode == "fine-tune"
    assert "mode" not in json.dumps(asdict(TrainConfig()))
    with pytest.raises(ValueError, match=r"unknown configuration keys: \['mode'\]"):
        TrainConfig.from_dict({"mode": "fine-tune"})
    with pytest.raises(ValueError, match="unknown configuration keys"):
        TrainConfig.for_device("cpu", mode="fine-tune")
    with pytest.raises(ValueError, match="train_backbone must be one of"):
        TrainConfig.from_dict({"train_backbone": "layer4"})


def test_the_gpu_preset_without_imagenet_weights_trains_all_of_the_backbone():
    assert DEVICE_PRESETS["gpu-random"]["train_backbone"] == "all"
    assert "mode" not in DEVICE_PRESETS["gpu-random"]
    assert TrainConfig.for_device("cuda", weights="random").train_backbone == "all"


@pytest.mark.parametrize("standardize", [True, False])
def test_build_model_standardises_the_features_only_when_the_config_says_so(standardize):
    import torch

    model = build_model(TrainConfig(**TINY, standardize=standardize), vocab_size=10)
    kind = torch.nn.BatchNorm1d if standardize else torch.nn.Identity
    assert type(model.encoder.standardize) is kind


def _steps_per_epoch(config: TrainConfig, images: int, captions_each: int) -> tuple[int, int]:
    """``(optimizer steps in one epoch, images in a full batch)`` that ``fit`` takes with ``config`` on
    ``images`` images of ``captions_each`` captions, fine-tuning (no stored features)."""
    index = torch.arange(images).repeat_interleave(captions_each)
    rows = len(index)
    train = TrainingSet([f"{i}.png" for i in range(images)], index, torch.ones(rows, 3, dtype=torch.long),
                        torch.full((rows,), 3))
    per_batch = train.per_batch(config.batch_size)
    return len(batches(train.examples, per_batch, torch.Generator().manual_seed(0))), per_batch


@pytest.mark.parametrize(
    "overrides", [{}, {"train_backbone": "all", "image_size": 128}], ids=["gpu-random", "fine-tune-all"]
)
def test_gpu_fine_tuning_takes_118_steps_per_epoch_on_6000_images_of_5_captions(overrides):
    """The shapes set's training split (6 000 images × 5 captions) in the optimizer steps per epoch of
    the H200 run that reached test BLEU-4 1.000 (benchmarks/README.md, "How well it captions"): 256
    captions per step, 30 000 / 256 → 118, each step's backbone batch about 51 images."""
    config = TrainConfig.for_device("cuda", weights="random", **overrides)
    assert config.train_backbone == "all"
    assert _steps_per_epoch(config, 6000, 5) == (118, 51)
    # a set of one caption per image takes the same steps: the batch counts captions, not images
    assert _steps_per_epoch(config, 6000 * 5, 1)[0] == 118
