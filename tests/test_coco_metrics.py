"""BLEU and CIDEr-D as the COCO caption evaluation computes them, checked against pycocoevalcap itself.

pycocoevalcap is a test dependency (the ``dev`` extra): it is imported plainly, so these tests fail when
it is missing. Its BLEU and CIDEr need no Java; they take captions already tokenised into words
separated by spaces, which is what :func:`helpers.vocabulary.tokenize` gives.
"""

import math
import shutil
from pathlib import Path

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from helpers.flickr8k_captions import FLICKR8K_IMAGE_DIR, read_flickr8k
from helpers.metrics import cider_d, coco_bleu, corpus_bleu_scores
from helpers.vocabulary import tokenize

REPO = Path(__file__).resolve().parents[1]
SHAPES = REPO / "data" / "shapes"  # make test draws it first (its "data" target)
FLICKR8K_FIXTURE = Path(__file__).parent / "data" / "flickr8k_captions"


def reference_scores(references, hypotheses):
    """pycocoevalcap's corpus BLEU-1…4 and CIDEr-D (corpus, per image) on the same tokenised captions."""
    gts = {i: [" ".join(tokenize(r)) for r in group] for i, group in enumerate(references)}
    res = {i: [" ".join(tokenize(h))] for i, h in enumerate(hypotheses)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, per_image = Cider().compute_score(gts, res)
    return (
        dict(zip(["bleu1", "bleu2", "bleu3", "bleu4"], bleu, strict=True)),
        float(cider),
        per_image.tolist(),
    )


def split_references(table, split):
    """``[[captions of image 0], …]`` of one split, images in file order."""
    rows = table[table["split"] == split]
    return rows.groupby("image", sort=False)["caption"].apply(list).tolist()


def another_images_caption(references):
    """Image ``i`` gets caption ``i mod 5`` of image ``i + 1``: real, varied, mostly wrong."""
    return [references[(i + 1) % len(references)][i % len(references[0])] for i in range(len(references))]


@pytest.fixture(scope="module")
def shapes_test():
    if not (SHAPES / "Flickr8k.token.txt").is_file():
        pytest.fail(f"{SHAPES} holds no shapes set: draw it with `make data`")
    table = read_flickr8k(SHAPES).table
    return split_references(table, "test")


@pytest.fixture(scope="module")
def flickr8k_test(tmp_path_factory):
    """The fixture's captions read as a Flickr8k release (the reader wants image files: empty ones)."""
    root = tmp_path_factory.mktemp("flickr8k")
    for name in ("Flickr8k.token.txt", "Flickr_8k.testImages.txt"):
        shutil.copy(FLICKR8K_FIXTURE / name, root / name)
    (root / FLICKR8K_IMAGE_DIR).mkdir()
    for name in (root / "Flickr_8k.testImages.txt").read_text(encoding="utf-8").split():
        (root / FLICKR8K_IMAGE_DIR / name).touch()
    _, table, skipped = read_flickr8k(root)
    assert skipped == []
    return split_references(table, "test")


def hypotheses_for(references, kind):
    if kind == "another image's caption":
        return another_images_caption(references)
    # even images: the start of one of their own captions (short: the brevity and length penalties act)
    return [
        " ".join(tokenize(group[i % len(group)])[:4]) if i % 2 == 0 else other
        for i, (group, other) in enumerate(zip(references, another_images_caption(references), strict=True))
    ]


@pytest.mark.parametrize("kind", ["another image's caption", "half their own, shortened"])
@pytest.mark.parametrize("dataset", ["shapes_test", "flickr8k_test"])
def test_coco_bleu_and_cider_d_are_pycocoevalcaps(dataset, kind, request):
    references = request.getfixturevalue(dataset)
    assert len(references) >= 20
    hypotheses = hypotheses_for(references, kind)
    bleu, cider, per_image = reference_scores(references, hypotheses)

    assert coco_bleu(references, hypotheses) == pytest.approx(bleu, abs=1e-6)
    corpus, mine = cider_d(references, hypotheses)
    assert corpus == pytest.approx(cider, abs=1e-6)
    assert mine == pytest.approx(per_image, abs=1e-6)
    assert corpus == pytest.approx(sum(mine) / len(mine), abs=1e-12)
    assert cider > 0 and 0 < bleu["bleu4"] < 1  # a case where every part of the formulas counts


# hypothesis of 4 words; the references' lengths 3 and 5 are equally close to it
TIE = ["a red circle", "a red circle on left", "there is a red circle on the left side"]


def test_coco_bleu_brevity_uses_the_closest_reference_length_the_shorter_on_a_tie():
    # 1-grams 4/4, 2-grams 2/3 ("circle left" is in no reference), 3-grams 1/2; length 3 is the
    # closest (tie with 5, the shorter wins) and shorter than the hypothesis: no brevity penalty.
    # The shortest (3) agrees here, the average (17/3) and the 5 would cost exp(1 - 17/12), exp(1 - 5/4).
    scores = coco_bleu([TIE], ["a red circle left"])
    assert scores["bleu1"] == pytest.approx(1.0, abs=1e-9)
    assert scores["bleu3"] == pytest.approx((2 / 3 * 1 / 2) ** (1 / 3), abs=1e-9)


def test_coco_bleu_brevity_with_the_closest_reference_longer_than_the_hypothesis():
    # lengths 2 and 5 for a hypothesis of 4: the closest, 5, costs exp(1 - 5/4); the shortest (2) or the
    # average (3.5) would cost nothing
    scores = coco_bleu([["red circle", TIE[1]]], ["a red circle left"])
    assert scores["bleu1"] == pytest.approx(math.exp(1 - 5 / 4), abs=1e-9)


def test_coco_bleu_pools_lengths_over_the_corpus_before_the_brevity_penalty():
    # image 1: 3 words against 4 (short); image 2: 4 against 3 (long). Pooled 7 against 7: no penalty,
    # though image 1 alone would pay one. 1-grams: 3 of 3 and 3 of 4 match.
    references = [["a red circle left"], ["a blue square"]]
    hypotheses = ["a red circle", "a blue square here"]
    assert coco_bleu(references, hypotheses)["bleu1"] == pytest.approx(6 / 7, abs=1e-9)


def test_coco_bleu_clips_each_ngram_by_its_largest_count_in_one_reference():
    # "red" three times: counted at most twice, the most any one reference holds
    scores = coco_bleu([["red red circle", "a red circle"]], ["red red red"])
    assert scores["bleu1"] == pytest.approx(2 / 3, abs=1e-9)


def test_coco_bleu_and_nltk_agree_on_hypotheses_of_four_words_or_more(shapes_test):
    pairs = [
        (r, h)
        for r, h in zip(shapes_test, another_images_caption(shapes_test), strict=True)
        if len(tokenize(h)) >= 4
    ]
    references, hypotheses = zip(*pairs, strict=True)
    assert coco_bleu(references, hypotheses) == pytest.approx(
        corpus_bleu_scores(references, hypotheses), abs=1e-9
    )


def test_coco_bleu_counts_no_ngram_of_an_order_longer_than_the_hypothesis_where_nltk_counts_one():
    # the 3-word caption has no 4-gram: COCO's 4-gram precision is 3/3, nltk's (3 + 0) / (3 + 1)
    references = [["a red circle on the left"], ["a blue square"]]
    hypotheses = ["a red circle on the left", "a blue square"]
    assert coco_bleu(references, hypotheses)["bleu4"] == pytest.approx(1.0, abs=1e-9)
    assert corpus_bleu_scores(references, hypotheses)["bleu4"] == pytest.approx(0.75**0.25, abs=1e-9)


def test_coco_bleu_is_small_but_not_zero_when_an_order_has_no_match():
    # no 4-gram matches: COCO's precision is (0 + 1e-15) / (1 + 1e-9) there; nltk's BLEU-4 is about 0
    references, hypotheses = [TIE], ["a red circle left"]
    expected = (1 * 2 / 3 * 1 / 2 * 1e-15 / (1 + 1e-9)) ** 0.25
    assert coco_bleu(references, hypotheses)["bleu4"] == pytest.approx(expected, rel=1e-6)
    assert corpus_bleu_scores(references, hypotheses)["bleu4"] < 1e-60


# Two images, one reference each. "a" is in every image's references: its weight log(2) - log(2) is 0.
# Every other n-gram of the references is in one image's: weight log(2) per occurrence.
TWO = [["a dog runs"], ["a cat sleeps"]]


def test_cider_d_of_a_caption_equal_to_its_only_reference():
    # 1-, 2- and 3-grams: cosine 1; no 4-gram on either side: 0. Mean over n, times 10.
    corpus, per_image = cider_d(TWO, ["a dog runs", "a cat sleeps"])
    assert per_image == pytest.approx([7.5, 7.5], abs=1e-9)
    assert corpus == pytest.approx(7.5, abs=1e-9)


def test_cider_d_clips_a_repeated_word_by_its_weight_in_the_reference():
    # "dog dog dog": 1-gram vector (3w) against (0, w, w): clipped min(3w, w)·w / (3w · √2·w) = 1/(3√2);
    # without clipping 1/√2. No 2- or 3-gram in common; lengths 3 and 3: no length penalty.
    _, per_image = cider_d(TWO, ["dog dog dog", "a cat sleeps"])
    assert per_image[0] == pytest.approx(10 * (1 / (3 * math.sqrt(2))) / 4, abs=1e-9)


def test_cider_d_gaussian_length_penalty_with_sigma_six():
    # "dog runs" against "a dog runs": 1-grams cosine 1, 2-grams 1/√2, one word shorter: exp(-1 / (2·6²))
    _, per_image = cider_d(TWO, ["dog runs", "a cat sleeps"])
    assert per_image[0] == pytest.approx(10 * (1 + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72), abs=1e-9)


def test_cider_d_document_frequencies_come_from_the_evaluated_references():
    # a third image that also says "dog" makes "dog" commoner: the same caption scores differently
    alone = cider_d(TWO, ["dog dog dog", "a cat sleeps"])[1][0]
    with_more_dogs = cider_d([*TWO, ["a dog sleeps"]], ["dog dog dog", "a cat sleeps", "a dog sleeps"])[1][0]
    assert with_more_dogs != pytest.approx(alone, abs=1e-3)


def test_cider_d_averages_over_the_references_of_an_image():
    # a second reference that shares nothing with the caption halves the image's score
    one = cider_d([["a dog runs"], ["a cat sleeps"], ["green trees"]], ["a dog runs", "x", "y"])[1][0]
    two = cider_d(
        [["a dog runs", "green trees"], ["a cat sleeps"], ["green trees"]], ["a dog runs", "x", "y"]
    )
    assert two[1][0] == pytest.approx(one / 2, abs=1e-9)


@pytest.mark.parametrize("scorer", [coco_bleu, cider_d])
def test_coco_metrics_refuse_mismatched_or_empty_input(scorer):
    with pytest.raises(ValueError, match=r"^1 reference sets for 2 hypotheses$"):
        scorer([["a"]], ["a", "b"])
    with pytest.raises(ValueError, match="at least one hypothesis"):
        scorer([], [])
    with pytest.raises(ValueError, match="image 1 has no reference"):
        scorer([["a"], []], ["a", "b"])
