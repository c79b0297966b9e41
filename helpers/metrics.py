"""BLEU, the standard score for captions: n-gram overlap with the human references.

Every score sits between a floor and a ceiling: :func:`best_blind_caption` is the best one caption
given to every image without looking at it, :func:`human_ceiling` scores each human reference against
the others. BLEU depends on the references and their style, so scores are comparable only on the same
dataset and split: the shapes set's BLEU says nothing about Flickr8k papers.

Scale: scores are between 0 and 1 in code, as nltk returns them; papers print them ×100
(Show, Attend and Tell's Flickr8k BLEU-4 of 19.5 is 0.195 here). References are tokenised exactly
like the hypotheses, with :func:`helpers.vocabulary.tokenize`, so punctuation cannot change a score.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
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


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


class _ConstantBleu:
    """Corpus BLEU-4 of one caption given to every image, fast enough to try thousands of captions.

    nltk's corpus BLEU clips each n-gram's count in an image's hypothesis by its largest count in that
    image's references. With the same hypothesis everywhere, that sum over images depends only on the
    n-gram and its count, so it is computed once per n-gram (``clipped``) and reused.
    """

    def __init__(self, references: Sequence[Sequence[str]]):
        refs = [[tokenize(r) for r in group] for group in references]
        self.lengths = [np.array([len(r) for r in group]) for group in refs]
        self.most: dict[tuple[str, ...], np.ndarray] = {}
        for i, group in enumerate(refs):
            for n in range(1, 5):
                most_here: Counter = Counter()
                for r in group:
                    for gram, count in _ngrams(r, n).items():
                        most_here[gram] = max(most_here[gram], count)
                for gram, count in most_here.items():
                    self.most.setdefault(gram, np.zeros(len(refs), dtype=np.int16))[i] = count
        self.images = len(refs)
        self._clipped: dict[tuple[tuple[str, ...], int], int] = {}
        self._reference_length: dict[int, int] = {}

    def clipped(self, gram: tuple[str, ...], count: int) -> int:
        key = (gram, count)
        if key not in self._clipped:
            most = self.most.get(gram)
            self._clipped[key] = 0 if most is None else int(np.minimum(most, count).sum())
        return self._clipped[key]

    def reference_length(self, hyp: int) -> int:
        """nltk's reference length: per image, the one closest to ``hyp`` (the shorter on a tie), summed."""
        if hyp not in self._reference_length:
            self._reference_length[hyp] = sum(
                int(lengths[np.lexsort((lengths, np.abs(lengths - hyp)))[0]]) for lengths in self.lengths
            )
        return self._reference_length[hyp]

    def bleu4(self, tokens: Sequence[str]) -> float:
        if not tokens:
            return 0.0
        log_precision = 0.0
        for n in range(1, 5):
            grams = _ngrams(tokens, n)
            matched = sum(self.clipped(gram, count) for gram, count in grams.items())
            total = sum(grams.values()) * self.images
            if matched == 0:
                return 0.0
            log_precision += 0.25 * math.log(matched / total)
        hyp = len(tokens)
        ref = self.reference_length(hyp)
        brevity = 1.0 if hyp * self.images > ref else math.exp(1 - ref / (hyp * self.images))
        return brevity * math.exp(log_precision)


def best_blind_caption(
    candidates: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[str, dict[str, float]]:
    """The one caption that, given to every image without looking at it, scores the highest BLEU-4.

    ``candidates`` are the captions to try (e.g. every distinct training caption); ``references[i]`` are
    image ``i``'s captions (e.g. the dev split's, so the choice is not made on the test set). Returns the
    winner and its :func:`corpus_bleu_scores` on ``references``. This is the floor a model must beat:
    a model that ignores the image can reach it. Thousands of candidates take a few seconds.
    """
    if not candidates:
        raise ValueError("best_blind_caption needs at least one candidate caption")
    scorer = _ConstantBleu(references)
    distinct = list(dict.fromkeys(candidates))
    best = max(distinct, key=lambda caption: scorer.bleu4(tokenize(caption)))
    return best, corpus_bleu_scores(references, [best] * len(references))


def human_ceiling(references: Sequence[Sequence[str]], scenes: Sequence | None = None) -> pd.DataFrame:
    """How well the humans agree: each annotator's caption scored against the other references.

    ``references[i]`` are image ``i``'s captions, the same number for every image (5 on Flickr8k and
    the shapes set). Row ``k`` treats caption ``k`` of every image as the hypothesis and the others
    as references; the last row, ``"mean"``, averages the rows. Columns: ``bleu1`` … ``bleu4``, and
    with ``scenes`` (the truth of each image, :func:`helpers.attributes.read_scenes`) every attribute's
    accuracy from :func:`helpers.attributes.attribute_accuracy` too.

    A model is scored against all the references, a human here against one fewer, which makes the
    humans' BLEU a little lower than it would be with as many: a ceiling to read, not a hard bound.
    """
    sizes = {len(group) for group in references}
    if len(sizes) != 1 or min(sizes) < 2:
        raise ValueError(f"human_ceiling needs the same number (2 or more) of references per image: {sizes}")
    rows = {}
    for k in range(sizes.pop()):
        hypotheses = [group[k] for group in references]
        others = [[r for j, r in enumerate(group) if j != k] for group in references]
        row = corpus_bleu_scores(others, hypotheses)
        if scenes is not None:
            from helpers.attributes import attribute_accuracy

            row.update(attribute_accuracy(hypotheses, scenes))
        rows[f"annotator {k}"] = row
    table = pd.DataFrame(rows).T
    table.loc["mean"] = table.mean()
    return table
