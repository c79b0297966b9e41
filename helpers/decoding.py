"""Turning image features into captions: the simplest greedy loop, which reads the whole caption again at
every step; greedy with the LSTM state carried; beam search; then captions for many images at once
(scoring them is :mod:`helpers.evaluation`'s job).

``greedy_naive``, ``greedy`` and ``beam_search`` take a batch of the encoder's features (``[B, E]`` from
:class:`~helpers.models.EncoderCNN`, or ``[B, N, D]`` from :class:`~helpers.attention.GridEncoder`), begin
every caption with the decoder's ``start``, and return a :class:`Decoded`: the word indices of each
caption (no ``<start>``/``<end>``) and the caption as a string.

The decoder protocol, which :class:`~helpers.models.DecoderRNN` and
:class:`~helpers.attention.AttentionDecoder` both follow (``greedy_naive`` needs the first: it re-reads
the caption with ``decoder(features, captions, lengths)``):

- ``decoder.start(features, start_id) → (logits [B, V], state)``: the scores of each caption's first word;
- ``decoder.step(decoder.embed(words [B]), state) → (logits [B, V], state)``: one more word;
- ``decoder.vocab_size``;
- the state holds every caption's rows along its batch: an LSTM's ``(h, c)`` ``[L, B, H]``, or a state with
  its own ``select(rows)`` (:class:`~helpers.attention.AttentionState`: the image's grid and keys travel
  with each caption), which :func:`select_state` reorders for beam search;
- a state with ``alpha [B, N]`` and ``beta [B, D]`` (the map and the gate of the step that made it) lets
  ``greedy`` and ``beam_search`` return them with ``return_attention=True``, as an :class:`Attention`.

:func:`decode_features` captions the encoder's cached ``backbone_features`` (pooled ``[N, 2048]``, or grids
``[N, C, h, w]``), projecting each chunk with ``model.encoder.project_features`` first.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from helpers.config import MAX_DECODE
from helpers.models import Captioner, DecoderRNN
from helpers.vocabulary import Vocabulary


class Decoded(NamedTuple):
    """Captions for a batch: ``ids[b]`` the word indices, ``captions[b]`` the words joined by spaces."""

    ids: list[list[int]]
    captions: list[str]


class Attention(NamedTuple):
    """Where each caption looked: ``alphas [B, steps, N]`` the map and ``betas [B, steps, D]`` the gate of
    every step; step ``k`` is the one that chose word ``k`` (``ids[b][k]``; the step after the last word
    chose ``<end>``, and steps past it are the decoder idling, to be cut off)."""

    alphas: torch.Tensor
    betas: torch.Tensor


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
) -> Decoded | tuple[Decoded, Attention]:
    """Greedy decoding with the LSTM state carried from step to step: one LSTM step per word.

    Same captions as :func:`greedy_naive` (the LSTM is causal, so re-reading the past gives the state we
    already had), in about ``n`` steps instead of ``n² / 2``. A caption that never says ``<end>`` stops
    after ``max_len`` words. ``return_attention`` (a decoder whose state has ``alpha`` and ``beta``, such
    as :class:`~helpers.attention.AttentionDecoder`): also the :class:`Attention` of every step.
    """
    with torch.no_grad():
        logits, state = decoder.start(features, vocab.start_id)
        word = logits.argmax(dim=-1)
        words, ended = [word], word == vocab.end_id
        looked = [(state.alpha, state.beta)] if return_attention else []
        while len(words) <= max_len and not ended.all():  # max_len words, then room for <end>
            logits, state = decoder.step(decoder.embed(word), state)
            word = logits.argmax(dim=-1)
            words.append(word)
            looked += [(state.alpha, state.beta)] if return_attention else []
            ended |= word == vocab.end_id
        decoded = _finish(torch.stack(words, dim=1), vocab, max_len)
        if not return_attention:
            return decoded
        return decoded, Attention(*(torch.stack(maps, dim=1) for maps in zip(*looked, strict=True)))


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
    decoder: DecoderRNN,
    features: torch.Tensor,
    vocab: Vocabulary,
    beam: int = 3,
    max_len: int = MAX_DECODE,
    return_attention: bool = False,
) -> Decoded | tuple[Decoded, Attention]:
    """Keep the ``beam`` most probable partial captions of each image, not just the best one.

    Every step extends each of the ``beam`` captions by every word, and keeps the ``beam`` best of the
    ``beam × V`` candidates by total log-probability. A caption that has ended keeps its place in the
    beam with its score (it can only "continue" with ``<end>``, at no cost) and competes for the ``beam``
    places with the captions still growing, so fewer grow as more end; decoding stops when every caption
    in every image's beam has ended, or after ``max_len + 1`` steps. The answer is the finished caption
    with the best log-probability per token, its words and its ``<end>`` (so long captions are not
    punished for having more words); an image whose beam holds none takes its best one per token, cut to
    ``max_len`` words. ``beam=1`` is greedy decoding. ``return_attention`` (as :func:`greedy`): also the
    :class:`Attention` of the answer, each step's map and gate moved with the hypothesis they belong to.
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
        looked = [] if return_attention else None  # per step: (alpha, beta) of each kept hypothesis
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
            state = select_state(state, rows)  # its alpha and beta: those that chose word_bk
            if looked is not None:
                looked = [(a[rows], b[rows]) for a, b in looked] + [(state.alpha, state.beta)]
            if ended.all() or step == max_len:
                break
            logits, state = decoder.step(decoder.embed(word_bk.view(-1)), state)
        best = _best_hypothesis(scores, lengths, ended)
        decoded = _finish(tokens[torch.arange(batch, device=device), best], vocab, max_len)
        if looked is None:
            return decoded
        chosen = best + torch.arange(batch, device=device) * beam
        return decoded, Attention(*(torch.stack(maps, dim=1)[chosen] for maps in zip(*looked, strict=True)))


def _best_hypothesis(scores: torch.Tensor, lengths: torch.Tensor, ended: torch.Tensor) -> torch.Tensor:
    """``[B]``: each image's answer among its ``[B, k]`` hypotheses: the finished one with the best
    log-probability per token, or, where none has finished, the best per token of all."""
    per_token = scores / lengths.clamp(min=1)
    normalised = per_token + torch.where(ended, 0.0, float("-inf"))
    normalised = torch.where(ended.any(dim=1, keepdim=True), normalised, per_token)
    return normalised.argmax(dim=1)


def decode_features(
    model: Captioner,
    features: torch.Tensor,
    vocab: Vocabulary,
    device: torch.device | str,
    beam: int = 1,
    max_len: int = MAX_DECODE,
    batch_size: int = 500,
    return_attention: bool = False,
) -> list[str] | tuple[list[str], list[torch.Tensor]]:
    """Captions for the encoder's backbone features (pooled ``[N, 2048]``, or grids ``[N, C, h, w]`` of
    an attention model, any float dtype): greedy when ``beam == 1``, else beam search.

    ``return_attention`` (an attention model): also each caption's maps, ``[words + 1, N]`` on the CPU
    (row ``k`` chose word ``k``; the last row chose ``<end>``, where the caption said it).
    """
    model.eval()
    captions, maps = [], []
    with torch.no_grad():
        for chunk in features.split(batch_size):
            embedded = model.encoder.project_features(chunk.to(device))
            if beam == 1:
                decoded = greedy(model.decoder, embedded, vocab, max_len, return_attention)
            else:
                decoded = beam_search(model.decoder, embedded, vocab, beam, max_len, return_attention)
            if return_attention:
                decoded, attention = decoded
                alphas = attention.alphas.cpu()
                maps += [alphas[b, : len(ids) + 1] for b, ids in enumerate(decoded.ids)]
            captions += decoded.captions
    return (captions, maps) if return_attention else captions
