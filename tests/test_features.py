"""Features of the backbone: extracting them leaves the caller's model as it was."""

import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import Compose, Resize, ToTensor

from helpers import features
from helpers.batches import TrainingSet, encode_captions
from helpers.config import TrainConfig
from helpers.data import image_transform, load_image
from helpers.features import extract_features
from helpers.runs import build_model
from helpers.vocabulary import Vocabulary


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


def _three_images(folder) -> list:
    paths = []
    for i, colour in enumerate(("red", "navy", "white")):
        paths.append(folder / f"{i}.png")
        Image.new("RGB", (40, 30), colour).save(paths[-1])
    return paths


def test_feature_cache_is_not_reused_when_only_the_autocast_dtype_differs(tmp_path, monkeypatch):
    """Features computed in fp32 must not be read back by a run that computes them under bf16 autocast
    (a GPU's), nor the reverse: the two give other numbers."""
    paths = _three_images(tmp_path)
    torch.manual_seed(0)
    model = build_model(TrainConfig(embed_size=8, hidden_size=16, weights="random"), vocab_size=10)
    cpu, messages = torch.device("cpu"), []
    monkeypatch.setattr(features, "autocast_dtype", lambda device: None)
    fp32 = features.cached_features(model, paths, 32, cpu, tmp_path / "cache", messages.append)
    monkeypatch.setattr(features, "autocast_dtype", lambda device: torch.bfloat16)
    bf16 = features.cached_features(model, paths, 32, cpu, tmp_path / "cache", messages.append)
    assert not any("Reusing" in m for m in messages), messages
    assert not torch.equal(fp32, bf16)  # bf16 rounding: another set of numbers
    assert len(list((tmp_path / "cache").glob("features-*.pt"))) == 2
    again = features.cached_features(model, paths, 32, cpu, tmp_path / "cache", messages.append)
    assert "Reusing" in messages[-1] and torch.equal(again, bf16)


def test_feature_cache_key_changes_with_each_thing_that_changes_the_numbers(tmp_path, monkeypatch):
    """The autocast dtype, the device type, the transform and the backbone's cut each change the key on
    their own; the same settings give the same key."""
    paths = [str(p) for p in _three_images(tmp_path)]
    torch.manual_seed(0)
    model = build_model(TrainConfig(embed_size=8, hidden_size=16, weights="random"), vocab_size=10)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")

    def key(device=cpu, dtype=None, size=32):
        return features._fingerprint(model, paths, size, device, dtype)

    base = key()
    assert key() == base
    assert key(size=48) != base  # the images resized to another size
    assert key(dtype=torch.bfloat16) != base
    assert key(cuda, torch.bfloat16) != key(cuda, torch.float16)
    assert key(cuda) != base  # fp32 on a GPU (TF32 convolutions) is not a CPU's fp32
    pool = model.encoder.backbone[8]
    model.encoder.backbone[8] = torch.nn.AdaptiveMaxPool2d(1)  # another cut: no weights, other numbers
    assert key() != base
    model.encoder.backbone[8] = pool
    assert key() == base
    monkeypatch.setattr(features, "image_transform", lambda size: Compose([Resize((size, size)), ToTensor()]))
    assert key() != base  # unnormalised pixels


def test_fine_tuning_batches_hold_whole_images_each_decoded_once(tmp_path):
    """Without stored features an epoch is batched by image: ``order`` indexes images, every batch decodes
    each of its images once, and holds all of their captions, each pointing at its own image."""
    colours = ("red", "navy", "white", "yellow")
    paths = []
    for i, colour in enumerate(colours):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (40, 30), colour).save(paths[-1])
    image_index = torch.tensor([1, 0, 3, 1, 2, 0, 3, 1])  # 2, 3, 1 and 2 captions: unequal, interleaved
    captions = torch.arange(8).unsqueeze(1) + 4  # row r says token r + 4: which row a caption came from
    train = TrainingSet(paths, image_index, captions, torch.ones(8, dtype=torch.long))
    assert (train.examples, train.per_batch(4)) == (4, 2)  # 4 images; about 4 captions = 2 images
    order = [torch.tensor([2, 0]), torch.tensor([3, 1])]
    pixels_of = torch.stack([image_transform(32)(load_image(p)) for p in paths])
    seen = []
    epoch = list(train.batches(order, torch.device("cpu"), 32))
    assert len(epoch) == len(order)
    for batch_images, ((pixels, image_of), batch_captions, lengths) in zip(order, epoch, strict=True):
        rows = batch_captions[:, 0] - 4
        assert pixels.shape[0] == 2 and len(rows) == len(image_of) == len(lengths)
        torch.testing.assert_close(pixels, pixels_of[batch_images])  # each image once
        assert sorted(rows.tolist()) == [r for r in range(8) if image_index[r] in batch_images.tolist()]
        assert batch_images[image_of].tolist() == image_index[rows].tolist()  # a caption → its image
        seen += rows.tolist()
    assert sorted(seen) == list(range(8))
    cached = TrainingSet(paths, image_index, captions, torch.ones(8), features=torch.zeros(4, 2048))
    assert (cached.examples, cached.per_batch(4)) == (8, 4)  # stored features: batches of captions


def test_encode_captions_cuts_each_caption_to_max_words_and_points_at_its_image():
    vocab = Vocabulary(["a", "red", "circle", "on", "the", "left"])
    table = pd.DataFrame({"image": ["b.png", "a.png"], "caption": ["a red circle on the left", "a circle"]})
    index, captions, lengths = encode_captions(table, ["a.png", "b.png"], vocab, max_words=3)
    assert index.tolist() == [1, 0] and index.dtype == torch.long
    assert lengths.tolist() == [5, 4]
    assert [vocab.decode(row[: int(n)].tolist()) for row, n in zip(captions, lengths, strict=True)] == [
        ["a", "red", "circle"],
        ["a", "circle"],
    ]


def test_fine_tuning_batches_give_channels_last_pixels_and_skip_an_image_without_captions(tmp_path):
    paths = []
    for i, colour in enumerate(("red", "navy", "white")):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (40, 30), colour).save(paths[-1])
    image_index = torch.tensor([0, 1, 0])  # the last image has no caption
    train = TrainingSet(paths, image_index, torch.arange(3).unsqueeze(1), torch.ones(3, dtype=torch.long))
    rows, image_of = train.caption_rows(torch.tensor([2, 0]))
    assert rows.tolist() == [0, 2] and image_of.tolist() == [1, 1]
    (pixels, image_of), captions, _ = next(
        iter(train.batches([torch.tensor([2, 0])], torch.device("cpu"), 32))
    )
    assert pixels.is_contiguous(memory_format=torch.channels_last) and not pixels.is_contiguous()
    assert image_of.tolist() == [1, 1] and captions[:, 0].tolist() == [0, 2]


def test_caption_rows_keep_the_tables_order_within_each_image():
    """The same batches whatever sort torch picks: each image's rows come in the table's order."""
    image_index = torch.arange(200) % 7  # rows of one image are 7 apart, interleaved with the others
    train = TrainingSet([f"{i}.png" for i in range(7)], image_index, torch.zeros(200, 1), torch.ones(200))
    rows, image_of = train.caption_rows(torch.tensor([3, 0]))
    assert rows.tolist() == list(range(3, 200, 7)) + list(range(0, 200, 7))
    assert image_of.tolist() == [0] * 29 + [1] * 29


def _last_line(text: str) -> str:
    """What a terminal shows last of a tqdm bar written to a stream (it redraws with carriage returns)."""
    return text.replace("\n", "\r").rstrip("\r").split("\r")[-1].strip()


def test_an_epoch_shows_a_named_bar_of_its_batches_that_clears_itself(capsys, monkeypatch):
    train = TrainingSet(["a.png", "b.png"], torch.tensor([0, 1, 0]), torch.ones(3, 2), torch.ones(3))
    train.features = torch.zeros(2, 2048)
    order = [torch.tensor([0, 1]), torch.tensor([2])]
    monkeypatch.setenv("CAPTION_PROGRESS", "1")
    assert len(list(train.batches(order, torch.device("cpu"), 32))) == 2  # no label: no bar
    assert capsys.readouterr().err == ""
    assert len(list(train.batches(order, torch.device("cpu"), 32, label="epoch 1"))) == 2
    shown = capsys.readouterr().err
    assert "epoch 1:   0%|" in shown and "| 0/2 [" in shown, shown
    assert _last_line(shown) == ""  # leave=False: the bar is gone once the epoch ends
    monkeypatch.setenv("CAPTION_PROGRESS", "0")
    assert len(list(train.batches(order, torch.device("cpu"), 32, label="epoch 1"))) == 2
    assert capsys.readouterr().err == ""
