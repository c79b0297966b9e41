import numpy as np

from helpers.shapes import (
    IMAGE_DIR,
    SPLIT_FILES,
    TOKEN_FILE,
    captions_for,
    make_shapes,
    random_scene,
    split_sizes,
)


def test_split_sizes_match_flickr8k_proportions():
    assert split_sizes(8000) == {"train": 6000, "dev": 1000, "test": 1000}
    assert sum(split_sizes(37).values()) == 37


def test_every_scene_gets_five_captions_naming_its_colours_and_shapes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        scene = random_scene(rng)
        captions = captions_for(scene)
        assert len(captions) == 5 and len(set(captions)) == 5
        for shape in scene.shapes:
            assert all(shape.colour in c and shape.kind in c for c in captions)


def test_two_shape_captions_say_where_the_first_one_is():
    rng = np.random.default_rng(1)
    scenes = [random_scene(rng) for _ in range(40)]
    horizontal = next(s for s in scenes if s.layout == "horizontal")
    vertical = next(s for s in scenes if s.layout == "vertical")
    assert horizontal.shapes[0].x < horizontal.shapes[1].x
    assert "to the left of" in captions_for(horizontal)[0]
    assert vertical.shapes[0].y < vertical.shapes[1].y
    assert " above " in captions_for(vertical)[0]


def test_make_shapes_writes_the_flickr8k_layout_deterministically(tmp_path):
    a = make_shapes(tmp_path / "a", images=16, seed=3)
    b = make_shapes(tmp_path / "b", images=16, seed=3)
    lines = (a / TOKEN_FILE).read_text().splitlines()
    assert len(lines) == 16 * 5
    assert lines[0].startswith("scene_000000.jpg#0\t")
    assert lines == (b / TOKEN_FILE).read_text().splitlines()
    assert (a / IMAGE_DIR / "scene_000007.jpg").read_bytes() == (
        b / IMAGE_DIR / "scene_000007.jpg"
    ).read_bytes()
    names = [n for split in SPLIT_FILES.values() for n in (a / split).read_text().split()]
    assert sorted(names) == sorted(p.name for p in (a / IMAGE_DIR).iterdir())
    assert [len((a / SPLIT_FILES[s]).read_text().split()) for s in ("train", "dev", "test")] == [12, 2, 2]


def test_make_shapes_reuses_a_complete_set_and_rebuilds_on_new_settings(tmp_path):
    root = make_shapes(tmp_path / "s", images=6, seed=0)
    stamp = (root / TOKEN_FILE).stat().st_mtime_ns
    make_shapes(root, images=6, seed=0)
    assert (root / TOKEN_FILE).stat().st_mtime_ns == stamp
    make_shapes(root, images=6, seed=1)
    assert (root / TOKEN_FILE).stat().st_mtime_ns != stamp
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no staging folder left behind


def test_different_seeds_give_different_scenes(tmp_path):
    a = make_shapes(tmp_path / "a", images=6, seed=0)
    b = make_shapes(tmp_path / "b", images=6, seed=1)
    assert (a / TOKEN_FILE).read_text() != (b / TOKEN_FILE).read_text()
