"""TrainConfig: one setting for which layers learn, older configuration files, standardisation."""

import json
from dataclasses import asdict

import pytest

from helpers.config import TrainConfig
from helpers.presets import DEVICE_PRESETS
from helpers.runs import build_model

TINY = dict(embed_size=8, hidden_size=16, image_size=32, weights="random")


@pytest.mark.parametrize(
    ("mode", "train_backbone", "expected"),
    [
        ("cached", "last", "none"),
        ("cached", "all", "none"),
        ("fine-tune", "last", "last"),
        ("fine-tune", "all", "all"),
    ],
)
def test_a_config_file_with_the_older_mode_key_loads_as_the_one_setting(mode, train_backbone, expected):
    """What config.json held before: both keys, ``train_backbone`` meaningful only when fine-tuning."""
    old = {**asdict(TrainConfig()), "mode": mode, "train_backbone": train_backbone}
    del old["standardize"]  # nor did it have this key
    config = TrainConfig.from_dict(old)
    assert (config.train_backbone, config.mode) == (expected, mode)
    assert config.standardize is True
    assert "mode" not in json.dumps(asdict(config))  # what is written now: one key


def test_the_older_mode_key_alone_still_picks_the_mode():
    assert TrainConfig.from_dict({"mode": "fine-tune"}).train_backbone == "last"
    assert TrainConfig.from_dict({"mode": "cached"}).train_backbone == "none"
    assert TrainConfig.for_device("cuda", weights="imagenet", mode="fine-tune").train_backbone == "last"
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
