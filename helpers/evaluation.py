"""What a trained model scores on a split, as the ``evaluate`` command reports it: greedy (or beam) captions
for every image, decoded without teacher forcing, and their BLEU-1…4 against the references.

:func:`evaluate_bleu` scores captions of features already computed (``fit``'s validation after every
epoch); :func:`evaluate_split` computes a split's features itself (through the feature cache) and returns
the captions in a table, one row per image, for the attribute scores and the error analysis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from helpers.config import MAX_DECODE
from helpers.decoding import decode_features
from helpers.features import cached_features
from helpers.metrics import corpus_bleu_scores
from helpers.models import Captioner
from helpers.prepare import PreparedData
from helpers.vocabulary import Vocabulary

if TYPE_CHECKING:
    from helpers.config import TrainConfig


def evaluate_bleu(
    model: Captioner,
    features: torch.Tensor,
    references: Sequence[Sequence[str]],
    vocab: Vocabulary,
    device: torch.device | str,
    max_len: int = MAX_DECODE,
) -> tuple[dict[str, float], list[str]]:
    """Greedy captions from backbone features (pooled ``[N, 2048]`` or grids ``[N, C, h, w]``; no teacher
    forcing) and their BLEU-1…4."""
    hypotheses = decode_features(model, features, vocab, device, max_len=max_len)
    return corpus_bleu_scores(references, hypotheses), hypotheses


def evaluate_split(
    model: Captioner,
    vocab: Vocabulary,
    config: TrainConfig,
    data: PreparedData,
    split: str = "test",
    beam: int = 1,
    device: torch.device | str = "cpu",
    cache_dir: Path | str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, float], pd.DataFrame]:
    """BLEU-1…4 (0–1) of a trained model on every image of a split, and a table of its captions.

    The table has one row per image: ``image``, ``generated``, ``references`` (a list); for an attention
    model (``config.decoder == "attention"``) also ``maps``, the caption's maps ``[words + 1, N]``
    (:func:`~helpers.decoding.decode_features`).
    """
    device = torch.device(device)
    images = data.images(split)
    if not images:
        raise ValueError(f"the {split!r} split has no usable images")
    references = data.references(split)
    features = cached_features(model, images, config.image_size, device, cache_dir, log)
    attention = config.decoder == "attention"
    generated = decode_features(
        model, features, vocab, device, beam=beam, max_len=config.max_decode, return_attention=attention
    )
    generated, maps = generated if attention else (generated, None)
    refs = [references[image] for image in images]
    table = pd.DataFrame({"image": images, "generated": generated, "references": refs})
    if attention:
        table["maps"] = maps
    return corpus_bleu_scores(refs, generated), table
