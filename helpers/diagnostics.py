"""Failure diagnostics: is a model describing its images, or telling every image the same thing?

A captioner that learned only the language of the captions, not to look, can still reach a fair BLEU
(the best image-blind caption, :func:`helpers.metrics.best_blind_caption`, does). These figures show it:

- ``most_common_caption_share``: the share of images that get the single most common caption;
- ``distinct_1`` / ``distinct_2``: distinct words and word pairs over all words and pairs generated;
- ``mean_length`` against ``reference_mean_length``: captions in words, generated and human;
- ``vocabulary_coverage``: the share of the vocabulary's words that some caption uses;
- ``image_sensitivity``: the share of captions that change when each image's features are swapped
  for another image's. A model that ignores its image scores 0.

:data:`RULES` says when a figure is a failure, with its usual causes and how to check each;
:func:`diagnose` computes everything for a split and :func:`format_diagnosis` prints it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from helpers.config import MAX_DECODE
from helpers.decoding import decode_features
from helpers.models import Captioner
from helpers.vocabulary import SPECIALS, Vocabulary, tokenize


@dataclass(frozen=True)
class Rule:
    """A failure flagged when ``report[metric]`` is above (``above=True``) or below ``threshold``.

    ``causes`` are ``(usual cause, how to check it)`` pairs, printed with the flag.
    """

    name: str
    metric: str
    above: bool
    threshold: float
    title: str
    causes: tuple[tuple[str, str], ...]

    def flagged(self, report: dict) -> bool:
        value = report[self.metric]
        return value > self.threshold if self.above else value < self.threshold


_SAME_FEATURES = (
    "every image gets (nearly) the same features: a stale feature cache, images that failed to load, "
    "or features from another backbone or image size",
    "print features.std(dim=0).mean() over the split: near 0 means the images do not differ; delete "
    "the dataset's .cache/ folder and evaluate again",
)

RULES = (
    Rule(
        name="same_caption",
        metric="most_common_caption_share",
        above=True,
        threshold=0.20,
        title="the same caption for many images",
        causes=(
            (
                "the decoder learned only the most likely caption: training too short, or a learning "
                "rate too high or too low",
                "look at the run's history.csv (a training loss that stopped falling early, a dev "
                "BLEU-4 stuck near the best image-blind caption's, helpers.metrics.best_blind_caption)",
            ),
            _SAME_FEATURES,
            (
                "the projection of the features is dead: its output barely varies from image to image",
                "print model.encoder.project_features(features).std(dim=0).mean(): near 0 means the "
                "decoder receives one image",
            ),
            (
                "the wrong checkpoint, or an untrained model, was loaded",
                "check the epoch stored in the run's best.pt against history.csv, and caption a few "
                "training images: a trained model describes them well",
            ),
        ),
    ),
    Rule(
        name="image_blind",
        metric="image_sensitivity",
        above=False,
        threshold=0.50,
        title="captions barely change when the image does",
        causes=(
            (
                "the model relies on its language model and forgets the image, which it sees only "
                "before the first word",
                "run the diagnosis on the train split: low there too means the model never learned "
                "to use the image; high there and low here means the test features differ",
            ),
            _SAME_FEATURES,
            (
                "the image reaches the decoder with too small a scale next to the word embeddings",
                "compare model.encoder.project_features(features).std() with "
                "model.decoder.embed.weight.std()",
            ),
        ),
    ),
)


def most_common_caption(captions: Sequence[str]) -> tuple[str, float]:
    """The caption generated most often (the first of them on a tie) and the share of images it gets."""
    if not captions:
        raise ValueError("most_common_caption needs at least one caption")
    caption, count = Counter(captions).most_common(1)[0]
    return caption, count / len(captions)


def distinct_n(captions: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of all captions (words split on spaces); 0 when there are none."""
    grams = [
        tuple(words[i : i + n]) for words in (c.split() for c in captions) for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def vocabulary_coverage(captions: Sequence[str], vocab: Vocabulary) -> float:
    """The share of the vocabulary's ordinary words (not ``<pad>``, ``<start>``, ``<end>``, ``<unk>``)
    that appear in at least one caption."""
    words = [w for w in vocab.itos if w not in SPECIALS]
    used = {w for caption in captions for w in caption.split()}
    return sum(w in used for w in words) / len(words) if words else 0.0


def mean_length(captions: Sequence[str]) -> float:
    """Mean number of words of generated captions (words split on spaces)."""
    return sum(len(c.split()) for c in captions) / len(captions) if captions else 0.0


def swap_partners(images: int, seed: int = 0) -> list[int]:
    """A fixed derangement of ``range(images)``: ``partners[i]`` is the image whose features image ``i``
    gets, never ``i`` itself. All images in one random cycle, drawn from ``seed``."""
    if images < 2:
        raise ValueError(f"swapping features needs at least 2 images, got {images}")
    order = torch.randperm(images, generator=torch.Generator().manual_seed(seed)).tolist()
    partners = [0] * images
    for k, image in enumerate(order):
        partners[image] = order[(k + 1) % images]
    return partners


def image_sensitivity(
    model: Captioner,
    features: torch.Tensor,
    vocab: Vocabulary,
    device: torch.device | str = "cpu",
    captions: Sequence[str] | None = None,
    beam: int = 1,
    max_len: int = MAX_DECODE,
    seed: int = 0,
) -> float:
    """The share of captions that change when each image's features ``[N, 2048]`` are replaced by another
    image's (:func:`swap_partners`), decoded as :func:`~helpers.decoding.decode_features` does.

    ``captions``: the captions of the unswapped features when already decoded (with the same ``beam``
    and ``max_len``). 0 for a model that ignores its image; near 1 for one whose every image differs.
    """
    if captions is None:
        captions = decode_features(model, features, vocab, device, beam=beam, max_len=max_len)
    partners = swap_partners(len(captions), seed)
    swapped = decode_features(model, features[partners], vocab, device, beam=beam, max_len=max_len)
    return sum(a != b for a, b in zip(captions, swapped, strict=True)) / len(captions)


def flags(report: dict) -> list[Rule]:
    """The :data:`RULES` whose failure ``report`` (as :func:`diagnose` returns it) shows."""
    return [rule for rule in RULES if rule.flagged(report)]


def diagnose(
    model: Captioner,
    features: torch.Tensor,
    vocab: Vocabulary,
    references: Sequence[Sequence[str]],
    device: torch.device | str = "cpu",
    beam: int = 1,
    max_len: int = MAX_DECODE,
    seed: int = 0,
    captions: Sequence[str] | None = None,
) -> dict:
    """Every diagnostic of a model on one split, as a JSON-serialisable dict.

    In: backbone features ``[N, 2048]`` of the split's images and ``references[i]``, image ``i``'s
    captions. Out: ``images``, ``most_common_caption``, ``most_common_caption_share``, ``distinct_1``,
    ``distinct_2``, ``mean_length``, ``reference_mean_length`` (words, :func:`~helpers.vocabulary.tokenize`),
    ``vocabulary_coverage``, ``image_sensitivity`` and ``flags`` (the names of the :data:`RULES` that fail).
    ``captions``: the features' captions when already decoded (with the same ``beam`` and ``max_len``).
    """
    if len(references) != features.shape[0]:
        raise ValueError(f"{len(references)} reference sets for {features.shape[0]} images")
    if captions is None:
        captions = decode_features(model, features, vocab, device, beam=beam, max_len=max_len)
    caption, share = most_common_caption(captions)
    reference_lengths = [len(tokenize(r)) for group in references for r in group]
    report = {
        "images": len(captions),
        "most_common_caption": caption,
        "most_common_caption_share": share,
        "distinct_1": distinct_n(captions, 1),
        "distinct_2": distinct_n(captions, 2),
        "mean_length": mean_length(captions),
        "reference_mean_length": sum(reference_lengths) / max(1, len(reference_lengths)),
        "vocabulary_coverage": vocabulary_coverage(captions, vocab),
        "image_sensitivity": image_sensitivity(model, features, vocab, device, captions, beam, max_len, seed),
    }
    report["flags"] = [rule.name for rule in flags(report)]
    return report


def format_diagnosis(report: dict) -> str:
    """:func:`diagnose`'s report as lines to print; each flag with its usual causes and how to check them."""
    lines = [
        f"  most common caption   {report['most_common_caption_share']:.1%} of {report['images']} images: "
        f"{report['most_common_caption']!r}",
        f"  diversity             distinct-1 {report['distinct_1']:.4f}, "
        f"distinct-2 {report['distinct_2']:.4f}",
        f"  mean length           {report['mean_length']:.2f} words "
        f"(references {report['reference_mean_length']:.2f})",
        f"  vocabulary generated  {report['vocabulary_coverage']:.1%} of the words",
        f"  image sensitivity     {report['image_sensitivity']:.1%} of captions change when the image's "
        "features are swapped for another image's",
    ]
    flagged = [rule for rule in RULES if rule.name in report["flags"]]
    if not flagged:
        lines.append("  no failure flagged")
    for rule in flagged:
        side = "above" if rule.above else "below"
        lines.append(f"  FLAG {rule.name}: {rule.title} ({rule.metric} {side} {rule.threshold:.0%})")
        lines.append("    usual causes, and how to check each:")
        for cause, check in rule.causes:
            lines += [f"    - {cause}", f"      check: {check}"]
    return "\n".join(lines)
