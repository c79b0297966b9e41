"""The error gallery: the worst and best images by a per-image score, wrong words marked from the truth."""

import matplotlib
import pytest
from matplotlib.colors import same_color
from matplotlib.text import Text
from PIL import Image

from helpers.gallery import WRONG_COLOUR, gallery_table, show_error_gallery, wrong_words
from helpers.scenes import Scene, Shape

matplotlib.use("Agg")

PAIR = Scene(
    "black", "horizontal", (Shape("circle", "red", "small", 30, 60), Shape("square", "blue", "large", 90, 60))
)
SINGLE = Scene("white", "single", (Shape("circle", "red", "large", 60, 60),))


def test_wrong_words_are_the_positions_of_each_wrong_colour_kind_and_size():
    caption = "a large green circle to the left of a large blue triangle"
    assert wrong_words(caption, PAIR) == {1: "size", 2: "colour", 11: "kind"}
    assert wrong_words("a small red circle to the left of a large blue square", PAIR) == {}


def test_wrong_words_mark_every_word_of_an_invented_shape():
    assert wrong_words("a red circle and a blue square", SINGLE) == {5: "colour", 6: "kind"}


def test_gallery_table_ranks_worst_first_then_best_without_repeating_an_image():
    images = [f"img{i}.png" for i in range(5)]
    scores = [0.5, 0.1, 2.0, 0.1, 3.0]
    table = gallery_table(images, ["a red circle"] * 5, [["a red circle"]] * 5, scores, worst=2, best=2)
    assert list(table["image"]) == ["img1.png", "img3.png", "img4.png", "img2.png"]
    assert list(table["group"]) == ["worst", "worst", "best", "best"]
    assert table["wrong"].isna().all()  # no scenes: nothing to highlight
    overlapping = gallery_table(images, ["a red circle"] * 5, [["a red circle"]] * 5, scores, worst=3, best=3)
    assert list(overlapping["image"]) == ["img1.png", "img3.png", "img0.png", "img4.png", "img2.png"]
    with pytest.raises(ValueError, match="4 scores"):
        gallery_table(images, ["a"] * 5, [["a"]] * 5, scores[:4])


@pytest.fixture
def pictures(tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"scene_{i}.png"
        Image.new("RGB", (16, 16), (200, 30 * i, 30)).save(path)
        paths.append(str(path))
    return paths


def _texts(figure, colour=None) -> list[str]:
    found = [t for t in figure.findobj(Text) if t.get_text().strip()]
    return [t.get_text() for t in found if colour is None or same_color(t.get_color(), colour)]


def test_gallery_highlights_the_wrong_words_from_the_scene_truth(pictures):
    captions = ["a large green circle to the left of a large blue triangle", "a red circle and a blue square"]
    references = [["a small red circle to the left of a large blue square"], ["a large red circle"]]
    table = gallery_table(pictures, captions, references, [0.2, 0.9], scenes=[PAIR, SINGLE], worst=1, best=1)
    figure = show_error_gallery(table, columns=2)
    assert _texts(figure, WRONG_COLOUR) == ["large", "green", "triangle", "blue", "square"]
    words = _texts(figure)
    assert words[:4] == ["a", "large", "green", "circle"] and "worst · CIDEr-D 0.20" in words
    wrapped = "a small red circle to the left of a large blue square"  # wrapped over two lines
    assert any(wrapped in " ".join(text.split()) for text in words)


def test_gallery_without_scene_truth_shows_references_only(pictures):
    table = gallery_table(pictures, ["a green circle", "a dog"], [["a red circle"], ["a cat"]], [0.1, 0.5])
    figure = show_error_gallery(table, columns=2)
    assert _texts(figure, WRONG_COLOUR) == []
    assert any("a red circle" in text for text in _texts(figure)) and "dog" in _texts(figure)
