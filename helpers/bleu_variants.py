"""Why a BLEU-4 differs from a paper's: the same captions scored each common way, one choice at a time.

:func:`bleu4` is corpus BLEU-4 with one switch per common difference (mean of sentence scores, nltk's
smoothing, case, tokenisation, the number of references, the COCO caption evaluation's definition);
:func:`bleu_variants` measures them all in one table; :func:`teacher_forced_captions` gives the captions a
model writes when it reads the true words at every step, which a validation loop may score by mistake.

Papers report corpus BLEU-4 of generated captions against all references, as the COCO caption evaluation
(pycocoevalcap) computes it on lower-cased, tokenised words, printed ×100.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pandas as pd
import torch
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

from helpers.data import pad_captions
from helpers.metrics import coco_bleu
from helpers.models import Captioner
from helpers.vocabulary import _WORD, SPECIALS, Vocabulary

FOUR = (0.25, 0.25, 0.25, 0.25)


def caption_words(text: str, lower: bool = True, tokenise: bool = True) -> list[str]:
    """A caption's words: tokenised as :func:`helpers.vocabulary.tokenize` does (punctuation dropped),
    or split on spaces (``tokenise=False``: "circle ." is two words); lower-cased unless ``lower=False``."""
    text = text.lower() if lower else text
    return _WORD.findall(text) if tokenise else text.split()


def _smoothing(name: str | None):
    if name is None:
        return None
    method = getattr(SmoothingFunction(), name, None) if name.startswith("method") else None
    if method is None:
        raise ValueError(f"smoothing must name a method of nltk's SmoothingFunction (method0…7): {name!r}")
    return method


def bleu4(
    references: Sequence[Sequence[str]],
    hypotheses: Sequence[str],
    *,
    sentence: bool = False,
    smoothing: str | None = None,
    lower: bool = True,
    tokenise: bool = True,
    max_references: int | None = None,
    coco: bool = False,
) -> float:
    """BLEU-4 (0–1) of ``hypotheses[i]`` against the captions ``references[i]``, computed one way.

    The default is the course's number: nltk's corpus BLEU-4, lower-cased tokenised words, every reference,
    no smoothing. ``sentence``: the mean of nltk's sentence BLEU-4 instead; ``smoothing``: the name of one
    of nltk's ``SmoothingFunction`` methods (``"method1"`` adds 0.1 to an order's zero matches);
    ``lower`` / ``tokenise``: see :func:`caption_words`; ``max_references``: only each image's first ones;
    ``coco``: :func:`helpers.metrics.coco_bleu` (always lower-cased and tokenised, never smoothed).
    """
    if len(references) != len(hypotheses) or not hypotheses:
        raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses (need 1+)")
    references = [list(group)[:max_references] for group in references]
    if coco:
        if sentence or smoothing or not lower or not tokenise:
            raise ValueError("the COCO caption evaluation's BLEU is corpus-level, lower-cased, tokenised")
        return coco_bleu(references, hypotheses)["bleu4"]
    refs = [[caption_words(r, lower, tokenise) for r in group] for group in references]
    hyps = [caption_words(h, lower, tokenise) for h in hypotheses]
    smooth = _smoothing(smoothing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nltk warns when an order has no match: the score is 0
        if sentence:
            pairs = zip(refs, hyps, strict=True)
            scores = [sentence_bleu(r, h, FOUR, smoothing_function=smooth) for r, h in pairs]
            return float(sum(scores) / len(scores))
        return float(corpus_bleu(refs, hyps, FOUR, smoothing_function=smooth))


def bleu_variants(
    references: Sequence[Sequence[str]],
    hypotheses: Sequence[str],
    teacher_forced: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One table: BLEU-4 of the same captions computed each common way, one change per row from the first.

    ``references[i]``: image ``i``'s captions; ``hypotheses[i]``: its generated caption; ``teacher_forced``
    (optional): its :func:`teacher_forced_captions`, scored as the last row. Index: the way; columns
    ``BLEU-4`` and ``scale`` ("0–1" or "×100").
    """
    n = max(len(group) for group in references)
    rows = {
        f"corpus, nltk, lower-cased, tokenised, {n} references, unsmoothed": bleu4(references, hypotheses),
        "mean of sentence BLEU-4, unsmoothed": bleu4(references, hypotheses, sentence=True),
        "mean of sentence BLEU-4, nltk smoothing method1": bleu4(
            references, hypotheses, sentence=True, smoothing="method1"
        ),
        "not lower-cased": bleu4(references, hypotheses, lower=False),
        "split on spaces, not tokenised": bleu4(references, hypotheses, tokenise=False),
        "1 reference (each image's first), not all": bleu4(references, hypotheses, max_references=1),
        "COCO caption evaluation's BLEU (pycocoevalcap)": bleu4(references, hypotheses, coco=True),
    }
    if teacher_forced is not None:
        rows["teacher-forced captions, not generated"] = bleu4(references, teacher_forced)
    table = pd.DataFrame({"BLEU-4": list(rows.values()), "scale": "0–1"}, index=list(rows))
    first = table.iloc[:1].rename(index=lambda _: "the same ×100")
    first["BLEU-4"], first["scale"] = 100 * first["BLEU-4"], "×100"
    return pd.concat([table.iloc[:1], first, table.iloc[1:]]).rename_axis("BLEU-4 computed as")


def teacher_forced_captions(
    model: Captioner,
    features: torch.Tensor,
    references: Sequence[str],
    vocab: Vocabulary,
    device: torch.device | str,
    max_words: int | None = None,
) -> list[str]:
    """What the model says when it reads the true words: backbone ``features [N, 2048]`` and one reference
    caption per image → N captions.

    Each reference (cut to ``max_words`` words) is read as in training (teacher forcing); at every position
    the model's most probable next word is kept, whatever it predicted before. Those words, ``<end>`` and
    the other special tokens left out, joined by spaces, are the caption: as long as the reference.
    """
    if len(references) != features.shape[0]:
        raise ValueError(f"{len(references)} references for {features.shape[0]} images")
    encoded = [torch.tensor(vocab.encode(r, max_words)) for r in references]
    captions, lengths = pad_captions(encoded, vocab.pad_id)
    model.eval()
    with torch.no_grad():
        features = model.encoder.project_features(features.to(device))
        logits = model.decoder(features, captions.to(device), lengths)
    predicted = logits.argmax(dim=-1).tolist()  # [N, T+1]: position t guesses token t
    specials = {vocab.stoi[word] for word in SPECIALS}
    return [
        " ".join(vocab.itos[i] for i in row[1:n] if i not in specials)  # guesses of the words and <end>
        for row, n in zip(predicted, lengths.tolist(), strict=True)
    ]
