"""Why a BLEU-4 differs from a paper's: each common way of computing it, on captions where it matters."""

import math

import pytest
import torch
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

from helpers.bleu_variants import bleu4, bleu_variants, caption_words, teacher_forced_captions
from helpers.metrics import coco_bleu
from helpers.vocabulary import Vocabulary

REFERENCES = [
    ["a red circle on a black background .", "there is a red circle in the middle", "a large red circle"],
    ["a blue square to the left of a green circle", "two shapes : a blue square and a green circle"],
    ["a green triangle on a white background", "there is a green triangle"],
]
HYPOTHESES = [
    "a red circle in the middle of the picture",
    "a blue square and a green circle on the right",
    "a small yellow square on the left",  # no 4-gram in common: its sentence BLEU-4 is 0
]


def test_caption_words_keeps_case_or_punctuation_only_when_asked():
    assert caption_words("A red circle .") == ["a", "red", "circle"]
    assert caption_words("A red circle .", lower=False) == ["A", "red", "circle"]
    assert caption_words("A red circle .", tokenise=False) == ["a", "red", "circle", "."]


def test_bleu4_corpus_is_not_the_mean_of_sentence_scores():
    refs = [[r.split() for r in group] for group in REFERENCES]
    hyps = [h.split() for h in HYPOTHESES]
    corpus = bleu4(REFERENCES, HYPOTHESES)
    mean = bleu4(REFERENCES, HYPOTHESES, sentence=True)
    assert corpus == pytest.approx(corpus_bleu(refs, hyps), abs=1e-12)
    sentences = [sentence_bleu(r, h) for r, h in zip(refs, hyps, strict=True)]
    assert mean == pytest.approx(sum(sentences) / 3, abs=1e-12)
    assert abs(corpus - mean) > 0.01


def test_bleu4_smoothing_is_nltks_named_method():
    refs, hyps = [["a red circle on a black background"]], ["the red circle on the left"]  # no 4-gram matches
    assert bleu4(refs, hyps, sentence=True) == pytest.approx(0.0, abs=1e-12)
    smoothed = bleu4(refs, hyps, sentence=True, smoothing="method1")
    method1 = SmoothingFunction().method1
    expected = sentence_bleu([refs[0][0].split()], hyps[0].split(), smoothing_function=method1)
    assert smoothed == pytest.approx(expected, abs=1e-12) and smoothed > 0.05
    with pytest.raises(ValueError, match="method99"):
        bleu4(refs, hyps, smoothing="method99")


def test_bleu4_without_lower_casing_misses_capitalised_references():
    refs, hyps = [["Red circle in the middle of the picture"]], ["red circle in the middle of the picture"]
    assert bleu4(refs, hyps) == pytest.approx(1.0)
    expected = corpus_bleu([[refs[0][0].split()]], [hyps[0].split()])
    assert bleu4(refs, hyps, lower=False) == pytest.approx(expected, abs=1e-12) and expected < 0.9


def test_bleu4_split_on_spaces_counts_the_full_stop_in_the_reference_length():
    refs, hyps = [["a red circle on a black background ."]], ["a red circle on a black background"]
    assert bleu4(refs, hyps) == pytest.approx(1.0)
    assert bleu4(refs, hyps, tokenise=False) == pytest.approx(math.exp(1 - 8 / 7))


def test_bleu4_with_one_reference_uses_the_first_only():
    one = [[group[0]] for group in REFERENCES]
    assert bleu4(REFERENCES, HYPOTHESES, max_references=1) == pytest.approx(bleu4(one, HYPOTHESES), abs=1e-12)
    assert bleu4(REFERENCES, HYPOTHESES, max_references=1) < bleu4(REFERENCES, HYPOTHESES)


def test_bleu4_coco_is_the_coco_caption_evaluation():
    expected = coco_bleu(REFERENCES, HYPOTHESES)["bleu4"]
    assert bleu4(REFERENCES, HYPOTHESES, coco=True) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="COCO"):
        bleu4(REFERENCES, HYPOTHESES, coco=True, lower=False)


def test_bleu_variants_table_has_one_measured_row_per_way():
    forced = ["a red circle on a black background", "a blue square to the left of a green circle", "a green"]
    table = bleu_variants(REFERENCES, HYPOTHESES, teacher_forced=forced)
    base = bleu4(REFERENCES, HYPOTHESES)
    values = table["BLEU-4"]
    assert values.iloc[0] == pytest.approx(base) and values.iloc[1] == pytest.approx(100 * base)
    assert sorted(values.round(12)) == sorted(
        round(v, 12)
        for v in (
            base, 100 * base,
            bleu4(REFERENCES, HYPOTHESES, sentence=True),
            bleu4(REFERENCES, HYPOTHESES, sentence=True, smoothing="method1"),
            bleu4(REFERENCES, HYPOTHESES, lower=False),
            bleu4(REFERENCES, HYPOTHESES, tokenise=False),
            bleu4(REFERENCES, HYPOTHESES, max_references=1),
            bleu4(REFERENCES, HYPOTHESES, coco=True),
            bleu4(REFERENCES, forced),
        )
    )
    assert "teacher" in table.index[-1] and len(bleu_variants(REFERENCES, HYPOTHESES)) == len(table) - 1


class _PerfectDecoder(torch.nn.Module):
    """Scores, at position t, exactly the caption's token t: the true next word."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, features, captions, lengths):
        targets = torch.nn.functional.pad(captions, (0, 1))  # position T has no token: <pad>
        return torch.nn.functional.one_hot(targets, self.vocab_size).float() * 5.0


class _EchoDecoder(torch.nn.Module):
    """Scores, at position t, the token it reads there (the image step: word 4); never the next one."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, features, captions, lengths):
        read = torch.nn.functional.pad(captions, (1, 0), value=4)  # position 0 reads the image
        return torch.nn.functional.one_hot(read, self.vocab_size).float() * 5.0


class _Encoder(torch.nn.Module):
    def project_features(self, pooled):
        return pooled


class _Captioner(torch.nn.Module):
    def __init__(self, decoder: torch.nn.Module):
        super().__init__()
        self.encoder, self.decoder = _Encoder(), decoder


def test_teacher_forced_captions_are_the_argmax_given_the_true_prefix():
    vocab = Vocabulary(["a", "red", "circle", "blue", "square", "on", "the", "left"])
    model = _Captioner(_PerfectDecoder(len(vocab)))
    captions = teacher_forced_captions(
        model, torch.zeros(2, 4), ["a red circle .", "a blue square on the left"], vocab, "cpu"
    )
    assert captions == ["a red circle", "a blue square on the left"]
    one = ["a blue square on the left"]
    cut = teacher_forced_captions(model, torch.zeros(1, 4), one, vocab, "cpu", max_words=3)
    assert cut == ["a blue square"]


def test_teacher_forced_captions_keep_every_guess_after_the_image_step_and_before_the_end():
    vocab = Vocabulary(["a", "red", "circle"])
    echo = _Captioner(_EchoDecoder(len(vocab)))
    # guesses after <start>, "a", "red", "circle": <start> (dropped), then the words it read
    forced = teacher_forced_captions(echo, torch.zeros(1, 4), ["a red circle"], vocab, "cpu")
    assert forced == ["a red circle"]
