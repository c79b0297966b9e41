"""Tests for helpers.widgets: the step-by-step decoder, and its widgets driven without a browser."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

import ipywidgets as widgets
import pytest
import torch
from PIL import Image

from helpers.config import TrainConfig
from helpers.data import image_transform
from helpers.decoding import greedy
from helpers.models import Captioner
from helpers.runs import Run
from helpers.vocabulary import END, Vocabulary
from helpers.widgets import (
    CaptionStepper,
    DecodingExplorer,
    decoding_explorer,
    top_words_html,
    uploaded_files,
)

WORDS = ["a", "red", "blue", "circle", "square", "on", "the", "left"]
SIZE = 32  # pixels: the smallest ResNet50 input that still pools to [2048, 1, 1] comfortably


@pytest.fixture(scope="module")
def model_and_vocab():
    torch.manual_seed(0)
    vocab = Vocabulary(WORDS)
    model = Captioner(len(vocab), embed_size=8, hidden_size=16, weights="random").eval()
    with torch.no_grad():  # an untrained decoder is nearly uniform; sharpen it so choices are visible
        model.decoder.linear.weight.mul_(30)
    return model, vocab


def as_run(model: Captioner, vocab: Vocabulary) -> Run:
    """The model as a trained run that reads images at ``SIZE`` pixels, on the CPU."""
    return Run(model, vocab, TrainConfig(image_size=SIZE), torch.device("cpu"))


@pytest.fixture
def images(tmp_path):
    paths = []
    for colour in ("red", "blue"):
        path = tmp_path / f"{colour}.png"
        Image.new("RGB", (40, 30), colour).save(path)
        paths.append(path)
    return paths


def never_ending(model: Captioner, vocab: Vocabulary, word: str) -> Captioner:
    """The same model, but its decoder always says ``word`` most strongly (and never ``<end>``)."""
    with torch.no_grad():
        model.decoder.linear.bias.fill_(-50)
        model.decoder.linear.bias[vocab.stoi[word]] = 50
    return model


def uploaded(name: str, content: bytes) -> dict:
    """One file as ipywidgets 8's FileUpload holds it in ``.value``."""
    return {
        "name": name,
        "type": "image/png",
        "size": len(content),
        "content": memoryview(content),
        "last_modified": datetime(2024, 1, 1, tzinfo=timezone.utc),
    }


def uploaded_7(name: str, content: bytes) -> dict:
    """The same file as ipywidgets 7's FileUpload (Colab's) holds it in ``.value``: name → entry."""
    metadata = {"name": name, "type": "image/png", "size": len(content), "lastModified": 1704067200000}
    return {name: {"metadata": metadata, "content": content}}


def deliver(upload: widgets.FileUpload, name: str, content: bytes) -> None:
    """Upload one file as the browser does, for the ipywidgets that is installed."""
    if widgets.__version__.startswith("7."):
        # the frontend sends the file's metadata and bytes, then bumps _counter; value follows from that
        upload.metadata = [uploaded_7(name, content)[name]["metadata"]]
        upload.data = [content]
        upload._counter += 1
    else:
        upload.value = (uploaded(name, content),)


def test_uploaded_files_reads_ipywidgets_7_and_8_values():
    png = b"\x89PNG..."
    assert uploaded_files((uploaded("a.png", png),)) == [("a.png", png)]
    assert uploaded_files(uploaded_7("b.png", png)) == [("b.png", png)]
    assert uploaded_files(()) == [] and uploaded_files({}) == []
    two = (uploaded("a.png", b"1"), uploaded("c.png", b"2"))
    assert uploaded_files(two) == [("a.png", b"1"), ("c.png", b"2")]


def test_stepper_gives_the_same_caption_as_greedy_decoding(model_and_vocab, images):
    model, vocab = model_and_vocab
    stepper = CaptionStepper(as_run(model, vocab), max_len=12)
    for path in images:
        image = Image.open(path).convert("RGB")
        stepper.reset(image)
        while not stepper.done:
            stepper.step()
        with torch.no_grad():
            features = model.encoder(image_transform(SIZE)(image).unsqueeze(0))
        expected = greedy(model.decoder, features, vocab, max_len=12).captions[0]
        assert stepper.caption == " ".join(expected.split()[:12])


def test_top_k_is_sorted_probabilities_of_distinct_words(model_and_vocab, images):
    model, vocab = model_and_vocab
    stepper = CaptionStepper(as_run(model, vocab))
    stepper.reset(Image.open(images[0]).convert("RGB"))
    top = stepper.top_k(5)
    probs = [p for _, p in top]
    assert len(top) == 5 and len({w for w, _ in top}) == 5
    assert probs == sorted(probs, reverse=True)
    assert all(0 < p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6
    assert len(stepper.top_k(100)) == len(vocab)


def test_step_appends_the_top_word_and_changes_the_next_word_distribution(model_and_vocab, images):
    model, vocab = model_and_vocab
    stepper = CaptionStepper(as_run(model, vocab))
    stepper.reset(Image.open(images[0]).convert("RGB"))
    before = stepper.top_k(5)
    word = stepper.step()
    if word == END:  # this random model may end at once; then force a first word instead
        stepper.reset(stepper.image)
        word = stepper.step("red")
    assert stepper.caption == word and stepper.words == [word]
    assert stepper.top_k(5) != before


def test_step_with_a_chosen_word_follows_it_and_reset_starts_over(model_and_vocab, images):
    model, vocab = model_and_vocab
    stepper = CaptionStepper(as_run(model, vocab))
    stepper.reset(Image.open(images[1]).convert("RGB"))
    first = stepper.top_k(5)
    assert stepper.step("blue") == "blue" and stepper.step("square") == "square"
    assert stepper.caption == "blue square"
    stepper.reset(stepper.image)
    assert stepper.caption == "" and not stepper.done and stepper.top_k(5) == first
    with pytest.raises(ValueError, match="not in the vocabulary"):
        stepper.step("giraffe")


def test_stepper_stops_at_end_and_at_max_len(images):
    torch.manual_seed(0)
    vocab = Vocabulary(WORDS)
    image = Image.open(images[0]).convert("RGB")
    model = never_ending(Captioner(len(vocab), 8, 16, weights="random").eval(), vocab, "red")
    stepper = CaptionStepper(as_run(model, vocab), max_len=3)
    stepper.reset(image)
    assert [stepper.step() for _ in range(4)] == ["red", "red", "red", None]
    assert stepper.done and stepper.caption == "red red red"

    with torch.no_grad():
        model.decoder.linear.bias[vocab.end_id] = 100
    stepper.reset(image)
    assert stepper.step() == END and stepper.done and stepper.caption == ""
    assert stepper.step() is None


def test_stepper_needs_an_image_first(model_and_vocab):
    model, vocab = model_and_vocab
    stepper = CaptionStepper(as_run(model, vocab))
    with pytest.raises(RuntimeError, match="reset"):
        stepper.top_k()
    with pytest.raises(RuntimeError, match="reset"):
        stepper.step()


def test_top_words_html_has_one_row_per_word_with_rounded_probabilities():
    table = top_words_html([("circle", 0.8125), ("<end>", 0.1)])
    assert table.count("<tr>") == 3  # header + 2 words
    assert "<code>circle</code>" in table and "0.81" in table and "&lt;end&gt;" in table


def test_explorer_buttons_step_and_reset_the_caption(model_and_vocab, images):
    model, vocab = model_and_vocab
    explorer = decoding_explorer(as_run(model, vocab), images)
    assert explorer.stepper.caption == "" and "red.png" in explorer.caption_html.value
    assert bytes(explorer.picture.value).startswith(b"\x89PNG")
    top_before = explorer.top_html.value
    assert top_before.count("<tr>") == 6

    explorer.next_button.click()
    if explorer.stepper.done:  # ended at once: the button is disabled and the table gone
        assert explorer.next_button.disabled and explorer.top_html.value == ""
    else:
        assert len(explorer.stepper.words) == 1
        assert f"<b>{explorer.stepper.caption}</b>" in explorer.caption_html.value
        assert explorer.top_html.value != top_before

    explorer.reset_button.click()
    assert explorer.stepper.caption == "" and not explorer.next_button.disabled
    assert explorer.top_html.value == top_before


def test_explorer_next_button_is_disabled_when_the_caption_ends(images):
    torch.manual_seed(0)
    vocab = Vocabulary(WORDS)
    model = never_ending(Captioner(len(vocab), 8, 16, weights="random").eval(), vocab, "blue")
    explorer = DecodingExplorer(CaptionStepper(as_run(model, vocab), max_len=2), images)
    explorer.next_button.click()
    assert not explorer.next_button.disabled and "blue" in explorer.caption_html.value
    explorer.next_button.click()
    assert explorer.next_button.disabled and explorer.stepper.caption == "blue blue"
    assert "stopped at 2 words" in explorer.caption_html.value and explorer.top_html.value == ""


def test_explorer_shows_end_when_the_model_ends_the_caption(images):
    torch.manual_seed(0)
    vocab = Vocabulary(WORDS)
    model = never_ending(Captioner(len(vocab), 8, 16, weights="random").eval(), vocab, "blue")
    with torch.no_grad():
        model.decoder.linear.bias[vocab.end_id] = 100
    explorer = decoding_explorer(as_run(model, vocab), images)
    explorer.next_button.click()
    assert explorer.stepper.said_end and explorer.next_button.disabled
    assert "&lt;end&gt;" in explorer.caption_html.value


def test_explorer_with_an_unreadable_first_image_explains_and_does_not_crash(model_and_vocab, tmp_path):
    model, vocab = model_and_vocab
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    explorer = decoding_explorer(as_run(model, vocab), [broken])
    assert explorer.error.startswith("Cannot use broken.jpg")
    explorer.next_button.click()
    explorer.reset_button.click()
    assert explorer.stepper.caption == ""


def test_explorer_picker_changes_the_image_and_starts_a_new_caption(model_and_vocab, images):
    model, vocab = model_and_vocab
    explorer = decoding_explorer(as_run(model, vocab), images)
    explorer.stepper.step("left")
    first_picture = explorer.picture.value
    explorer.picker.value = str(images[1])
    assert "blue.png" in explorer.caption_html.value and explorer.stepper.caption == ""
    assert explorer.picture.value != first_picture
    assert explorer.stepper.image.getpixel((0, 0)) == (0, 0, 255)


def test_explorer_upload_shows_a_readable_image_and_explains_an_unreadable_one(model_and_vocab, images):
    model, vocab = model_and_vocab
    explorer = decoding_explorer(as_run(model, vocab), images)
    deliver(explorer.upload, "notes.jpg", b"hello")
    assert explorer.error == "Cannot use notes.jpg: cannot read image (not an image file PIL recognises)"
    assert "Cannot use notes.jpg" in explorer.message.value
    assert "red.png" in explorer.caption_html.value  # the previous image stays

    deliver(explorer.upload, "mine.png", images[1].read_bytes())
    assert explorer.message.value == "" and explorer.error == ""
    assert len(explorer.upload.value) == 0  # cleared, so the same file can be uploaded again
    assert "mine.png" in explorer.caption_html.value and explorer.stepper.caption == ""
    assert explorer.stepper.image.getpixel((0, 0)) == (0, 0, 255)

    explorer.picker.value = str(images[1])
    explorer.picker.value = str(images[0])
    deliver(explorer.upload, "mine.png", images[1].read_bytes())  # the same file again is seen
    assert "mine.png" in explorer.caption_html.value
    assert explorer.stepper.image.getpixel((0, 0)) == (0, 0, 255)


def test_explorer_shows_a_short_stable_text_form(model_and_vocab, images, caplog):
    model, vocab = model_and_vocab
    explorer = decoding_explorer(as_run(model, vocab), images)
    bundle = explorer._repr_mimebundle_(include=None, exclude=None)  # as IPython calls it
    # outside IPython, ipywidgets logs (does not raise) what a display callback raised
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert bundle["text/plain"].startswith("DecodingExplorer:")
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == explorer.widget.model_id and view["version_major"] == 2


def test_explorer_needs_images(model_and_vocab):
    model, vocab = model_and_vocab
    with pytest.raises(ValueError, match="at least one image"):
        decoding_explorer(as_run(model, vocab), [])


def test_on_colab_the_explorer_turns_on_colabs_widget_manager_before_its_widgets(
    monkeypatch, model_and_vocab, images
):
    from types import ModuleType

    calls = []
    google, colab = ModuleType("google"), ModuleType("google.colab")
    output = ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append("enabled")
    google.colab, colab.output = colab, output
    for name, module in (("google", google), ("google.colab", colab), ("google.colab.output", output)):
        monkeypatch.setitem(sys.modules, name, module)
    model, vocab = model_and_vocab
    dropdown = widgets.Dropdown
    monkeypatch.setattr(widgets, "Dropdown", lambda *a, **k: calls.append("widgets") or dropdown(*a, **k))
    decoding_explorer(as_run(model, vocab), images)
    assert calls[:2] == ["enabled", "widgets"]


def test_outside_colab_the_explorer_leaves_the_widget_manager_alone(monkeypatch, model_and_vocab, images):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    model, vocab = model_and_vocab
    explorer = decoding_explorer(as_run(model, vocab), images)
    assert explorer.widget is not None
