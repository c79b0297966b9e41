"""Tests for helpers.attention_plots: one heat map per word, over the image, and the gate β per word."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from helpers.attention_plots import plot_gate, show_attention, upsample_map

WORDS = ["a", "red", "circle", "above", "a", "blue", "square", "<end>"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def one_hot_maps(steps: int, cells: int) -> torch.Tensor:
    """``[steps, cells]``: step k looks only at cell k (mod cells)."""
    return torch.eye(cells)[torch.arange(steps) % cells]


def test_upsample_map_puts_the_weight_where_the_cell_is_and_keeps_the_sum():
    heat = upsample_map(one_hot_maps(16, 16)[5], 64)  # cell 5 of 4×4: row 1, column 1 → pixels 16–31
    assert heat.shape == (64, 64)
    assert heat.sum() == pytest.approx(1.0, rel=1e-5)
    row, col = np.unravel_index(heat.argmax(), heat.shape)
    assert 16 <= row < 32 and 16 <= col < 32


@pytest.mark.parametrize("cells", [16, 256])
def test_show_attention_draws_one_panel_per_word_titled_with_it_over_the_image(cells):
    image = Image.new("RGB", (64, 64), "white")
    figure = show_attention(image, WORDS, one_hot_maps(9, cells), columns=4)
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == WORDS
    assert len(figure.axes) == 8  # 2 rows × 4 columns
    for ax in panels:
        assert ax.images[0].get_array().shape == (64, 64, 3)  # the image
        assert ax.images[1].get_array().shape == (64, 64)  # its word's map, upsampled to it
    assert figure.get_suptitle() == " ".join(WORDS)


def test_show_attention_draws_row_k_of_the_maps_under_word_k():
    maps = one_hot_maps(8, 16)
    figure = show_attention(torch.rand(3, 32, 32), WORDS, maps, columns=8)
    for k, ax in enumerate(figure.axes):
        heat = ax.images[1].get_array()
        np.testing.assert_allclose(heat, upsample_map(maps[k], 32), rtol=1e-6)


def test_show_attention_refuses_fewer_maps_than_words():
    with pytest.raises(ValueError, match="8 words but maps for 3 steps"):
        show_attention(Image.new("RGB", (32, 32)), WORDS, one_hot_maps(3, 16))


def test_plot_gate_draws_one_bar_per_word_with_its_beta():
    betas = torch.linspace(0.1, 0.8, 9)
    figure = plot_gate(WORDS, betas)
    (ax,) = figure.axes
    assert [label.get_text() for label in ax.get_xticklabels()] == WORDS
    heights = [bar.get_height() for bar in ax.patches]
    np.testing.assert_allclose(heights, betas[:8].numpy(), rtol=1e-6)
    assert ax.get_ylim() == (0.0, 1.0)
    assert ax.get_ylabel() == "β"


def test_plot_gate_averages_a_gate_per_feature():
    betas = torch.tensor([[0.0, 1.0], [0.2, 0.4]])
    ax = plot_gate(["a", "circle"], betas).axes[0]
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], [0.5, 0.3], rtol=1e-6)
    assert ax.get_ylabel() == "β, mean over features"
