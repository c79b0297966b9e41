"""CIDEr-D's floor and ceiling: the best image-blind caption chosen by CIDEr-D, and the humans."""

import pytest

from helpers.cider_baselines import best_blind_caption_cider, human_cider_d
from helpers.metrics import best_blind_caption, cider_d

REFERENCES = [
    ["a red circle on a black background", "there is a red circle", "a large red circle in the middle"],
    ["a blue square to the left of a red circle", "two shapes : a blue square and a red circle",
     "a small blue square and a large red circle"],
    ["a green triangle on a white background", "there is a green triangle", "a green triangle in the middle"],
    ["a red square above a green circle", "two shapes : a red square on the top and a green circle",
     "a red square and a green circle below it"],
]
CANDIDATES = [
    "a red circle",
    "there is a red circle",
    "two shapes : a red square and a green circle",
    "a green triangle in the middle",
    "a red circle in the middle",
    "a large red circle on the top",
    "a",
    "there is a red circle and a green triangle on a black background",
    "there is a red square and a green circle",  # CIDEr-D's choice; BLEU-4 prefers "two shapes : …"
    "red circle red circle red circle",  # repeats count only as often as a reference has them (clipping)
]


def test_best_blind_caption_cider_is_the_brute_force_winner():
    scores = {c: cider_d(REFERENCES, [c] * len(REFERENCES))[0] for c in CANDIDATES}
    winner = max(CANDIDATES, key=scores.get)
    caption, score = best_blind_caption_cider(CANDIDATES, REFERENCES)
    assert caption == winner
    assert score == pytest.approx(scores[winner], rel=1e-9)
    for candidate in CANDIDATES:  # and every candidate's score is the one cider_d gives
        alone = best_blind_caption_cider([candidate], REFERENCES)[1]
        assert alone == pytest.approx(scores[candidate], abs=1e-9)


def test_the_cider_winner_is_not_the_bleu_winner_here():
    assert best_blind_caption_cider(CANDIDATES, REFERENCES)[0] == "there is a red square and a green circle"
    assert best_blind_caption(CANDIDATES, REFERENCES)[0] == "two shapes : a red square and a green circle"


def test_best_blind_caption_cider_refuses_no_candidates():
    with pytest.raises(ValueError, match="candidate"):
        best_blind_caption_cider([], REFERENCES)


def test_human_cider_d_scores_each_reference_against_the_others():
    table = human_cider_d(REFERENCES)
    for k in range(3):
        others = [[r for j, r in enumerate(group) if j != k] for group in REFERENCES]
        assert table[f"annotator {k}"] == pytest.approx(cider_d(others, [g[k] for g in REFERENCES])[0])
    assert table["mean"] == pytest.approx(sum(table[f"annotator {k}"] for k in range(3)) / 3)
    with pytest.raises(ValueError, match="same number"):
        human_cider_d([["a red circle", "a circle"], ["a square"]])
