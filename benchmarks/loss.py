"""The loss, forward and backward on one batch: the textbook's prefix → next-word loss (one forward per
prefix) against all positions at once, and the packed loss that ``fit`` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from benchmarks.common import Captions, Row, Side, Sizes, bench_captions, measure
from helpers.batches import encode_captions
from helpers.models import DecoderRNN, packed_loss, prefix_loss, sequence_loss


class LossBench:
    """Forward + backward of the loss on one batch: the textbook's prefix loss vs all positions at once."""

    def __init__(self, captions: Captions, sizes: Sizes, device: torch.device):
        self.device = device
        vocab = captions.vocab
        torch.manual_seed(0)
        self.decoder = DecoderRNN(sizes.embed_size, sizes.hidden_size, len(vocab)).to(device)
        table = pd.DataFrame({"image": captions.images, "caption": captions.texts}).iloc[: sizes.batch_size]
        _, padded, self.lengths = encode_captions(
            table, list(dict.fromkeys(table["image"])), vocab, sizes.max_words
        )
        self.captions = padded.to(device)
        self.features = torch.randn(len(self.lengths), sizes.embed_size, device=device, requires_grad=True)

    def full(self) -> torch.Tensor:
        logits = self.decoder(self.features, self.captions, self.lengths)
        return sequence_loss(logits, self.captions, self.lengths.to(self.device))

    def prefix(self) -> torch.Tensor:
        return prefix_loss(self.decoder, self.features, self.captions, self.lengths)

    def packed(self) -> torch.Tensor:
        return packed_loss(self.decoder, self.features, self.captions, self.lengths)

    def _backward(self, loss_fn: Callable[[], torch.Tensor]) -> None:
        self.decoder.zero_grad(set_to_none=True)
        self.features.grad = None
        loss_fn().backward()

    def agree(self) -> tuple[bool, float, float, float]:
        """The three losses on the same batch, and whether they are equal (``allclose``)."""
        with torch.no_grad():
            full, prefix, packed = self.full(), self.prefix(), self.packed()
        same = all(torch.allclose(full, other, rtol=1e-4, atol=1e-5) for other in (prefix, packed))
        return same, float(full), float(prefix), float(packed)

    def sides(self) -> list[Side]:
        prefix, full = (lambda: self._backward(self.prefix)), (lambda: self._backward(self.full))
        packed = lambda: self._backward(self.packed)  # noqa: E731
        return [Side("prefix", prefix, prefix), Side("full", full, full), Side("packed", packed, packed)]


def run(sizes: Sizes, data_dir: Path, device: torch.device, log: Callable[[str], None]) -> tuple[dict, dict]:
    """Time the three losses on one whole batch; ``(result keys loss_*, raw samples)``."""
    log("loss ...")
    loss = LossBench(bench_captions("loss", sizes, data_dir), sizes, device)
    agree, full_value, prefix_value, packed_value = loss.agree()
    times, peaks, samples = measure(loss, sizes, device)
    result = dict(
        loss_batch=len(loss.lengths),
        loss_prefix_s=times["prefix"],
        loss_full_s=times["full"],
        loss_packed_s=times["packed"],
        loss_speedup_full_vs_prefix=times["prefix"] / times["full"],
        loss_speedup_packed_vs_prefix=times["prefix"] / times["packed"],
        loss_values_agree=agree,
        loss_full_value=full_value,
        loss_prefix_value=prefix_value,
        loss_packed_value=packed_value,
        loss_prefix_peak_mb=peaks["prefix"],
        loss_full_peak_mb=peaks["full"],
        loss_packed_peak_mb=peaks["packed"],
    )
    return result, samples


def rows(result: dict) -> list[Row]:
    prefix, peak = result["loss_prefix_s"], result["loss_prefix_peak_mb"]
    return [
        Row(
            f"loss fwd+bwd (batch {result['loss_batch']})",
            "prefix",
            prefix,
            peak,
            "full",
            result["loss_full_s"],
            result["loss_full_peak_mb"],
            "loss_speedup_full_vs_prefix",
        ),
        Row(
            "  packed: only real positions scored",
            "prefix",
            prefix,
            peak,
            "packed (fit's)",
            result["loss_packed_s"],
            result["loss_packed_peak_mb"],
            "loss_speedup_packed_vs_prefix",
        ),
    ]


def summary(result: dict) -> str:
    return (
        f"loss values agree (allclose): {result['loss_values_agree']} "
        f"(full {result['loss_full_value']:.5f}, prefix {result['loss_prefix_value']:.5f}, "
        f"packed {result['loss_packed_value']:.5f})"
    )
