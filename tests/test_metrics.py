import math

import pytest

from helpers.metrics import as_percent, corpus_bleu_scores


def test_a_perfect_match_scores_one():
    scores = corpus_bleu_scores(
        [["a red circle on the left", "something else"]], ["a red circle on the left"]
    )
    assert scores == {"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0}


def test_bleu_on_a_hand_computed_case():
    # hypothesis "a red circle on the right" vs reference "a red circle on the left":
    # 1-grams 5/6, 2-grams 4/5, 3-grams 3/4, 4-grams 2/3; equal lengths, so no brevity penalty.
    scores = corpus_bleu_scores([["a red circle on the left"]], ["a red circle on the right"])
    assert scores["bleu1"] == pytest.approx(5 / 6)
    assert scores["bleu2"] == pytest.approx(math.sqrt(5 / 6 * 4 / 5))
    assert scores["bleu4"] == pytest.approx((5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25)


def test_short_hypotheses_pay_the_brevity_penalty():
    scores = corpus_bleu_scores([["a red circle on the left"]], ["a red circle"])
    assert scores["bleu1"] == pytest.approx(math.exp(1 - 6 / 3))


def test_references_and_hypotheses_are_tokenised_the_same_way():
    scores = corpus_bleu_scores([["A red circle, on the LEFT."]], ["a red circle on the left"])
    assert scores["bleu4"] == 1.0


def test_percent_scale_like_the_papers():
    assert as_percent({"bleu4": 0.19512}) == {"bleu4": 19.5}


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match=r"^1 reference sets for 2 hypotheses$"):
        corpus_bleu_scores([["a"]], ["a", "b"])


def test_no_hypothesis_at_all_is_refused_with_a_reason():
    with pytest.raises(ValueError, match=r"^BLEU needs at least one hypothesis$"):
        corpus_bleu_scores([], [])


def test_corpus_bleu_pools_counts_over_images_and_uses_the_weights_of_each_order():
    # image 1: "a red circle on the right" vs "a red circle on the left": n-grams 5/6, 4/5, 3/4, 2/3
    # image 2: "a blue square" vs itself: 3/3, 2/2, 1/1, and no 4-gram, which nltk counts as 0/1 (it
    # divides by at least 1). Pooled: 8/9, 6/7, 4/5, 2/4; 9 words against 9, so no brevity penalty.
    # The mean of the per-image BLEU-1 would be (5/6 + 1) / 2 instead.
    scores = corpus_bleu_scores(
        [["a red circle on the left"], ["a blue square"]], ["a red circle on the right", "a blue square"]
    )
    p1, p2, p3, p4 = 8 / 9, 6 / 7, 4 / 5, 2 / 4
    assert scores["bleu1"] == pytest.approx(p1)
    assert scores["bleu2"] == pytest.approx((p1 * p2) ** (1 / 2))
    assert scores["bleu3"] == pytest.approx((p1 * p2 * p3) ** (1 / 3))
    assert scores["bleu4"] == pytest.approx((p1 * p2 * p3 * p4) ** (1 / 4))
    assert scores["bleu1"] != pytest.approx((5 / 6 + 1) / 2)


def test_corpus_brevity_penalty_compares_total_lengths():
    # 6 + 2 hypothesis words against 6 + 3 reference words: BP = exp(1 - 9 / 8) for the corpus, every
    # 1-gram matches; the mean of per-image scores would be (1 + exp(1 - 3 / 2)) / 2 instead.
    scores = corpus_bleu_scores(
        [["a red circle on the left"], ["a blue square"]], ["a red circle on the left", "a blue"]
    )
    assert scores["bleu1"] == pytest.approx(math.exp(1 - 9 / 8))


def test_brevity_uses_the_reference_closest_in_length():
    # "a green triangle" (3 words) against references of 6 and 2 words: the closest is 2 words, so the
    # hypothesis is not short and pays no penalty; 1-grams 3/3.
    scores = corpus_bleu_scores([["a green triangle at the top", "green triangle"]], ["a green triangle"])
    assert scores["bleu1"] == pytest.approx(1.0)
