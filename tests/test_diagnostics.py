"""Failure diagnostics: the same caption for every image, a model that ignores its image, and the
statistics around them."""

import copy

import pytest
import torch

from helpers.config import TrainConfig
from helpers.data import pad_captions
from helpers.decoding import decode_features
from helpers.diagnostics import (
    RULES,
    diagnose,
    distinct_n,
    flags,
    format_diagnosis,
    image_sensitivity,
    mean_length,
    most_common_caption,
    swap_partners,
    vocabulary_coverage,
)
from helpers.models import sequence_loss
from helpers.runs import build_model
from helpers.vocabulary import Vocabulary

TINY = dict(embed_size=16, hidden_size=32, image_size=32, weights="random", max_decode=6)
WORDS = ["a", "red", "blue", "circle", "square", "on", "the", "left"]
CAPTIONS = [
    f"a {c} {s}{at}" for c in ("red", "blue") for s in ("circle", "square") for at in ("", " on the left")
]
IMAGES = 16  # image i is described by CAPTIONS[i % 8]
REFERENCES = [["a red circle on the left", "a red circle"]] * IMAGES


@pytest.fixture(scope="module")
def features():
    return torch.randn(IMAGES, 2048, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def looking_model(features):
    """A tiny captioner taught (teacher forcing, in eval mode) to tell the 16 images apart by their
    features: it says each image's caption."""
    torch.manual_seed(0)
    vocab = Vocabulary(WORDS)
    model = build_model(TrainConfig(**TINY), len(vocab)).eval()
    padded, lengths = pad_captions([torch.tensor(vocab.encode(CAPTIONS[i % 8])) for i in range(IMAGES)])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(400):
        logits = model.decoder(model.encoder.project_features(features), padded, lengths)
        loss = sequence_loss(logits, padded, lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def planted(model, plant: str):
    """A copy of ``model`` that ``"ignores the image"`` (the projection of the features zeroed) or says
    ``"one caption"`` (one word always wins, whatever the image)."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        if plant == "ignores the image":
            model.encoder.project.weight.zero_()
            model.encoder.project.bias.zero_()
        else:
            model.decoder.linear.bias[Vocabulary(WORDS).stoi["circle"]] = 1e4
    return model


def test_most_common_caption_and_its_share():
    assert most_common_caption(["a red circle", "a blue square", "a red circle"]) == ("a red circle", 2 / 3)


def test_distinct_n_counts_distinct_ngrams_over_all_captions_not_per_caption():
    # 1-grams: a a b | a b → 2 distinct of 5 (the mean over captions would be (2/3 + 1) / 2)
    assert distinct_n(["a a b", "a b"], 1) == pytest.approx(2 / 5)
    # 2-grams: "a a", "a b" | "a b" → 2 distinct of 3
    assert distinct_n(["a a b", "a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a", "b"], 2) == 0.0


def test_vocabulary_coverage_is_the_share_of_ordinary_words_ever_generated():
    vocab = Vocabulary(["a", "red", "blue", "circle"])
    assert vocabulary_coverage(["a red circle", "<unk> circle", ""], vocab) == pytest.approx(3 / 4)


def test_mean_length_in_words():
    assert mean_length(["a red circle", "a blue square on the left"]) == pytest.approx(4.5)


def test_swap_partners_is_a_seeded_derangement():
    partners = swap_partners(10, seed=0)
    assert sorted(partners) == list(range(10))
    assert all(partner != i for i, partner in enumerate(partners))
    assert swap_partners(10, seed=0) == partners
    assert swap_partners(10, seed=1) != partners
    with pytest.raises(ValueError, match="at least 2 images"):
        swap_partners(1)


def test_image_sensitivity_is_the_share_of_captions_that_change_with_another_images_features(
    looking_model, features
):
    model, vocab = looking_model, Vocabulary(WORDS)
    captions = decode_features(model, features, vocab, "cpu", max_len=6)
    partners = swap_partners(IMAGES, seed=0)
    expected = sum(captions[i] != captions[j] for i, j in enumerate(partners)) / IMAGES
    assert 0.5 < expected < 1  # the toy must have images whose captions agree and others that do not
    assert image_sensitivity(model, features, vocab, max_len=6) == pytest.approx(expected)


def test_a_model_that_ignores_its_image_is_flagged(looking_model, features):
    model = planted(looking_model, "ignores the image")
    report = diagnose(model, features, Vocabulary(WORDS), REFERENCES, max_len=6)
    assert report["image_sensitivity"] == 0.0
    assert "image_blind" in report["flags"]


def test_a_model_that_always_says_the_same_caption_is_flagged(looking_model, features):
    report = diagnose(
        planted(looking_model, "one caption"), features, Vocabulary(WORDS), REFERENCES, max_len=6
    )
    assert report["most_common_caption"] == "circle circle circle circle circle circle"
    assert report["most_common_caption_share"] == 1.0
    assert "same_caption" in report["flags"]


def test_a_model_that_looks_at_its_image_is_not_flagged(looking_model, features):
    report = diagnose(looking_model, features, Vocabulary(WORDS), REFERENCES, max_len=6)
    assert report["flags"] == []
    assert report["most_common_caption_share"] <= 0.2
    assert report["image_sensitivity"] >= 0.5
    assert report["images"] == IMAGES
    assert report["reference_mean_length"] == pytest.approx(4.5)
    assert set(report) >= {"distinct_1", "distinct_2", "mean_length", "vocabulary_coverage"}


@pytest.mark.parametrize(
    ("share", "sensitivity", "expected"),
    [
        (0.20, 0.50, []),  # both exactly at their threshold: not flagged
        (0.21, 0.90, ["same_caption"]),
        (0.05, 0.49, ["image_blind"]),
        (1.00, 0.00, ["same_caption", "image_blind"]),
    ],
)
def test_flag_rules(share, sensitivity, expected):
    report = {"most_common_caption_share": share, "image_sensitivity": sensitivity}
    assert [rule.name for rule in flags(report)] == expected


def test_every_rule_names_causes_with_a_way_to_check_each():
    assert {rule.name for rule in RULES} == {"same_caption", "image_blind"}
    for rule in RULES:
        assert len(rule.causes) >= 3
        assert all(cause and check for cause, check in rule.causes)


def test_the_printed_diagnosis_gives_the_figures_and_a_flags_causes():
    report = {
        "images": 4,
        "most_common_caption": "a red circle",
        "most_common_caption_share": 0.75,
        "distinct_1": 0.25,
        "distinct_2": 0.125,
        "mean_length": 3.0,
        "reference_mean_length": 4.5,
        "vocabulary_coverage": 0.375,
        "image_sensitivity": 0.5,
    }
    report["flags"] = [rule.name for rule in flags(report)]
    text = format_diagnosis(report)
    assert "75.0% of 4 images: 'a red circle'" in text
    assert "distinct-1 0.2500, distinct-2 0.1250" in text
    assert "3.00 words (references 4.50)" in text
    assert "FLAG same_caption" in text
    assert RULES[0].causes[0][1] in text
    assert "image_blind" not in text
