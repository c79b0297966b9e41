"""BLEU, the standard score for captions: n-gram overlap with the human references.

Scale: scores are between 0 and 1 in code, as nltk returns them; papers print them ×100
(Show, Attend and Tell's Flickr8k BLEU-4 of 19.5 is 0.195 here). References are tokenised exactly
like the hypotheses, with :func:`helpers.vocabulary.tokenize`, so punctuation cannot change a score.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from nltk.translate.bleu_score import corpus_bleu

from helpers.vocabulary import tokenize

BLEU_WEIGHTS = {
    "bleu1": (1.0,),
    "bleu2": (0.5, 0.5),
    "bleu3": (1 / 3, 1 / 3, 1 / 3),
    "bleu4": (0.25, 0.25, 0.25, 0.25),
}


def corpus_bleu_scores(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU-1…4 (0–1) of ``hypotheses[i]`` against the captions ``references[i]`` of image ``i``.

    Counts are pooled over the whole corpus before the geometric mean, as the papers do, rather than
    averaging per-sentence scores.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses")
    if not hypotheses:
        raise ValueError("BLEU needs at least one hypothesis")
    refs = [[tokenize(r) for r in group] for group in references]
    hyps = [tokenize(h) for h in hypotheses]
    with warnings.catch_warnings():
        # nltk warns when an n-gram order has no match at all; the score is then 0, which is the answer
        warnings.simplefilter("ignore", UserWarning)
        return {name: float(corpus_bleu(refs, hyps, weights=w)) for name, w in BLEU_WEIGHTS.items()}


def as_percent(scores: dict[str, float]) -> dict[str, float]:
    """The same scores ×100, rounded to one decimal, as papers print them."""
    return {name: round(100 * value, 1) for name, value in scores.items()}
