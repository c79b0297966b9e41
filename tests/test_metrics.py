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
    with pytest.raises(ValueError):
        corpus_bleu_scores([["a"]], ["a", "b"])
