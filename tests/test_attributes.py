"""Tests for helpers.attributes: reading captions in every annotator's style and scoring them."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from helpers.attributes import (
    ATTRIBUTES,
    NOT_SAID,
    Mention,
    attribute_accuracy,
    attribute_confusion,
    attribute_report,
    attribute_table,
    find_scenes,
    match_shapes,
    parse_caption,
    read_scenes,
    scenes_for,
    score_caption,
)
from helpers.scenes import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    SPLIT_FILES,
    TOKEN_FILE,
    TRUTH_FILE,
    Scene,
    Shape,
    captions_for,
    make_shapes,
    random_scene,
)
from helpers.vocabulary import tokenize

RELATION_WORDS = {"left", "right", "above", "below", "top", "bottom", "middle", "centre", "own"}


def scenes_of_every_layout(n: int = 60) -> list[Scene]:
    """Scenes from the generator itself, at least a few of each layout."""
    rng = np.random.default_rng(7)
    scenes = [random_scene(rng) for _ in range(n)]
    assert {s.layout for s in scenes} == {"single", "horizontal", "vertical"}
    return scenes


def reference_cases() -> list[tuple[Scene, int, str]]:
    """Every annotator's caption of every scene: ``(scene, annotator, caption)``."""
    return [(s, k, c) for s in scenes_of_every_layout() for k, c in enumerate(captions_for(s))]


def right(score: dict[str, tuple[int, int]]) -> bool:
    return all(correct == judged for correct, judged in score.values())


def S(kind: str, colour: str, size: str = "large", x: float = 64, y: float = 64) -> Shape:
    return Shape(kind, colour, size, x, y)


RED_LEFT_OF_BLUE = Scene(
    "grey", "horizontal", (S("circle", "red", "small", 32), S("square", "blue", "large", 96))
)


# --- the generator's own phrasings ------------------------------------------------------------------------


@pytest.mark.parametrize("annotator", range(5))
def test_every_reference_caption_reads_back_as_its_scene(annotator):
    for scene, k, caption in reference_cases():
        if k != annotator:
            continue
        facts = parse_caption(caption)
        words = set(tokenize(caption))
        assert [(m.kind, m.colour) for m in facts.shapes] == [(s.kind, s.colour) for s in scene.shapes], (
            caption
        )
        assert facts.count == len(scene.shapes)
        for mention, shape in zip(facts.shapes, scene.shapes, strict=True):
            assert mention.size in (None, shape.size), caption
            assert (mention.size is not None) == bool(words & {"small", "large", "little", "big"}), caption
        assert facts.background == (scene.background if "background" in words else None), caption
        assert facts.layout == (scene.layout if words & RELATION_WORDS else None), caption


def test_every_reference_caption_scores_one_on_everything_it_mentions():
    for scene, _, caption in reference_cases():
        score = score_caption(caption, scene)
        assert right(score), (caption, score)
        assert score["colour"][1] == score["kind"][1] == len(scene.shapes)
        assert score["count"] == score["all"] == (1, 1)


def _changed(scene: Scene, attribute: str) -> Scene | None:
    """The scene with one attribute changed, or None where that change does not apply."""
    first = scene.shapes[0]
    if attribute == "colour":
        unused = next(c for c in COLOURS if c not in {s.colour for s in scene.shapes})
        return replace(scene, shapes=(replace(first, colour=unused), *scene.shapes[1:]))
    if attribute == "kind":
        other = SHAPES[(SHAPES.index(first.kind) + 1) % len(SHAPES)]
        return replace(scene, shapes=(replace(first, kind=other), *scene.shapes[1:]))
    if attribute == "size":
        flipped = replace(first, size={"small": "large", "large": "small"}[first.size])
        return replace(scene, shapes=(flipped, *scene.shapes[1:]))
    if attribute == "background":
        return replace(scene, background=next(b for b in BACKGROUNDS if b != scene.background))
    if attribute == "relation" and scene.layout != "single":
        turned = {"horizontal": "vertical", "vertical": "horizontal"}[scene.layout]
        return replace(scene, layout=turned)
    if attribute == "order" and scene.layout != "single":
        return replace(scene, shapes=scene.shapes[::-1])  # the same two shapes, the other way round
    return None


@pytest.mark.parametrize("attribute", ["colour", "kind", "size", "background", "relation", "order"])
def test_a_reference_caption_is_wrong_about_what_it_mentions_once_the_scene_changes(attribute):
    """Change one thing in the scene: exactly the captions that mention it lose a point, on that attribute."""
    checked = 0
    for scene, _, caption in reference_cases():
        changed = _changed(scene, attribute)
        if changed is None:
            continue
        words = set(tokenize(caption))
        score = score_caption(caption, changed)
        scored_as = "relation" if attribute == "order" else attribute
        mentions = {
            "colour": True,
            "kind": True,
            "size": bool(words & {"small", "large", "little", "big"}),
            "background": "background" in words,
            "relation": bool(words & RELATION_WORDS),
        }[scored_as]
        correct, judged = score[scored_as]
        assert (correct < judged) == mentions, (caption, attribute, score)
        assert (score["all"] == (0, 1)) == mentions, (caption, attribute, score)
        if attribute == "order":  # shapes are matched in any order: only the relation can be wrong
            assert score["colour"][0] == score["kind"][0] == 2
        checked += int(mentions)
    assert checked > 20


# --- omissions and inventions ---------------------------------------------------------------------------


def test_shapes_are_matched_in_any_order():
    score = score_caption("a large blue square and a small red circle", RED_LEFT_OF_BLUE)
    assert right(score) and score["colour"] == (2, 2) and score["size"] == (2, 2)


def test_the_relation_must_be_the_right_way_round():
    assert score_caption("a red circle to the left of a blue square", RED_LEFT_OF_BLUE)["relation"] == (1, 1)
    assert score_caption("a blue square to the right of a red circle", RED_LEFT_OF_BLUE)["relation"] == (1, 1)
    wrong = score_caption("a blue square to the left of a red circle", RED_LEFT_OF_BLUE)
    assert wrong["relation"] == (0, 1) and wrong["object"] == (2, 2) and wrong["all"] == (0, 1)
    assert score_caption("a red circle above a blue square", RED_LEFT_OF_BLUE)["relation"] == (0, 1)
    tagged = "two shapes : a blue square on the right and a red circle on the left"
    assert score_caption(tagged, RED_LEFT_OF_BLUE)["relation"] == (1, 1)


def test_a_shape_left_out_counts_as_a_wrong_colour_and_kind_and_a_wrong_count():
    score = score_caption("a red circle .", RED_LEFT_OF_BLUE)
    assert score["count"] == (0, 1)
    assert score["colour"] == score["kind"] == score["object"] == (1, 2)
    assert score["all"] == (0, 1)
    assert score["size"] == score["background"] == score["relation"] == (0, 0)  # not said, not judged


def test_an_invented_shape_counts_as_a_wrong_colour_and_kind():
    alone = Scene("white", "single", (S("triangle", "green", "small"),))
    score = score_caption("a small green triangle above a large green circle", alone)
    assert score["count"] == (0, 1)
    assert score["colour"] == score["kind"] == (1, 2)
    assert score["size"] == (1, 2)  # the invented shape's size is judged, and wrong
    assert score["relation"] == (0, 1)  # "above" for a shape on its own
    assert score["all"] == (0, 1)


def test_a_colour_without_a_shape_word_is_a_shape_of_unknown_kind():
    facts = parse_caption("a red and a blue square")
    assert facts.shapes == (Mention(None, "red", None), Mention("square", "blue", None))
    score = score_caption("a red and a blue square", RED_LEFT_OF_BLUE)
    assert score["colour"] == (2, 2) and score["kind"] == (1, 2) and score["all"] == (0, 1)


def test_a_shape_without_a_colour_has_a_wrong_colour():
    score = score_caption("a circle to the left of a blue square", RED_LEFT_OF_BLUE)
    assert score["colour"] == (1, 2) and score["kind"] == (2, 2) and score["relation"] == (1, 1)


def test_a_wrong_background_and_a_background_colour_on_a_shape():
    score = score_caption("a grey circle and a blue square on a white background", RED_LEFT_OF_BLUE)
    assert score["background"] == (0, 1)
    assert score["colour"] == (1, 2)
    assert parse_caption("a red circle on a red background").background == "red"
    assert parse_caption("a red circle on a red background").shapes == (Mention("circle", "red", None),)


def test_an_empty_caption_gets_nothing_right():
    score = score_caption("", RED_LEFT_OF_BLUE)
    assert score["count"] == (0, 1) and score["colour"] == (0, 2) and score["all"] == (0, 1)


def test_the_number_word_decides_the_count():
    assert parse_caption("two shapes : a red circle on the left").count == 2
    assert parse_caption("one red circle on its own .").count == 1
    assert parse_caption("a red circle and a red circle and a blue square").count == 3


# --- tables over many captions ----------------------------------------------------------------------------


def test_accuracy_pools_counts_over_images_rather_than_averaging_per_image():
    single = Scene("white", "single", (S("circle", "red"),))
    captions = ["a red circle .", "a blue square and a green triangle ."]
    scenes = [single, RED_LEFT_OF_BLUE]
    accuracy = attribute_accuracy(captions, scenes)
    assert list(accuracy) == list(ATTRIBUTES)
    # the blue square is matched to the scene's (second) blue square, the green triangle to the red circle
    assert accuracy["colour"] == accuracy["kind"] == pytest.approx(2 / 3)  # a mean per image: 0.75
    assert accuracy["count"] == 1.0 and accuracy["all"] == 0.5
    assert math.isnan(accuracy["background"])

    report = attribute_report(captions, scenes)
    assert report.loc["kind", "correct"] == 2 and report.loc["kind", "judged"] == 3
    assert report.loc["size", "stated"] == 0.0 and report.loc["count", "stated"] == 1.0
    table = attribute_table(captions, scenes)
    assert table["all"].tolist() == [1, 0] and table["colour_judged"].tolist() == [1, 2]


def test_confusion_counts_each_true_shape_by_what_was_said():
    scenes = [RED_LEFT_OF_BLUE, Scene("white", "single", (S("triangle", "green"),))]
    captions = ["a red circle to the left of a blue circle", "a green ."]
    kinds = attribute_confusion(captions, scenes, "kind")
    assert kinds.index.tolist() == list(SHAPES)
    assert kinds.columns.tolist() == [*SHAPES, NOT_SAID]
    assert kinds.loc["circle", "circle"] == 1 and kinds.loc["square", "circle"] == 1
    assert kinds.loc["triangle", NOT_SAID] == 1 and int(kinds.to_numpy().sum()) == 3
    colours = attribute_confusion(
        ["a grey circle ."], [Scene("white", "single", (S("circle", "red"),))], "colour"
    )
    assert colours.loc["red", "grey"] == 1 and colours.columns[-1] == NOT_SAID
    with pytest.raises(ValueError, match="attribute must be"):
        attribute_confusion(captions, scenes, "background")


def test_captions_and_scenes_must_pair_up():
    with pytest.raises(ValueError, match="2 captions for 1 scenes"):
        attribute_accuracy(["a", "b"], [RED_LEFT_OF_BLUE])


# --- the truth file ---------------------------------------------------------------------------------------


def test_make_shapes_writes_the_truth_of_every_scene(tmp_path):
    root = make_shapes(tmp_path / "s", images=9, seed=4)
    assert find_scenes(root) == root / TRUTH_FILE
    scenes = read_scenes(root)
    assert sorted(scenes) == [f"scene_{i:06d}.jpg" for i in range(9)]
    for i in range(9):
        drawn = random_scene(np.random.default_rng([4, i]))
        stored = scenes[f"scene_{i:06d}.jpg"]
        assert (stored.background, stored.layout) == (drawn.background, drawn.layout)
        assert [(s.kind, s.colour, s.size) for s in stored.shapes] == [
            (s.kind, s.colour, s.size) for s in drawn.shapes
        ]
        centres = [c for s in drawn.shapes for c in (s.x, s.y)]
        assert [c for s in stored.shapes for c in (s.x, s.y)] == pytest.approx(centres, abs=0.05)


def test_truth_is_absent_from_a_dataset_that_has_none_and_a_bad_line_is_named(tmp_path):
    assert find_scenes(tmp_path) is None
    with pytest.raises(ValueError, match="no truth file"):
        read_scenes(tmp_path)
    good = {"image": "a.jpg", "background": "grey", "layout": "single", "shapes": []}
    (tmp_path / TRUTH_FILE).write_text(json.dumps(good) + "\n" + '{"image": "b.jpg"}\n')
    with pytest.raises(ValueError, match=rf"{TRUTH_FILE}, line 2: not a scene"):
        read_scenes(tmp_path)


def test_scenes_for_looks_images_up_by_file_name():
    scenes = {"scene_000001.jpg": RED_LEFT_OF_BLUE}
    assert scenes_for(["/x/y/scene_000001.jpg"], scenes) == [RED_LEFT_OF_BLUE]
    with pytest.raises(ValueError, match="scene_000002.jpg: no scene"):
        scenes_for(["scene_000002.jpg"], scenes)


# --- every arrangement phrase, stated right and stated wrong ----------------------------------------------

TWO_SHAPES = {
    "horizontal": Scene("grey", "horizontal", (S("circle", "red", "small", 32), S("square", "blue", x=96))),
    "vertical": Scene("grey", "vertical", (S("circle", "red", "small", y=32), S("square", "blue", y=96))),
}
ALONE = Scene("white", "single", (S("circle", "red", "small"),))
# {first} is the left (or top) shape, {second} the other: helpers.scenes.captions_for's phrasings, the
# phrases the scorer also reads ("on its left", "above it"), and one named shape with its side
ARRANGEMENT_PHRASES = {
    "horizontal": (
        "a {first} to the left of a {second}",
        "a {second} to the right of a {first} .",
        "there is a {first} and a {second} on its right",
        "there is a {second} and a {first} on its left",
        "two shapes : a {first} on the left and a {second} on the right",
        "a {first} on the left",
        "a {second} on the right",
    ),
    "vertical": (
        "a {first} above a {second}",
        "a {second} below a {first} .",
        "there is a {first} and a {second} below it",
        "there is a {second} and a {first} above it",
        "two shapes : a {first} on the top and a {second} on the bottom",
        "a {first} on the top",
        "a {second} on the bottom",
    ),
    "single": (
        "a {first} in the middle of the picture",
        "there is a {first} in the centre",
        "one {first} on its own .",
    ),
}
PHRASE_CASES = [(layout, phrase) for layout, phrases in ARRANGEMENT_PHRASES.items() for phrase in phrases]


def _relation(phrase: str, scene: Scene, first: str, second: str) -> tuple[int, int]:
    return score_caption(phrase.format(first=first, second=second), scene)["relation"]


@pytest.mark.parametrize("layout, phrase", PHRASE_CASES)
def test_every_arrangement_phrase_is_right_only_where_it_is_true(layout, phrase):
    if layout == "single":
        assert _relation(phrase, ALONE, "red circle", "") == (1, 1)
        for scene in TWO_SHAPES.values():  # a shape on its own, said of either shape of a pair
            assert _relation(phrase, scene, "red circle", "") == (0, 1)
            assert _relation(phrase, scene, "blue square", "") == (0, 1)
        return
    scene, other = TWO_SHAPES[layout], TWO_SHAPES["vertical" if layout == "horizontal" else "horizontal"]
    assert _relation(phrase, scene, "red circle", "blue square") == (1, 1)  # stated right
    assert _relation(phrase, scene, "blue square", "red circle") == (0, 1)  # the other way round
    assert _relation(phrase, other, "red circle", "blue square") == (0, 1)  # the other layout
    assert _relation(phrase, ALONE, "red circle", "blue square") == (0, 1)  # one shape on its own


@pytest.mark.parametrize("layout", ["horizontal", "vertical"])
def test_contradictory_sides_are_a_wrong_relation(layout):
    near, far = ("left", "right") if layout == "horizontal" else ("top", "bottom")
    scene = TWO_SHAPES[layout]
    for side in (near, far):
        caption = f"two shapes : a red circle on the {side} and a blue square on the {side}"
        score = score_caption(caption, scene)
        assert score["relation"] == (0, 1) and score["object"] == (2, 2) and score["all"] == (0, 1), caption
    both = f"a red circle on the {near} and a blue square on the {far}"
    assert score_caption(both, scene)["all"] == (1, 1)


def test_one_named_shape_is_judged_by_its_own_side():
    scene = TWO_SHAPES["horizontal"]  # the blue square is on the right
    assert score_caption("a blue square on the left", scene)["relation"] == (0, 1)
    assert score_caption("two shapes : a blue square on the left", scene)["all"] == (0, 1)
    assert score_caption("a blue square on the right", scene)["relation"] == (1, 1)
    assert score_caption("a circle on the right and a square", scene)["relation"] == (0, 1)


def test_every_stated_arrangement_is_judged_not_only_the_first():
    scene = TWO_SHAPES["horizontal"]
    assert score_caption("a red circle to the left of a blue square on the left", scene)["relation"] == (0, 1)
    assert score_caption("a red circle to the left of a blue square above it", scene)["relation"] == (0, 1)


def test_a_side_breaks_a_tie_between_shapes_that_look_alike():
    scene = Scene("grey", "horizontal", (S("circle", "red", x=32), S("circle", "blue", x=96)))
    assert score_caption("a circle on the right", scene)["relation"] == (1, 1)
    assert score_caption("a large circle to the right of a large circle", scene)["relation"] == (1, 1)


def test_the_parser_gives_the_token_of_each_word_it_reads():
    facts = parse_caption("a blue square to the right of a small red circle")
    assert [(m.kind, m.colour, m.size) for m in facts.shapes] == [
        ("circle", "red", "small"),
        ("square", "blue", None),
    ]  # in scene order: the circle is the left one
    circle, square = facts.shapes
    assert (circle.size_at, circle.colour_at, circle.kind_at) == (8, 9, 10)
    assert (square.size_at, square.colour_at, square.kind_at) == (None, 1, 2)


def test_the_reference_captions_of_the_test_split_all_score_right():
    """The five reference captions of every test scene in the course's dataset (``make data``)."""
    root = Path(__file__).resolve().parents[1] / "data" / "shapes"
    if not (root / TRUTH_FILE).is_file():
        pytest.skip(f"{root} holds no shapes set: make data draws it")
    images = (root / SPLIT_FILES["test"]).read_text(encoding="utf-8").split()
    captions: dict[str, list[str]] = {name: [] for name in images}
    for line in (root / TOKEN_FILE).read_text(encoding="utf-8").splitlines():
        key, caption = line.split("\t")
        name = key.split("#")[0]
        if name in captions:
            captions[name].append(caption)
    scenes = read_scenes(root)
    pairs = [(caption, scenes[name]) for name in images for caption in captions[name]]
    assert len(pairs) == 5 * len(images) > 0
    table = attribute_table([c for c, _ in pairs], [s for _, s in pairs])
    wrong = table.loc[table["all"] == 0, "caption"].tolist()
    assert wrong == []
    assert table["relation_judged"].sum() > 0.5 * len(pairs)


# --- the tables' exact shape ------------------------------------------------------------------------------


def test_the_table_and_report_name_their_columns_and_pool_counts():
    captions = ["a red circle .", "a blue square and a green triangle ."]
    scenes = [Scene("white", "single", (S("circle", "red"),)), RED_LEFT_OF_BLUE]
    table = attribute_table(captions, scenes)
    names = [c for name in ATTRIBUTES for c in (name, f"{name}_judged")]
    assert table.columns.tolist() == ["caption", *names] and table["caption"].tolist() == captions
    assert attribute_table([], []).columns.tolist() == ["caption", *names]
    report = attribute_report(captions, scenes)
    assert report.columns.tolist() == ["accuracy", "correct", "judged", "stated"]
    assert report.loc["kind", "accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(report.loc["size", "accuracy"])


def test_confusion_counts_repeats_left_out_shapes_and_sizes_by_default_kind():
    scenes = [RED_LEFT_OF_BLUE, RED_LEFT_OF_BLUE]
    captions = ["a red circle .", "a small red circle and a small blue square"]
    kinds = attribute_confusion(captions, scenes)  # "kind" by default
    assert (kinds.index.name, kinds.columns.name) == ("true", "said")
    assert kinds.loc["circle", "circle"] == 2  # counted twice, once per caption
    assert kinds.loc["square", NOT_SAID] == 1 and kinds.loc["square", "square"] == 1  # left out once
    sizes = attribute_confusion(captions, scenes, "size")
    assert sizes.loc["large", "small"] == 1 and sizes.loc["small", "small"] == 1
    assert sizes.loc["small", NOT_SAID] == 1 and sizes.loc["large", NOT_SAID] == 1
    with pytest.raises(ValueError, match="1 captions for 2 scenes"):
        attribute_confusion(["a"], scenes)


def test_confusion_matches_shapes_by_their_stated_places_as_the_score_does():
    scene = Scene("grey", "horizontal", (S("circle", "red", x=32), S("triangle", "blue", x=96)))
    kinds = attribute_confusion(["a square on the right"], [scene], "kind")
    assert kinds.loc["triangle", "square"] == 1 and kinds.loc["circle", NOT_SAID] == 1


def test_read_scenes_reads_on_after_a_blank_line_and_names_the_error(tmp_path):
    good = {"image": "a.jpg", "background": "grey", "layout": "single", "shapes": []}
    lines = [json.dumps(good), "", json.dumps({**good, "image": "b.jpg"}), '{"image": "c.jpg"}']
    (tmp_path / TRUTH_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 4: not a scene \(KeyError: 'background'\)"):
        read_scenes(tmp_path)
    (tmp_path / TRUTH_FILE).write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    assert sorted(read_scenes(tmp_path)) == ["a.jpg", "b.jpg"]


def test_match_shapes_pairs_a_mention_that_agrees_on_nothing_and_needs_no_places():
    alone = Scene("white", "single", (S("circle", "red"),))
    assert match_shapes([Mention(None, None, None)], alone) == [(0, 0)]
    assert match_shapes([Mention("square", "blue", None)], RED_LEFT_OF_BLUE) == [(0, 1), (None, 0)]
    assert match_shapes([], alone) == [(None, 0)]


def test_a_phrase_places_the_shape_it_is_attached_to_even_without_the_other():
    scene = RED_LEFT_OF_BLUE
    assert score_caption("to the left of a blue square", scene)["relation"] == (1, 1)
    assert score_caption("to the left of a red circle", scene)["relation"] == (0, 1)
    assert score_caption("in the middle , a red circle", ALONE)["relation"] == (1, 1)
    assert score_caption("a red circle to the left of", scene)["relation"] == (1, 1)
    # "on its right" places the square right of the shape named just before it, here an invented one
    assert score_caption("a green triangle and a blue square on its right and a red circle", scene)[
        "relation"
    ] == (0, 1)
    assert score_caption("a green triangle and a red circle and a blue square on its right", scene)[
        "relation"
    ] == (1, 1)
    # "on the left" places only the shape it follows
    assert score_caption("a green triangle and a red circle on the left and a blue square", scene)[
        "relation"
    ] == (1, 1)


def test_shapes_are_put_in_scene_order_only_when_the_caption_places_them():
    def order(caption: str) -> list[str | None]:
        return [m.kind for m in parse_caption(caption).shapes]

    assert order("a circle on the left and a square") == ["circle", "square"]
    assert order("a circle and a square on the right") == ["circle", "square"]
    assert order("a circle on the right and a square") == ["square", "circle"]
    assert order("a circle and a square on the left") == ["square", "circle"]
    assert order("a circle and a square in the middle") == ["circle", "square"]


def test_a_background_is_a_colour_word_just_before_background():
    facts = parse_caption("grey background , a red circle")
    assert facts.background == "grey" and facts.shapes == (Mention("circle", "red", None),)
    assert parse_caption("background : a red").background is None


def test_match_shapes_breaks_a_full_tie_towards_the_first_shape():
    twins = Scene("grey", "horizontal", (S("circle", "red", x=32), S("circle", "blue", x=96)))
    assert match_shapes([Mention("circle", None, None)], twins) == [(0, 0), (None, 1)]
