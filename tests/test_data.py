from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.data import (
    CaptionDataset,
    ImageLoadError,
    check_images,
    collate_captions,
    denormalize,
    image_transform,
    load_image,
    pad_captions,
    to_rgb,
)
from helpers.vocabulary import Vocabulary


def red_left_blue_right(mode: str = "RGB") -> Image.Image:
    """A 40x20 picture, red on the left half and blue on the right."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    return Image.fromarray(pixels).convert(mode) if mode != "RGB" else Image.fromarray(pixels)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK", "1", "LA", "YCbCr"])
def test_to_rgb_turns_every_mode_into_rgb_of_the_same_size(mode):
    image = to_rgb(red_left_blue_right(mode))
    assert image.mode == "RGB" and image.size == (40, 20)


def test_to_rgb_keeps_colours_of_palette_and_cmyk_images():
    for mode in ("P", "CMYK"):
        pixels = np.asarray(to_rgb(red_left_blue_right(mode)), dtype=int)
        assert pixels[10, 5, 0] > 200 and pixels[10, 5, 2] < 60, mode
        assert pixels[10, 35, 2] > 200 and pixels[10, 35, 0] < 60, mode


def test_to_rgb_scales_16_bit_greyscale_instead_of_clipping_it():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = to_rgb(Image.fromarray(values))
    assert np.asarray(image)[0, :, 0].tolist() == [0, 128, 255]


def test_to_rgb_lays_transparent_pixels_on_white():
    image = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 0, 255))
    assert np.asarray(to_rgb(image)).tolist() == [[[255, 255, 255], [255, 0, 0]]]


def test_load_image_applies_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    red_left_blue_right().save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.size == (20, 40)  # width and height swapped: upright now
    top, bottom = np.asarray(image)[2, 10], np.asarray(image)[37, 10]
    assert top[0] > 200 and bottom[2] > 200  # red came round to the top


def test_load_image_reads_a_greyscale_16_bit_png(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)).save(path)
    assert np.asarray(load_image(path)).min() == 255


def test_load_image_names_the_file_for_broken_input(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    truncated = tmp_path / "truncated.jpg"
    red_left_blue_right().resize((200, 200)).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:600])
    for path, reason in [
        (empty, "empty"),
        (text, "not an image"),
        (truncated, "truncated"),
        (tmp_path / "missing.jpg", "no such file"),
    ]:
        with pytest.raises(ImageLoadError, match=reason) as error:
            load_image(path)
        assert str(path) in str(error.value)


def test_load_image_refuses_a_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (40000, 40000)).save(path)  # tiny on disk, 1.6 billion pixels when opened
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path)


def test_transform_gives_a_normalised_224_tensor_and_denormalize_inverts_it():
    image = red_left_blue_right()
    x = image_transform()(image)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert x.min() < -1.5 and x.max() > 2.0  # normalised, not in [0, 1]
    back = denormalize(x)
    assert torch.allclose(back[:, 100, 10], torch.tensor([1.0, 0.0, 0.0]), atol=1e-5)


def test_check_images_separates_readable_from_broken_files(tmp_path):
    good = tmp_path / "good.png"
    red_left_blue_right().save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    readable, skipped = check_images([str(good), str(bad)])
    assert readable == [str(good)]
    assert [s.item for s in skipped] == [str(bad)] and "not an image" in skipped[0].reason


def _images(folder, n):
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        red_left_blue_right().save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    return paths


def test_check_images_names_empty_and_truncated_jpegs_in_parallel(tmp_path):
    paths = _images(tmp_path, 6)
    (tmp_path / "empty.jpg").write_bytes(b"")
    whole = tmp_path / "whole.jpg"
    red_left_blue_right().resize((400, 200)).save(whole, quality=95)
    (tmp_path / "cut.jpg").write_bytes(whole.read_bytes()[:600])
    order = [paths[0], str(tmp_path / "empty.jpg"), *paths[1:], str(tmp_path / "cut.jpg")]
    readable, skipped = check_images(order, workers=3)
    assert readable == paths  # in their order, whatever order the threads finished in
    assert [s.item for s in skipped] == [str(tmp_path / "empty.jpg"), str(tmp_path / "cut.jpg")]
    assert "empty" in skipped[0].reason and "truncated" in skipped[1].reason.lower()


def test_image_checks_are_remembered_until_a_file_changes(tmp_path, monkeypatch):
    import helpers.data as data_module

    paths = _images(tmp_path / "images", 4)
    cache = tmp_path / ".cache" / data_module.IMAGE_CHECKS_FILE
    decoded = []
    real = data_module.load_image
    monkeypatch.setattr(data_module, "load_image", lambda path: decoded.append(path) or real(path))
    assert check_images(paths, cache_file=cache)[0] == paths
    assert sorted(decoded) == sorted(paths)
    decoded.clear()
    assert check_images(paths, cache_file=cache)[0] == paths
    assert decoded == []  # nothing decoded the second time
    Path(paths[2]).write_bytes(b"")  # a file that changed (and broke) since
    readable, skipped = check_images(paths, cache_file=cache)
    assert decoded == [paths[2]] and [s.item for s in skipped] == [paths[2]]
    decoded.clear()
    assert [s.item for s in check_images(paths, cache_file=cache)[1]] == [paths[2]]  # broken, remembered
    assert decoded == []


def test_a_file_at_the_cache_path_that_is_not_ours_is_left_alone(tmp_path):
    paths = _images(tmp_path / "images", 2)
    cache = tmp_path / ".cache" / "image-checks.json"
    cache.parent.mkdir()
    cache.write_text('{"my": "notes"}')
    notes = []
    assert check_images(paths, cache_file=cache, log=notes.append)[0] == paths
    assert cache.read_text() == '{"my": "notes"}'
    assert len(notes) == 1 and str(cache) in notes[0] and "left as it is" in notes[0]
    assert [p.name for p in cache.parent.iterdir()] == ["image-checks.json"]  # no temporary file left


def test_check_images_shows_a_progress_bar_only_when_asked(tmp_path, capsys):
    paths = _images(tmp_path, 3)
    check_images(paths, progress=False)
    assert "checking images" not in capsys.readouterr().err
    check_images(paths, progress=True)
    assert "checking images" in capsys.readouterr().err


def test_pad_captions_pads_with_zero_and_keeps_order():
    padded, lengths = pad_captions(
        [torch.tensor([1, 5, 2]), torch.tensor([1, 5, 6, 7, 2]), torch.tensor([1, 2])]
    )
    assert lengths.tolist() == [3, 5, 2]
    assert padded.tolist() == [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2], [1, 2, 0, 0, 0]]


def test_dataset_and_collate_give_images_padded_tokens_and_lengths(tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        red_left_blue_right().save(paths[-1])
    captions = ["a red square", "a blue circle to the right of a red square", "red"]
    vocab = Vocabulary.build(captions)
    dataset = CaptionDataset(paths, captions, vocab, image_transform(64))
    images, padded, lengths = collate_captions([dataset[i] for i in range(3)])
    assert images.shape == (3, 3, 64, 64)
    assert padded.shape == (3, 12) and lengths.tolist() == [5, 12, 3]
    assert vocab.decode(padded[1].tolist()) == captions[1].split()


def test_dataset_max_words_cuts_words_and_keeps_start_and_end(tmp_path):
    path = str(tmp_path / "0.png")
    red_left_blue_right().save(path)
    caption = "a blue circle to the right of a red square"
    vocab = Vocabulary.build([caption])
    _, ids = CaptionDataset([path], [caption], vocab, image_transform(64), max_words=3)[0]
    assert vocab.decode(ids.tolist(), strip_special=False) == ["<start>", "a", "blue", "circle", "<end>"]


def test_dataset_refuses_unpaired_lists():
    with pytest.raises(ValueError, match="pair up"):
        CaptionDataset(["a.jpg"], [], Vocabulary([]), image_transform())
