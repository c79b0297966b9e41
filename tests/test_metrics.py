import math

import pytest

from helpers.metrics import _ConstantBleu, as_percent, best_blind_caption, corpus_bleu_scores, human_ceiling
from helpers.scenes import Scene, Shape, captions_for
from helpers.vocabulary import tokenize

# three images, five captions each, in the shapes set's styles (the longest and the shortest differ a lot)
REFERENCES = [
    captions_for(
        Scene(
            "grey",
            "horizontal",
            (Shape("circle", "red", "small", 32, 64), Shape("square", "blue", "large", 96, 64)),
        )
    ),
    captions_for(
        Scene(
            "white",
            "vertical",
            (Shape("triangle", "green", "large", 64, 32), Shape("circle", "red", "small", 64, 96)),
        )
    ),
    captions_for(Scene("black", "single", (Shape("square", "orange", "small", 64, 64),))),
]


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


@pytest.mark.parametrize(
    "caption",
    [
        "a small red circle to the left of a large blue square",  # long: no brevity penalty
        "a red circle .",  # short: brevity penalty
        "a red circle and a red circle and a red circle on a grey background",  # clipped counts
        "two shapes : a green triangle on the top and a red circle on the bottom",
        "nothing like it",  # no match at all
    ],
)
def test_the_fast_blind_score_is_nltks_corpus_bleu(caption):
    expected = corpus_bleu_scores(REFERENCES, [caption] * len(REFERENCES))["bleu4"]
    assert _ConstantBleu(REFERENCES).bleu4(tokenize(caption)) == pytest.approx(expected, abs=1e-12)


def test_best_blind_caption_is_the_candidate_with_the_highest_corpus_bleu4():
    candidates = [c for group in REFERENCES for c in group] + ["a red circle ."]
    best, scores = best_blind_caption(candidates, REFERENCES)
    by_nltk = {c: corpus_bleu_scores(REFERENCES, [c] * 3)["bleu4"] for c in candidates}
    assert best == max(by_nltk, key=by_nltk.get)
    assert scores == corpus_bleu_scores(REFERENCES, [best] * 3)
    with pytest.raises(ValueError, match="at least one candidate"):
        best_blind_caption([], REFERENCES)


def test_human_ceiling_scores_each_annotator_against_the_other_four():
    table = human_ceiling(REFERENCES)
    assert table.index.tolist() == [f"annotator {k}" for k in range(5)] + ["mean"]
    for k in range(5):
        others = [[r for j, r in enumerate(group) if j != k] for group in REFERENCES]
        expected = corpus_bleu_scores(others, [group[k] for group in REFERENCES])
        assert table.loc[f"annotator {k}", "bleu4"] == pytest.approx(expected["bleu4"])
    assert table.loc["mean", "bleu2"] == pytest.approx(table["bleu2"].iloc[:5].mean())


def test_human_ceiling_with_the_truth_adds_every_attribute():
    scenes = [
        Scene(
            "grey",
            "horizontal",
            (Shape("circle", "red", "small", 32, 64), Shape("square", "blue", "large", 96, 64)),
        ),
        Scene(
            "white",
            "vertical",
            (Shape("triangle", "green", "large", 64, 32), Shape("circle", "red", "small", 64, 96)),
        ),
        Scene("black", "single", (Shape("square", "orange", "small", 64, 64),)),
    ]
    table = human_ceiling(REFERENCES, scenes)
    assert table.loc["mean", "colour"] == table.loc["mean", "all"] == 1.0
    assert math.isnan(table.loc["annotator 1", "size"])  # annotator 1 never says a size
    wrong = [scenes[1], scenes[0], scenes[2]]
    assert human_ceiling(REFERENCES, wrong).loc["mean", "colour"] < 1.0


def test_human_ceiling_needs_the_same_number_of_references_per_image():
    with pytest.raises(ValueError, match="same number"):
        human_ceiling([["a b", "c d"], ["a b"]])


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
