"""BLEU, the standard score for captions: n-gram overlap with the human references.

Every score sits between a floor and a ceiling: :func:`best_blind_caption` is the best one caption
given to every image without looking at it, :func:`human_ceiling` scores each human reference against
the others. BLEU depends on the references and their style, so scores are comparable only on the same
dataset and split: the shapes set's BLEU says nothing about Flickr8k papers.

Scale: scores are between 0 and 1 in code, as nltk returns them; papers print them ×100
(Show, Attend and Tell's Flickr8k BLEU-4 of 19.5 is 0.195 here). References are tokenised exactly
like the hypotheses, with :func:`helpers.vocabulary.tokenize`, so punctuation cannot change a score.

Two implementations of BLEU: :func:`corpus_bleu_scores` is nltk's; :func:`coco_bleu` is the COCO caption
evaluation's (pycocoevalcap), what papers run, together with :func:`cider_d`. Both take each image's
closest reference length for the brevity penalty. They differ where a caption is shorter than n words
(nltk counts one unmatched n-gram for it, COCO none) and where an order has no match at all (nltk: about
0, COCO: a tiny positive number). Say which one a number is.
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


# ---------------------------------------------------------------------------------------------------------
# The COCO caption evaluation (pycocoevalcap): BLEU and CIDEr-D as papers compute them
# ---------------------------------------------------------------------------------------------------------

COCO_MAX_N = 4
# pycocoevalcap's guards against dividing by zero: an n-gram precision is (matched + 1e-15) / (total + 1e-9),
# so an order without any match gives a tiny positive BLEU where nltk gives 0
_COCO_TINY, _COCO_SMALL = 1e-15, 1e-9
CIDER_SIGMA = 6.0  # the Gaussian length penalty's standard deviation, in words
CIDER_SCALE = 10.0


def _coco_tokens(
    references: Sequence[Sequence[str]], hypotheses: Sequence[str]
) -> tuple[list[list[list[str]]], list[list[str]]]:
    """Check the inputs and tokenise them with :func:`~helpers.vocabulary.tokenize`."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses")
    if not hypotheses:
        raise ValueError("the COCO metrics need at least one hypothesis")
    for i, group in enumerate(references):
        if not group:
            raise ValueError(f"image {i} has no reference caption")
    return [[tokenize(r) for r in group] for group in references], [tokenize(h) for h in hypotheses]


def _all_ngrams(tokens: Sequence[str]) -> Counter:
    """Counts of every 1- to 4-gram of ``tokens``."""
    counts: Counter = Counter()
    for n in range(1, COCO_MAX_N + 1):
        counts.update(_ngrams(tokens, n))
    return counts


def coco_bleu(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU-1…4 (0–1) as the COCO caption evaluation computes them.

    ``references[i]`` are image ``i``'s captions, ``hypotheses[i]`` its generated caption; both are
    tokenised like :func:`corpus_bleu_scores` does. Returns ``{"bleu1": …, "bleu4": …}``.

    Definition: an n-gram of a hypothesis counts as matched at most as often as it occurs in one of its
    image's references (clipping). Matched and total n-gram counts are summed over the corpus; BLEU-n is
    the geometric mean of the precisions of orders 1…n, each ``(matched + 1e-15) / (total + 1e-9)``,
    times the brevity penalty ``exp(1 - r / c)`` when ``c < r``: ``c`` is the hypotheses' total length,
    ``r`` the sum over images of the reference length closest to the hypothesis' (the shorter on a tie).
    """
    refs, hyps = _coco_tokens(references, hypotheses)
    matched, total = [0] * COCO_MAX_N, [0] * COCO_MAX_N
    hyp_length = ref_length = 0
    for group, hyp in zip(refs, hyps, strict=True):
        most: Counter = Counter()
        for ref in group:
            for gram, count in _all_ngrams(ref).items():
                most[gram] = max(most[gram], count)
        for gram, count in _all_ngrams(hyp).items():
            matched[len(gram) - 1] += min(count, most[gram])
        for n in range(1, COCO_MAX_N + 1):
            total[n - 1] += max(0, len(hyp) - n + 1)
        hyp_length += len(hyp)
        ref_length += min((abs(len(ref) - len(hyp)), len(ref)) for ref in group)[1]
    ratio = (hyp_length + _COCO_TINY) / (ref_length + _COCO_SMALL)
    brevity = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    scores, product = {}, 1.0
    for n in range(1, COCO_MAX_N + 1):
        product *= (matched[n - 1] + _COCO_TINY) / (total[n - 1] + _COCO_SMALL)
        scores[f"bleu{n}"] = brevity * product ** (1 / n)
    return scores


def _tf_idf(
    counts: Counter, document_frequency: Counter, log_images: float
) -> tuple[list[dict], list[float]]:
    """n-gram counts → per order n, ``{n-gram: count × idf}`` and the vector's Euclidean norm.

    ``idf = log(images) - log(max(1, document frequency))``: an n-gram no reference has weighs as one
    seen in a single image.
    """
    vectors: list[dict] = [{} for _ in range(COCO_MAX_N)]
    for gram, count in counts.items():
        vectors[len(gram) - 1][gram] = count * (log_images - math.log(max(1, document_frequency[gram])))
    return vectors, [math.sqrt(sum(w * w for w in vector.values())) for vector in vectors]


def _cider_similarity(
    hyp: tuple[list[dict], list[float]], ref: tuple[list[dict], list[float]]
) -> list[float]:
    """Per order, the clipped cosine of a hypothesis' and a reference's tf-idf vectors (0 if one is empty)."""
    (hyp_vectors, hyp_norms), (ref_vectors, ref_norms) = hyp, ref
    similarities = []
    for hyp_vector, ref_vector, hyp_norm, ref_norm in zip(
        hyp_vectors, ref_vectors, hyp_norms, ref_norms, strict=True
    ):
        dot = sum(
            min(w, ref_vector.get(gram, 0.0)) * ref_vector.get(gram, 0.0) for gram, w in hyp_vector.items()
        )
        similarities.append(dot / (hyp_norm * ref_norm) if hyp_norm and ref_norm else 0.0)
    return similarities


def cider_d(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> tuple[float, list[float]]:
    """CIDEr-D as the COCO caption evaluation computes it: ``(corpus score, [score of image i])``.

    ``references[i]`` are image ``i``'s captions, ``hypotheses[i]`` its generated caption, tokenised like
    :func:`corpus_bleu_scores` does. The corpus score is the mean of the images' scores; a score is 0 for
    nothing in common and reaches 10 for a caption equal to all its references (on longer captions).

    Definition: each caption becomes, for n = 1…4, a vector of its n-grams weighted by TF-IDF (the
    count in the caption, times ``log(images / document frequency)``, where the document frequency is
    the number of images whose references contain the n-gram, counted over the evaluated set's
    references). Per order, the hypothesis' weights are clipped to the reference's, the cosine is taken
    and multiplied by the Gaussian length penalty ``exp(-(len(hyp) - len(ref))² / (2·6²))``. An image's
    score is 10 × the mean over the four orders of the mean over its references.
    """
    refs, hyps = _coco_tokens(references, hypotheses)
    ref_counts = [[_all_ngrams(ref) for ref in group] for group in refs]
    document_frequency: Counter = Counter(
        gram for group in ref_counts for gram in set().union(*(counts.keys() for counts in group))
    )
    log_images = math.log(len(refs))
    scores = []
    for hyp, group, group_counts in zip(hyps, refs, ref_counts, strict=True):
        hyp_vector = _tf_idf(_all_ngrams(hyp), document_frequency, log_images)
        total = [0.0] * COCO_MAX_N
        for ref, counts in zip(group, group_counts, strict=True):
            # pycocoevalcap measures a caption's length in bigrams; the difference is the same in words
            # for any two captions that have a bigram or a similarity at all
            penalty = math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * CIDER_SIGMA**2))
            similarity = _cider_similarity(hyp_vector, _tf_idf(counts, document_frequency, log_images))
            total = [t + s * penalty for t, s in zip(total, similarity, strict=True)]
        scores.append(CIDER_SCALE * sum(total) / COCO_MAX_N / len(group))
    return sum(scores) / len(scores), scores
