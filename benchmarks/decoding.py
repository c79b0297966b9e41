"""Greedy decoding, four ways: the textbook's loop that re-feeds the whole caption every step against
the course's carried LSTM state, each one image at a time and batched, so that carrying the state and
batching are each one ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.common import Captions, Row, Side, Sizes, bench_captions, measure
from helpers.decoding import greedy, greedy_naive
from helpers.models import DecoderRNN


class DecodeBench:
    """Greedy captions for a batch of images, four ways, to separate the two speed-ups of the course's loop.

    The textbook's loop re-feeds the whole caption every step (``greedy_naive``); the course's carries the
    LSTM state (``greedy``). Each runs one image at a time and as one batch: carrying state alone, and
    batching alone, are each one ratio. The decoder is untrained, and its ``<end>`` score is pushed far
    down so it never says ``<end>``: every loop runs exactly ``max_len + 1`` word steps for every image.
    """

    def __init__(self, captions: Captions, sizes: Sizes, device: torch.device):
        self.vocab, self.max_len = captions.vocab, sizes.decode_max_len
        torch.manual_seed(0)
        self.decoder = DecoderRNN(sizes.embed_size, sizes.hidden_size, len(self.vocab)).to(device).eval()
        with torch.no_grad():
            self.decoder.linear.bias[self.vocab.end_id] = -1e4
        self.features = torch.randn(sizes.decode_images, sizes.embed_size, device=device)

    def _one_by_one(self, decode) -> list[list[int]]:
        return [
            decode(self.decoder, self.features[i : i + 1], self.vocab, self.max_len).ids[0]
            for i in range(len(self.features))
        ]

    def naive(self) -> list[list[int]]:
        """The textbook's loop: re-feed the caption so far, one image at a time."""
        return self._one_by_one(greedy_naive)

    def carried(self) -> list[list[int]]:
        """State carried, one image at a time."""
        return self._one_by_one(greedy)

    def naive_batched(self) -> list[list[int]]:
        """Re-feed the caption so far, all images as one batch."""
        return greedy_naive(self.decoder, self.features, self.vocab, self.max_len).ids

    def batched(self) -> list[list[int]]:
        """The course: state carried, all images as one batch."""
        return greedy(self.decoder, self.features, self.vocab, self.max_len).ids

    def sides(self) -> list[Side]:
        """No separate warm-up: the check that all give the same captions runs each side first."""
        return [Side(name, getattr(self, name), lambda: None) for name in SIDES]


SIDES = ("naive", "carried", "naive_batched", "batched")


def run(sizes: Sizes, data_dir: Path, device: torch.device, log: Callable[[str], None]) -> tuple[dict, dict]:
    """Check that the four loops write the same captions, then time them; ``(keys decode_*, samples)``."""
    log("decoding ...")
    decode = DecodeBench(bench_captions("decode", sizes, data_dir), sizes, device)
    ids = {side.name: side.run() for side in decode.sides()}
    words = {len(row) for rows in ids.values() for row in rows}  # max_len words, after max_len + 1 steps
    if any(rows != ids["naive"] for rows in ids.values()) or words != {sizes.decode_max_len}:
        raise AssertionError(f"the greedy loops disagree (or stopped early: word counts {words})")
    times, peaks, samples = measure(decode, sizes, device)
    result = dict(
        decode_images=sizes.decode_images,
        decode_steps=sizes.decode_max_len + 1,
        decode_naive_s=times["naive"],
        decode_carried_s=times["carried"],
        decode_naive_batched_s=times["naive_batched"],
        decode_batched_s=times["batched"],
        # the whole way from the textbook's loop to the course's, then its two parts, each on its own
        decode_speedup_batched_vs_naive=times["naive"] / times["batched"],
        decode_speedup_state_one_by_one=times["naive"] / times["carried"],
        decode_speedup_batching_naive=times["naive"] / times["naive_batched"],
        decode_speedup_state_batched=times["naive_batched"] / times["batched"],
        decode_speedup_batching_carried=times["carried"] / times["batched"],
        decode_captions_identical=True,
        **{f"decode_{name}_peak_mb": peaks[name] for name in SIDES},
    )
    return result, samples


LABELS = {"naive": "naive, 1 by 1", "carried": "carried, 1 by 1", "naive_batched": "naive, batched"}
ROWS = (  # title, side A, side B, the ratio's key
    ("greedy ({decode_images} images, {decode_steps} steps)", "naive", "batched", "batched_vs_naive"),
    ("  state carried, one image at a time", "naive", "carried", "state_one_by_one"),
    ("  batching, caption re-fed", "naive", "naive_batched", "batching_naive"),
    ("  state carried, batched", "naive_batched", "batched", "state_batched"),
    ("  batching, state carried", "carried", "batched", "batching_carried"),
)


def rows(result: dict) -> list[Row]:
    def side(name: str) -> tuple[str, float, float | None]:
        return LABELS.get(name, name), result[f"decode_{name}_s"], result[f"decode_{name}_peak_mb"]

    return [
        Row(title.format(**result), *side(a), *side(b), f"decode_speedup_{key}") for title, a, b, key in ROWS
    ]
