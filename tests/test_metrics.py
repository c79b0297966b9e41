import math

import pytest

from helpers.metrics import _ConstantBleu, as_percent, best_blind_caption, corpus_bleu_scores, human_ceiling
from helpers.shapes import Scene, Shape, captions_for
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
    with pytest.raises(ValueError):
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
