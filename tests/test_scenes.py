import json

import numpy as np
import pytest

from helpers import scenes
from helpers.scenes import (
    IMAGE_DIR,
    MARKER,
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


def test_every_split_gets_an_image_even_in_the_smallest_set():
    assert split_sizes(3) == {"train": 1, "dev": 1, "test": 1}
    assert split_sizes(4) == {"train": 2, "dev": 1, "test": 1}
    assert split_sizes(8) == {"train": 6, "dev": 1, "test": 1}  # unchanged where there is room


def test_make_shapes_refuses_a_non_empty_folder_it_did_not_make_and_deletes_nothing(tmp_path):
    (tmp_path / "README.md").write_text("my notes\n")
    (tmp_path / "flickr8k").mkdir()
    (tmp_path / "flickr8k" / "a.jpg").write_bytes(b"a photo")
    with pytest.raises(ValueError) as info:
        make_shapes(tmp_path, images=3)
    message = str(info.value)
    assert str(tmp_path) in message and "--force" in message and "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "flickr8k"]
    assert (tmp_path / "README.md").read_text() == "my notes\n"
    assert (tmp_path / "flickr8k" / "a.jpg").read_bytes() == b"a photo"


def test_make_shapes_refuses_a_path_that_is_a_file_even_with_force(tmp_path):
    path = tmp_path / "shapes"
    path.write_text("not a folder\n")
    for force in (False, True):
        with pytest.raises(ValueError, match="is a file"):
            make_shapes(path, images=3, force=force)
    assert path.read_text() == "not a folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no staging folder left behind


def test_force_writes_beside_foreign_files_without_touching_them(tmp_path):
    (tmp_path / "README.md").write_text("my notes\n")
    make_shapes(tmp_path, images=3, force=True)
    assert (tmp_path / "README.md").read_text() == "my notes\n"
    assert len(list((tmp_path / IMAGE_DIR).iterdir())) == 3
    # its own set, next to the notes, is then replaced by new settings; the notes stay
    make_shapes(tmp_path, images=4, seed=1)
    assert (tmp_path / "README.md").read_text() == "my notes\n"
    assert len(list((tmp_path / IMAGE_DIR).iterdir())) == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [MARKER]


def test_force_refuses_to_replace_a_dataset_folder_it_did_not_write(tmp_path):
    (tmp_path / IMAGE_DIR).mkdir()
    (tmp_path / IMAGE_DIR / "1000268201_693b08cb0e.jpg").write_bytes(b"a real Flickr8k photo")
    with pytest.raises(ValueError, match=IMAGE_DIR):
        make_shapes(tmp_path, images=3, force=True)
    assert [p.name for p in (tmp_path / IMAGE_DIR).iterdir()] == ["1000268201_693b08cb0e.jpg"]


def test_rebuilding_its_own_set_keeps_other_files_in_the_folder(tmp_path):
    root = make_shapes(tmp_path / "s", images=3, seed=0)
    (root / ".cache").mkdir()
    (root / ".cache" / "features-x.pt").write_bytes(b"cached")
    make_shapes(root, images=3, seed=0, force=True)
    make_shapes(root, images=5, seed=2)
    assert (root / ".cache" / "features-x.pt").read_bytes() == b"cached"
    assert len((root / TOKEN_FILE).read_text().splitlines()) == 5 * 5
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_an_interrupted_replacement_is_still_recognised_as_its_own(tmp_path, monkeypatch):
    root = make_shapes(tmp_path / "s", images=3, seed=0)
    calls = []

    def crash(src, dst):
        calls.append(dst)
        raise KeyboardInterrupt  # the learner presses Ctrl-C halfway through moving files into place

    monkeypatch.setattr(scenes.shutil, "move", crash)
    with pytest.raises(KeyboardInterrupt):
        make_shapes(root, images=4, seed=1)
    monkeypatch.undo()
    assert calls and not (root / MARKER).exists()  # a half-replaced set never looks complete
    make_shapes(root, images=4, seed=1)  # no --force needed: the folder is still its own
    assert len(list((root / IMAGE_DIR).iterdir())) == 4


def test_a_marker_naming_paths_outside_the_folder_deletes_nothing_there(tmp_path):
    root = make_shapes(tmp_path / "s", images=3, seed=0)
    keep = tmp_path / "keep.txt"
    keep.write_text("precious\n")
    record = json.loads((root / MARKER).read_text())
    record["files"] = ["../keep.txt", *record["files"]]
    (root / MARKER).write_text(json.dumps(record))
    make_shapes(root, images=4, seed=1)
    assert keep.read_text() == "precious\n"
