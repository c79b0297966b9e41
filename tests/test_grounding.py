"""Tests for helpers.grounding: attention on the right object, on hand-built maps over known scenes."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from helpers.grounding import cell_centres, grounded_words, grounding_report, prior_map
from helpers.scenes import RADIUS, Scene, Shape

# Drawn at 128 px; the model reads 64 px, so these centres are (20, 32) and (50, 32) there. The uniform
# map's weighted centre is the image centre (32, 32): 12 px from the circle, 18 px from the square.
SHAPES = (Shape("circle", "red", "large", 40.0, 64.0), Shape("square", "blue", "small", 100.0, 64.0))
SCENE = Scene("white", "horizontal", SHAPES)
CAPTION = "a red circle to the left of a blue square"  # red 1, circle 2 → shape 0; blue 8, square 9 → shape 1
SIZE = 64


def planted(cells: int, x: float, y: float) -> torch.Tensor:
    """A map ``[N]`` with all its weight on the cell whose centre is nearest (x, y) (input pixels)."""
    alpha = torch.zeros(cells)
    alpha[(cell_centres(cells, SIZE) - torch.tensor([x, y], dtype=torch.float64)).norm(dim=1).argmin()] = 1.0
    return alpha


def maps_for(cells: int, looks: dict[int, int], elsewhere: int) -> torch.Tensor:
    """``[11, N]``: step k planted on shape ``looks[k]``, every other step on shape ``elsewhere``."""
    centres = [(s.x / 2, s.y / 2) for s in SCENE.shapes]
    return torch.stack([planted(cells, *centres[looks.get(k, elsewhere)]) for k in range(11)])


def test_grounded_words_are_the_matched_colour_and_shape_words_at_their_positions():
    words, excluded = grounded_words(CAPTION, SCENE)
    assert [(w.position, w.word, w.shape, w.order) for w in words] == [
        (1, "red", 0, 0),
        (2, "circle", 0, 0),
        (8, "blue", 1, 1),
        (9, "square", 1, 1),
    ]
    assert excluded == 0


def test_map_planted_on_the_named_shape_scores_one_and_full_mass_on_a_16x16_grid():
    # Every step but the four that emitted a colour or shape word looks at the wrong shape, so reading
    # the map of the step before or after each word changes the answer. A 4 px cell next to a shape's
    # centre lies inside its disc.
    maps = maps_for(256, {1: 0, 2: 0, 8: 1, 9: 1}, elsewhere=1)
    maps[[0, 3, 7, 10]] = maps_for(256, {}, elsewhere=0)[[0, 3, 7, 10]]
    report = grounding_report([CAPTION], maps.unsqueeze(0), [SCENE], image_size=SIZE)
    assert report.grounded_words == 4
    assert report.attention_on_object == 1.0
    assert report.attention_mass_on_object == pytest.approx(1.0)


def test_map_planted_on_the_named_shape_on_a_4x4_grid_is_on_object_with_part_of_a_cell_in_the_disc():
    maps = maps_for(16, {1: 0, 2: 0, 8: 1, 9: 1}, elsewhere=1)
    report = grounding_report([CAPTION], maps.unsqueeze(0), [SCENE], image_size=SIZE)
    assert report.attention_on_object == 1.0
    assert report.uniform_mass_on_object < report.attention_mass_on_object < 1.0


@pytest.mark.parametrize("cells", [16, 256])
def test_map_planted_on_the_other_shape_scores_zero(cells):
    maps = maps_for(cells, {1: 1, 2: 1, 8: 0, 9: 0}, elsewhere=0)
    report = grounding_report([CAPTION], maps.unsqueeze(0), [SCENE], image_size=SIZE)
    assert report.attention_on_object == 0.0
    assert report.attention_mass_on_object == 0.0


@pytest.mark.parametrize("cells", [16, 256])
def test_uniform_map_scores_by_geometry(cells):
    # The uniform centre (32, 32) is nearer the circle: on object for its two words, not for the
    # square's. Its mass is each disc's share of the image, π r² / 64² (both discs lie inside it).
    uniform = torch.full((1, 11, cells), 1 / cells)
    report = grounding_report([CAPTION], uniform, [SCENE], image_size=SIZE)
    share = [math.pi * (RADIUS[s.size] * SIZE) ** 2 / SIZE**2 for s in SCENE.shapes]
    assert report.attention_on_object == 0.5
    assert report.attention_mass_on_object == pytest.approx((2 * share[0] + 2 * share[1]) / 4, rel=0.01)
    assert report.uniform_on_object == report.attention_on_object
    assert report.uniform_mass_on_object == pytest.approx(report.attention_mass_on_object)


def test_scene_coordinates_are_scaled_from_the_size_they_were_drawn_at():
    maps = maps_for(256, {1: 0, 2: 0, 8: 1, 9: 1}, elsewhere=0).unsqueeze(0)
    halved = Scene("white", "horizontal", tuple(replace(s, x=s.x / 2, y=s.y / 2) for s in SHAPES))
    drawn_at_128 = grounding_report([CAPTION], maps, [SCENE], image_size=SIZE)
    drawn_at_64 = grounding_report([CAPTION], maps, [halved], image_size=SIZE, scene_size=64)
    not_scaled = grounding_report([CAPTION], maps, [SCENE], image_size=SIZE, scene_size=SIZE)
    assert drawn_at_64 == drawn_at_128
    assert drawn_at_128.attention_mass_on_object > 0.5
    assert not_scaled.attention_mass_on_object == 0.0


def test_single_shape_scene_is_left_out_and_counted():
    single = Scene("grey", "single", (Shape("circle", "red", "large", 64.0, 64.0),))
    report = grounding_report(["a red circle"], torch.full((1, 4, 16), 1 / 16), [single], image_size=SIZE)
    assert report.grounded_words == 0
    assert report.single_shape_captions == 1
    assert math.isnan(report.attention_on_object)
    assert report.as_dict()["attention_on_object"] is None


def test_a_word_naming_no_matched_shape_is_left_out_and_counted():
    caption = "a red circle and a blue square and a green triangle"
    words, excluded = grounded_words(caption, SCENE)
    assert {w.word for w in words} == {"red", "circle", "blue", "square"}
    assert excluded == 2  # "green", "triangle": a third shape the scene does not hold
    report = grounding_report([caption], torch.full((1, 13, 16), 1 / 16), [SCENE], image_size=SIZE)
    assert (report.grounded_words, report.excluded_words) == (4, 2)


def test_first_word_first_shape_prior_passes_only_when_the_left_shape_is_named_first():
    backwards = "a blue square to the right of a red circle"
    uniform = torch.full((1, 11, 16), 1 / 16)
    in_order = grounding_report([CAPTION], uniform, [SCENE], image_size=SIZE)
    reversed_ = grounding_report([backwards], uniform, [SCENE], image_size=SIZE)
    assert in_order.prior_on_object == 1.0
    assert reversed_.prior_on_object == 0.0


@pytest.mark.parametrize("cells", [16, 256])
def test_prior_map_is_centred_on_the_fixed_quarter_position(cells):
    alpha = prior_map(SCENE, 0, cells, SIZE)
    centre = (alpha.unsqueeze(1) * cell_centres(cells, SIZE)).sum(dim=0)
    assert alpha.sum() == pytest.approx(1.0)
    torch.testing.assert_close(centre, torch.tensor([16.0, 32.0], dtype=torch.float64))


def test_too_few_maps_and_a_grid_that_is_not_square_are_refused():
    with pytest.raises(ValueError, match="word 8 but 5 maps"):
        grounding_report([CAPTION], torch.full((1, 5, 16), 1 / 16), [SCENE], image_size=SIZE)
    with pytest.raises(ValueError, match="not a square grid"):
        grounding_report([CAPTION], torch.full((1, 11, 12), 1 / 12), [SCENE], image_size=SIZE)


def test_report_as_dict_is_json_ready_with_both_baselines():
    report = grounding_report([CAPTION], maps_for(16, {}, elsewhere=0).unsqueeze(0), [SCENE], image_size=SIZE)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["attention_on_object"] == 0.5
    assert (
        set(data["uniform"])
        == set(data["first_word_first_shape"])
        == {
            "attention_on_object",
            "attention_mass_on_object",
            "attention_on_object_reordered",
        }
    )
    assert data["grounded_words"] == 4


def test_words_of_a_caption_naming_the_right_shape_first_are_scored_apart():
    # On these words the left-then-right prior looks at the wrong shape: a map that follows the named
    # shape scores 1 there, a map that always looks left first scores 0. Blue 1 and square 2 name shape 1,
    # red 8 and circle 9 shape 0.
    backwards = "a blue square to the right of a red circle"
    looking = maps_for(256, {1: 1, 2: 1, 8: 0, 9: 0}, elsewhere=0).unsqueeze(0)
    habit = maps_for(256, {1: 0, 2: 0, 8: 1, 9: 1}, elsewhere=0).unsqueeze(0)
    report = grounding_report([backwards, CAPTION], torch.cat([looking, looking]), [SCENE, SCENE], SIZE)
    assert report.reordered_words == 4
    assert report.attention_on_object_reordered == 1.0
    assert report.prior_on_object_reordered == 0.0
    assert report.uniform_on_object_reordered == 0.5
    assert grounding_report([backwards], habit, [SCENE], SIZE).attention_on_object_reordered == 0.0
    in_order = grounding_report([CAPTION], looking, [SCENE], SIZE)
    assert in_order.reordered_words == 0 and math.isnan(in_order.attention_on_object_reordered)
    assert report.as_dict()["attention_on_object_reordered"] == 1.0
