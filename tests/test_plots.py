"""Tests for helpers.plots (and the data-flow diagram): the figures hold what they claim to show."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.data import image_transform
from helpers.diagrams import DIAGRAMS, data_flow_figure
from helpers.plots import caption_length_histogram, show_examples, show_image_pipeline


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def caption_table(tmp_path) -> pd.DataFrame:
    """Four tiny images, two captions each, in the caption-table layout."""
    rows = []
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (16, 12), colour).save(path)
        rows += [(str(path), f"a {colour} picture", "train"), (str(path), f"all {colour}", "train")]
    return pd.DataFrame(rows, columns=["image", "caption", "split"])


def test_show_examples_draws_n_images_titled_with_their_own_captions(caption_table):
    figure = show_examples(caption_table, n=3, columns=2, captions_per_image=2, seed=1)
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 3
    assert len(figure.axes) == 4  # 2×2 grid, the fourth one blank
    for ax in shown:
        title = ax.get_title(loc="left")
        colour = title.split()[2]
        assert title == f"1. a {colour} picture\n2. all {colour}"
        assert ax.images[0].get_array().shape == (12, 16, 3)


def test_show_examples_picks_the_same_images_for_the_same_seed(caption_table):
    def titles(seed):
        return [ax.get_title(loc="left") for ax in show_examples(caption_table, n=2, seed=seed).axes]

    assert titles(0) == titles(0)
    assert len({tuple(titles(seed)) for seed in range(6)}) > 1


def test_show_examples_refuses_more_images_than_the_table_has(caption_table):
    with pytest.raises(ValueError, match="asked for 5 images, the table holds 4"):
        show_examples(caption_table, n=5)


def test_caption_length_histogram_has_one_bar_per_length_with_its_count():
    figure = caption_length_histogram([3, 5, 5, 7, 7, 7])
    bars = figure.axes[0].patches
    assert [(bar.get_x() + bar.get_width() / 2, bar.get_height()) for bar in bars] == [
        (3, 1),
        (5, 2),
        (7, 3),
    ]


def test_show_image_pipeline_shows_the_de_normalised_tensor_in_0_1():
    image = Image.new("RGB", (20, 10), (255, 0, 0))
    tensor = image_transform(32)(image)
    figure = show_image_pipeline(image, tensor)
    first, _, last = (ax.images[0].get_array() for ax in figure.axes)
    assert first.shape == (10, 20, 3)
    assert last.shape == (32, 32, 3)
    assert last.min() >= 0 and last.max() <= 1
    assert last[..., 0].mean() == pytest.approx(1.0, abs=1e-4)  # pure red comes back as red
    assert last[..., 1].max() == pytest.approx(0.0, abs=1e-4)


def test_show_image_pipeline_rejects_a_batch():
    with pytest.raises(ValueError, match=r"expected a \[3, H, W\] tensor, got \[1, 3, 8, 8\]"):
        show_image_pipeline(Image.new("RGB", (8, 8)), torch.zeros(1, 3, 8, 8))


def test_data_flow_diagram_is_registered_and_names_the_helpers():
    assert DIAGRAMS["data_flow"] is data_flow_figure
    text = " ".join(t.get_text() for t in data_flow_figure().axes[0].texts)
    for name in ["load_captions", "load_image", "image_transform", "tokenize", "collate_captions"]:
        assert name in text
