"""Words to numbers and back: a tokenizer that needs no downloaded data, and the vocabulary.

The vocabulary is built from the training split only (so dev and test words the model never saw become
``<unk>``, as they would in real use), keeps words seen at least ``min_freq`` times, and is saved as
JSON — readable, diffable, and safe to load, unlike a pickled object.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)  # so <pad> is 0, which is what padding fills captions with

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Split a caption into lower-case words, dropping punctuation.

    ``"A dog's ball, (red)!"`` → ``["a", "dog's", "ball", "red"]``. Apostrophes inside a word stay;
    every other non-letter, non-digit character separates words. Needs no nltk data.
    """
    return _WORD.findall(text.lower())


class Vocabulary:
    """A two-way map between words and indices, with ``<pad>=0, <start>=1, <end>=2, <unk>=3``."""

    def __init__(self, words: Sequence[str]):
        """``words`` are the ordinary words, most frequent first; the four specials are put in front."""
        self.itos: list[str] = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary cannot hold the same word twice")

    pad_id, start_id, end_id, unk_id = 0, 1, 2, 3

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 1) -> Vocabulary:
        """Count the words of ``captions`` and keep those seen at least ``min_freq`` times.

        Words are ordered by frequency, ties alphabetically, so the same captions always give the same
        indices.
        """
        counts = Counter(word for caption in captions for word in tokenize(caption))
        kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls(kept)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words: {' '.join(self.itos[:8])} ...)"

    def encode(self, caption: str | Sequence[str], max_words: int | None = None) -> list[int]:
        """``"A red circle"`` → ``[<start>, a, red, circle, <end>]`` as indices.

        Unknown words become ``<unk>``. ``max_words`` counts words, never ``<start>``/``<end>``: at most
        ``max_words`` words are kept (the caption is cut, ``<end>`` is still added), so the result has at
        most ``max_words + 2`` indices.
        """
        words = tokenize(caption) if isinstance(caption, str) else list(caption)
        if max_words is not None:
            words = words[:max_words]
        return [self.start_id] + [self.stoi.get(w, self.unk_id) for w in words] + [self.end_id]

    def decode(self, ids: Iterable[int], strip_special: bool = True) -> list[str]:
        """Indices → words. By default stops at ``<end>`` and drops ``<start>`` and ``<pad>``."""
        words = []
        for i in ids:
            word = self.itos[int(i)]
            if strip_special:
                if word == END:
                    break
                if word in (START, PAD):
                    continue
            words.append(word)
        return words

    def to_dict(self) -> dict:
        """A JSON-ready description (what a checkpoint stores)."""
        return {"itos": self.itos}

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        itos = data.get("itos") if isinstance(data, dict) else None
        if not isinstance(itos, list) or list(itos[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(
                "not a vocabulary: expected {'itos': ['<pad>', '<start>', '<end>', '<unk>', ...]}"
            )
        return cls(itos[len(SPECIALS) :])

    def save(self, path: Path | str) -> None:
        """Write the vocabulary as JSON (one word list; its order is the index)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`; a broken file raises ``ValueError`` naming it."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as error:
            raise ValueError(f"{path}: cannot read the vocabulary ({error})") from None
