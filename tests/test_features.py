"""Features of the backbone: extracting them leaves the caller's model as it was."""

import torch
from PIL import Image

from helpers.config import TrainConfig
from helpers.data import image_transform, load_image
from helpers.features import extract_features
from helpers.runs import build_model


def test_extract_features_leaves_the_models_mode_and_layout_alone(tmp_path, monkeypatch):
    monkeypatch.setattr("helpers.features.autocast_dtype", lambda device: None)  # fp32, as compared below
    paths = []
    for i, colour in enumerate(("red", "navy", "white")):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (40, 30), colour).save(paths[-1])
    torch.manual_seed(0)
    config = TrainConfig(embed_size=8, hidden_size=16, weights="random", train_backbone="last")
    model = build_model(config, vocab_size=10).train()  # as fit's model is between epochs when fine-tuning
    weight = model.encoder.backbone[0].weight
    before = weight.detach().clone()
    features = extract_features(model, paths, 32, torch.device("cpu"))
    assert features.shape == (3, 2048) and features.dtype == torch.float32
    assert model.encoder.backbone[7].training and model.encoder.bn.training  # still training
    assert not model.encoder.backbone[4].training  # (a frozen layer stays in eval mode, as before)
    assert model.encoder.backbone[0].weight is weight and weight.is_contiguous()  # the layout it had
    assert torch.equal(weight, before)
    # the encoder's own backbone_features in eval mode (up to the rounding of channels-last convolutions)
    model.eval()
    pixels = torch.stack([image_transform(32)(load_image(p)) for p in paths])
    with torch.no_grad():
        torch.testing.assert_close(features, model.encoder.backbone_features(pixels), rtol=1e-3, atol=1e-4)
