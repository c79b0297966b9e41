"""TrainConfig: one setting for which layers learn, standardisation."""

import json
from dataclasses import asdict

import pytest

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
