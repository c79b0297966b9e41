"""CIDEr-D's floor and ceiling, like BLEU's in :mod:`helpers.metrics`: the best image-blind caption chosen by
CIDEr-D itself (:func:`best_blind_caption_cider`), and the humans, each reference against the others
(:func:`human_cider_d`). Both score with :func:`helpers.metrics.cider_d`'s definition.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from helpers.metrics import CIDER_SCALE, CIDER_SIGMA, COCO_MAX_N, _all_ngrams, cider_d
from helpers.vocabulary import tokenize


class _ConstantCider:
    """Corpus CIDEr-D of one caption given to every image, fast enough to try thousands of captions.

    With the same hypothesis everywhere, the corpus score is a sum over its n-grams ``g`` of terms that
    depend only on ``g``, its count in the hypothesis and the hypothesis' length; each term is a sum over
    the references holding ``g``, computed once (``term``) and reused.
    """

    def __init__(self, references: Sequence[Sequence[str]]):
        refs = [[tokenize(r) for r in group] for group in references]
        counts = [[_all_ngrams(r) for r in group] for group in refs]
        document_frequency: dict = defaultdict(int)
        for group in counts:
            for gram in set().union(*(c.keys() for c in group)):
                document_frequency[gram] += 1
        self.images = len(refs)
        self.log_images = math.log(self.images)
        self.idf = {gram: self.log_images - math.log(df) for gram, df in document_frequency.items()}
        rows: dict = defaultdict(list)  # n-gram → (count in a reference, its length, 1 / (refs × norm))
        for group, group_counts in zip(refs, counts, strict=True):
            for ref, ref_counts in zip(group, group_counts, strict=True):
                norms = [0.0] * COCO_MAX_N
                for gram, count in ref_counts.items():
                    norms[len(gram) - 1] += (count * self.idf[gram]) ** 2
                for gram, count in ref_counts.items():
                    if self.idf[gram] > 0:
                        scale = 1 / (len(group) * math.sqrt(norms[len(gram) - 1]))
                        rows[gram].append((count, len(ref), scale))
        self.rows = {gram: np.array(values).T for gram, values in rows.items()}
        self._terms: dict = {}

    def term(self, gram: tuple[str, ...], count: int, length: int) -> float:
        """Σ over the references r holding ``gram``: idf² · min(count, c_r) · c_r · length penalty, divided by
        the image's number of references and r's norm of order n."""
        key = (gram, count, length)
        if key not in self._terms:
            rows = self.rows.get(gram)
            if rows is None:
                self._terms[key] = 0.0
            else:
                ref_counts, ref_lengths, scale = rows
                penalty = np.exp(-((length - ref_lengths) ** 2) / (2 * CIDER_SIGMA**2))
                total = (np.minimum(count, ref_counts) * ref_counts * scale * penalty).sum()
                self._terms[key] = float(self.idf[gram] ** 2 * total)
        return self._terms[key]

    def score(self, tokens: Sequence[str]) -> float:
        counts = _all_ngrams(tokens)
        norms = [0.0] * COCO_MAX_N
        for gram, count in counts.items():
            norms[len(gram) - 1] += (count * self.idf.get(gram, self.log_images)) ** 2
        total = 0.0
        for gram, count in counts.items():
            norm = math.sqrt(norms[len(gram) - 1])
            if norm:
                total += self.term(gram, count, len(tokens)) / norm
        return CIDER_SCALE * total / COCO_MAX_N / self.images


def best_blind_caption_cider(
    candidates: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[str, float]:
    """The one caption that, given to every image without looking at it, scores the highest CIDEr-D.

    ``candidates``: the captions to try (e.g. every training caption); ``references[i]``: image ``i``'s
    captions (e.g. the dev split's, so that the test images stay unseen). Returns the winner (the first
    of equals) and its corpus CIDEr-D on ``references``, as :func:`~helpers.metrics.cider_d` computes it.
    """
    if not candidates:
        raise ValueError("best_blind_caption_cider needs at least one candidate caption")
    scorer = _ConstantCider(references)
    distinct = list(dict.fromkeys(candidates))
    scores = [scorer.score(tokenize(caption)) for caption in distinct]
    best = int(np.argmax(scores))
    return distinct[best], scores[best]


def human_cider_d(references: Sequence[Sequence[str]]) -> dict[str, float]:
    """How well the humans agree by CIDEr-D: ``{"annotator k": corpus CIDEr-D of caption k of every image
    against the image's other captions, …, "mean": their mean}``.

    ``references[i]`` are image ``i``'s captions, the same number (2 or more) for every image.
    """
    sizes = {len(group) for group in references}
    if len(sizes) != 1 or min(sizes) < 2:
        raise ValueError(f"human_cider_d needs the same number (2 or more) of references per image: {sizes}")
    scores = {}
    for k in range(sizes.pop()):
        others = [[r for j, r in enumerate(group) if j != k] for group in references]
        scores[f"annotator {k}"] = cider_d(others, [group[k] for group in references])[0]
    scores["mean"] = sum(scores.values()) / len(scores)
    return scores
