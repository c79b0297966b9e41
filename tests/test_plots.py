"""Tests for helpers.plots (and the data-flow diagram): the figures hold what they claim to show."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.data import image_transform
from helpers.diagrams import DIAGRAMS, data_flow_figure
from helpers.plots import (
    caption_length_histogram,
    plot_confusion,
    plot_history,
    plot_lr_schedule,
    show_captions,
    show_examples,
    show_image_pipeline,
)


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


def test_plot_lr_schedule_draws_every_step_and_marks_the_epochs():
    lrs = [0.1, 0.5, 1.0, 0.6, 0.3, 0.01]
    figure = plot_lr_schedule(lrs, steps_per_epoch=2)
    ax = figure.axes[0]
    assert list(ax.lines[0].get_ydata()) == lrs
    assert sorted(line.get_xdata()[0] for line in ax.lines[1:]) == [2, 4]  # epoch boundaries
    assert "peak 1" in ax.get_title() and "end 0.01" in ax.get_title()
    with pytest.raises(ValueError, match="no learning rates"):
        plot_lr_schedule([])


def test_plot_history_draws_the_loss_and_four_bleu_curves():
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [2.0, 1.0, 0.5]}
        | {f"dev_bleu{n}": [0.1 * n, 0.15 * n, 0.2 * n] for n in range(1, 5)}
    )
    loss_ax, bleu_ax = plot_history(history).axes
    assert list(loss_ax.lines[0].get_ydata()) == [2.0, 1.0, 0.5]
    assert [line.get_label() for line in bleu_ax.lines] == [f"BLEU-{n}" for n in range(1, 5)]
    assert list(bleu_ax.lines[3].get_ydata()) == pytest.approx([0.4, 0.6, 0.8])
    with pytest.raises(ValueError, match="dev_bleu4"):
        plot_history(history.drop(columns="dev_bleu4"))


def test_show_captions_titles_each_image_with_the_model_extra_columns_and_references(caption_table):
    table = pd.DataFrame(
        {
            "image": caption_table["image"].unique(),
            "generated": ["a red one", "a green one", "a blue one", "a yellow one"],
            "beam 3": ["B0", "B1", "B2", "B3"],
            "references": [["r0 first", "r0 second", "r0 third"]] * 4,
        }
    )
    figure = show_captions(table, n=4, columns=2, references=2)
    titles = [ax.get_title(loc="left") for ax in figure.axes if ax.get_title(loc="left")]
    assert len(titles) == 4
    for title in titles:
        lines = title.splitlines()
        assert lines[0].startswith("model: a ") and lines[1].startswith("beam 3: B")
        assert "ref 1: r0 first" in title and "ref 2: r0 second" in title and "r0 third" not in title
    assert len(figure.axes) == 4 and all(ax.images for ax in figure.axes)
    with pytest.raises(ValueError, match="asked for 5 images"):
        show_captions(table, n=5)


def test_plot_confusion_shades_each_row_by_its_shares_and_labels_the_counts():
    matrix = pd.DataFrame(
        [[8, 2, 0, 0], [1, 1, 0, 0], [0, 0, 0, 4]],
        index=pd.Index(["circle", "square", "triangle"], name="true"),
        columns=pd.Index(["circle", "square", "triangle", "(not said)"], name="said"),
    )
    figure = plot_confusion(matrix, title="kinds")
    (ax,) = figure.axes
    shown = ax.images[0].get_array()
    assert shown.shape == (3, 4)
    assert shown[0, 0] == pytest.approx(0.8) and shown[1, 0] == pytest.approx(0.5)  # per row, not overall
    assert shown[2, 3] == pytest.approx(1.0)
    assert [t.get_text() for t in ax.texts] == ["8", "2", "0", "0", "1", "1", "0", "0", "0", "0", "0", "4"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["circle", "square", "triangle"]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "(not said)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("what the caption says", "truth")
    assert ax.get_title() == "kinds"
    with pytest.raises(ValueError, match="empty"):
        plot_confusion(pd.DataFrame())
