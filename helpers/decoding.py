"""Turning image features into captions: the simplest greedy loop, which reads the whole caption again at
every step; greedy with the LSTM state carried; beam search; then captions for many images at once
(scoring them is :mod:`helpers.evaluation`'s job).

``greedy_naive``, ``greedy`` and ``beam_search`` take a batch, ``features [B, E]`` (from
:class:`~helpers.models.EncoderCNN`), begin every caption with :meth:`~helpers.models.DecoderRNN.start`,
and return a :class:`Decoded`: the word indices of each caption (no ``<start>``/``<end>``) and the caption
as a string.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from helpers.config import MAX_DECODE
from helpers.models import Captioner, DecoderRNN
from helpers.vocabulary import Vocabulary

if TYPE_CHECKING:
    pass


class Decoded(NamedTuple):
    """Captions for a batch: ``ids[b]`` the word indices, ``captions[b]`` the words joined by spaces."""

    ids: list[list[int]]
    captions: list[str]


def _finish(rows: torch.Tensor, vocab: Vocabulary, max_len: int) -> Decoded:
    """``[B, steps]`` predicted indices → words up to (not including) each row's first ``<end>``.

    The loops run ``max_len + 1`` steps, so that a caption of exactly ``max_len`` words can still say
    ``<end>``; a row that never does is cut to ``max_len`` words.
    """
    ids = []
    for row in rows.tolist():
        words = row[: row.index(vocab.end_id)] if vocab.end_id in row else row
        ids.append(words[:max_len])
    return Decoded(ids, [" ".join(vocab.itos[i] for i in words) for words in ids])


def greedy_naive(
    decoder: DecoderRNN, features: torch.Tensor, vocab: Vocabulary, max_len: int = MAX_DECODE
) -> Decoded:
    """The simplest greedy loop: at every step, feed the image and the *whole* caption so far again.

    After the first word (:meth:`~helpers.models.DecoderRNN.start`), step ``t`` runs the LSTM over
    ``t + 2`` positions (image, ``<start>``, ``t`` words) and keeps only the last prediction, so a caption
    of ``n`` words costs about ``n² / 2`` LSTM steps. Stops when every caption has produced ``<end>``, or
    after ``max_len`` words.
    """
    with torch.no_grad():
        batch = features.shape[0]
        logits, _ = decoder.start(features, vocab.start_id)
        word = logits.argmax(dim=-1)
        sequence = torch.stack([torch.full_like(word, vocab.start_id), word], dim=1)  # [B, 2]
        ended = word == vocab.end_id
        while sequence.shape[1] <= max_len + 1 and not ended.all():  # max_len words, then room for <end>
            logits = decoder(features, sequence, [sequence.shape[1]] * batch)  # [B, t+2, V]: all, again
            word = logits[:, -1].argmax(dim=-1)
            sequence = torch.cat([sequence, word.unsqueeze(1)], dim=1)
            ended |= word == vocab.end_id
        return _finish(sequence[:, 1:], vocab, max_len)


def greedy(
    decoder: DecoderRNN,
    features: torch.Tensor,
    vocab: Vocabulary,
    max_len: int = MAX_DECODE,
    return_attention: bool = False,
) -> Decoded | tuple[Decoded, torch.Tensor]:
    """Greedy decoding with the LSTM state carried from step to step: one LSTM step per word.

    Same captions as :func:`greedy_naive` (the LSTM is causal, so re-reading the past gives the state we
    already had), in about ``n`` steps instead of ``n² / 2``. A caption that never says ``<end>`` stops
    after ``max_len`` words. ``return_attention`` (a decoder whose state has ``alpha``, such as
    :class:`~helpers.attention.AttentionDecoder`): also the map of every step, ``[B, steps, N]``, where
    ``[:, k]`` is the map of the step that chose word ``k`` (``ids[b][k]``; the last may be ``<end>``).
    """
    with torch.no_grad():
        logits, state = decoder.start(features, vocab.start_id)
        word = logits.argmax(dim=-1)
        words, ended = [word], word == vocab.end_id
        maps = [state.alpha] if return_attention else []
        while len(words) <= max_len and not ended.all():  # max_len words, then room for <end>
            logits, state = decoder.step(decoder.embed(word), state)
            word = logits.argmax(dim=-1)
            words.append(word)
            maps += [state.alpha] if return_attention else []
            ended |= word == vocab.end_id
        decoded = _finish(torch.stack(words, dim=1), vocab, max_len)
        return (decoded, torch.stack(maps, dim=1)) if return_attention else decoded


def select_state(state, rows: torch.Tensor):
    """The decoder state of the captions ``rows [K]`` (batch indices, repeats allowed), in that order.

    An LSTM state ``(h, c)`` has the batch along dim 1 (``[L, B, H]``); a state that knows its own layout
    (:class:`~helpers.attention.AttentionState`) picks its rows with its ``select``.
    """
    if hasattr(state, "select"):
        return state.select(rows)
    h, c = state
    return h[:, rows], c[:, rows]


def beam_search(
    decoder: DecoderRNN, features: torch.Tensor, vocab: Vocabulary, beam: int = 3, max_len: int = MAX_DECODE
) -> Decoded:
    """Keep the ``beam`` most probable partial captions of each image, not just the best one.

    Every step extends each of the ``beam`` captions by every word, and keeps the ``beam`` best of the
    ``beam × V`` candidates by total log-probability. A caption that has ended keeps its place in the
    beam with its score (it can only "continue" with ``<end>``, at no cost) and competes for the ``beam``
    places with the captions still growing, so fewer grow as more end; decoding stops when every caption
    in every image's beam has ended, or after ``max_len + 1`` steps. The answer is the finished caption
    with the best log-probability per token, its words and its ``<end>`` (so long captions are not
    punished for having more words); an image whose beam holds none takes its best one per token, cut to
    ``max_len`` words. ``beam=1`` is greedy decoding.
    """
    with torch.no_grad():
        batch, vocab_size = features.shape[0], decoder.vocab_size
        device = features.device
        logits, state = decoder.start(features, vocab.start_id)
        logits = logits.repeat_interleave(beam, dim=0)  # [B*k, V]
        state = select_state(state, torch.arange(batch, device=device).repeat_interleave(beam))  # B*k
        scores = torch.full((batch, beam), float("-inf"), device=device)
        scores[:, 0] = 0.0  # all beams start identical: let only the first one expand at step one
        tokens = torch.full((batch, beam, 0), vocab.end_id, dtype=torch.long, device=device)
        lengths = torch.zeros(batch, beam, device=device)
        ended = torch.zeros(batch, beam, dtype=torch.bool, device=device)
        for step in range(max_len + 1):  # max_len words, then room for <end>
            log_probs = logits.log_softmax(dim=-1).view(batch, beam, vocab_size)
            # an ended caption may only "continue" with <end> at no cost, so it keeps its score
            frozen = torch.full_like(log_probs, float("-inf"))
            frozen[..., vocab.end_id] = 0.0
            log_probs = torch.where(ended.unsqueeze(-1), frozen, log_probs)
            candidates = (scores.unsqueeze(-1) + log_probs).view(batch, beam * vocab_size)
            scores, flat = candidates.topk(beam, dim=-1)  # [B, k]
            origin, word_bk = flat // vocab_size, flat % vocab_size
            kept = tokens.gather(1, origin.unsqueeze(-1).expand(-1, -1, tokens.shape[2]))
            tokens = torch.cat([kept, word_bk.unsqueeze(-1)], dim=-1)
            was_ended = ended.gather(1, origin)
            lengths = lengths.gather(1, origin) + (~was_ended).float()
            ended = was_ended | (word_bk == vocab.end_id)
            rows = (origin + torch.arange(batch, device=device).unsqueeze(1) * beam).view(-1)
            state = select_state(state, rows)
            if ended.all() or step == max_len:
                break
            logits, state = decoder.step(decoder.embed(word_bk.view(-1)), state)
        # prefer finished captions; among them the best average log-probability per token
        normalised = scores / lengths.clamp(min=1) + torch.where(ended, 0.0, float("-inf"))
        normalised = torch.where(ended.any(dim=1, keepdim=True), normalised, scores / lengths.clamp(min=1))
        best = normalised.argmax(dim=1)
        return _finish(tokens[torch.arange(batch, device=device), best], vocab, max_len)


def decode_features(
    model: Captioner,
    features: torch.Tensor,
    vocab: Vocabulary,
    device: torch.device | str,
    beam: int = 1,
    max_len: int = MAX_DECODE,
    batch_size: int = 500,
) -> list[str]:
    """Captions for backbone features ``[N, 2048]``: greedy when ``beam == 1``, else beam search."""
    model.eval()
    captions = []
    with torch.no_grad():
        for chunk in features.split(batch_size):
            embedded = model.encoder.project_features(chunk.to(device))
            if beam == 1:
                captions += greedy(model.decoder, embedded, vocab, max_len=max_len).captions
            else:
                captions += beam_search(model.decoder, embedded, vocab, beam=beam, max_len=max_len).captions
    return captions
