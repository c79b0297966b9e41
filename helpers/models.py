"""The captioning model: a ResNet50 encoder and an LSTM decoder, plus the forms of the loss.

Shapes, with ``B`` images in a batch, captions padded to ``T`` tokens, ``E`` the embedding size,
``H`` the LSTM's hidden size and ``V`` the vocabulary size::

    images [B, 3, 224, 224] → ResNet50 without fc → [B, 2048, 1, 1] → flatten [B, 2048]
        → (standardise) → Linear → BatchNorm1d → ReLU → features [B, E]
    captions [B, T] → Embedding [B, T, E]; features as the first step → [B, T+1, E]
        → pack by lengths + 1 → LSTM → unpack [B, T+1, H] → Linear → logits [B, T+1, V]

Position ``t`` of the output has seen the image and the first ``t`` tokens, so it predicts token ``t``:
position 0 predicts ``<start>``, position 1 the first word, …, position ``n-1`` the ``<end>`` of a caption
of ``n`` tokens. The last position (after ``<end>``) has nothing left to predict.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from torchvision.models import ResNet50_Weights, resnet50

from helpers.vocabulary import Vocabulary

WEIGHT_CHOICES = ("auto", "imagenet", "random")
TRAIN_BACKBONE_CHOICES = ("none", "last", "all")
IGNORE = -100  # a target that no loss counts (cross_entropy's ignore_index)
RANDOM_WEIGHTS_NOTE = (
    "ImageNet weights for ResNet50 are not available here (not in torch's cache, and the download "
    "server cannot be reached), so the encoder starts from random weights: its frozen features still "
    "tell backgrounds and colours apart, which carries the shapes dataset a long way, but real "
    "photographs need the pretrained weights."
)


def imagenet_weights_cached() -> Path | None:
    """The path of ResNet50's ImageNet weights in torch's cache, or None when they were never fetched."""
    url = ResNet50_Weights.IMAGENET1K_V2.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return path if path.exists() else None


def imagenet_weights_reachable(timeout: float = 3.0) -> bool:
    """True when the weights are cached, or their download server answers within ``timeout`` seconds."""
    if imagenet_weights_cached() is not None:
        return True
    host = ResNet50_Weights.IMAGENET1K_V2.url.split("/")[2]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_weights(weights: str = "auto") -> str:
    """``"auto"`` → ``"imagenet"`` when the weights can be had (decided within seconds), else ``"random"``."""
    if weights not in WEIGHT_CHOICES:
        raise ValueError(f"weights must be one of {WEIGHT_CHOICES}, got {weights!r}")
    if weights == "auto":
        return "imagenet" if imagenet_weights_reachable() else "random"
    return weights


def build_resnet50(weights: str = "auto") -> tuple[nn.Module, str]:
    """A torchvision ResNet50 and the weights it got: ``"imagenet"`` or ``"random"``.

    ``weights`` is ``"imagenet"``, ``"random"`` or ``"auto"`` (:func:`resolve_weights`). With ``"auto"``,
    random weights come with one printed sentence saying so, and a download that breaks off falls back
    to them; with ``"imagenet"`` it raises ``OSError``.
    """
    resolved = resolve_weights(weights)
    if resolved == "imagenet":
        try:
            return resnet50(weights=ResNet50_Weights.IMAGENET1K_V2), "imagenet"
        except Exception as error:  # a download that broke off: say so, and carry on untrained
            if weights == "imagenet":
                raise OSError(f"could not load ResNet50's ImageNet weights ({error})") from error
    if weights == "auto":
        print(RANDOM_WEIGHTS_NOTE)
    return resnet50(weights=None), "random"


class EncoderCNN(nn.Module):
    """ResNet50 without its classifier, then a projection to the word-embedding size.

    ``images [B, 3, S, S] → features [B, embed_size]`` (any ``S`` ≥ 32 works: the adaptive average pool
    always gives ``[B, 2048, 1, 1]``).

    - ``weights``: ``"imagenet"``, ``"random"``, or ``"auto"`` (ImageNet when available, else random,
      with one printed sentence saying so). After construction ``self.weights`` says which was used.
    - ``train_backbone``: ``"none"`` (frozen, the default), ``"last"`` (only ``layer4`` learns) or
      ``"all"``. Frozen layers stay in eval mode even under ``.train()``, so their BatchNorm running
      statistics never drift away from what the weights were trained with.
    - ``standardize``: standardise the pooled features before the projection (see ``__init__``).
    """

    def __init__(
        self,
        embed_size: int = 300,
        weights: str = "auto",
        train_backbone: str = "none",
        standardize: bool = True,
    ):
        super().__init__()
        if train_backbone not in TRAIN_BACKBONE_CHOICES:
            raise ValueError(
                f"train_backbone must be one of {TRAIN_BACKBONE_CHOICES}, got {train_backbone!r}"
            )
        resnet, self.weights = build_resnet50(weights)
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])  # everything but fc
        # A BatchNorm without parameters: each of the 2048 features to mean 0, variance 1 over the data.
        # A random backbone's features put most of their variance in one direction (mostly the
        # background's brightness); standardised, the decoder learns the rest of the picture sooner
        # (notebook 03 measures both).
        self.standardize = (
            nn.BatchNorm1d(resnet.fc.in_features, affine=False) if standardize else nn.Identity()
        )
        self.project = nn.Linear(resnet.fc.in_features, embed_size)
        self.bn = nn.BatchNorm1d(embed_size, momentum=0.01)
        self.train_backbone = train_backbone
        for name, param in self.backbone.named_parameters():
            param.requires_grad = self._trains(name)

    def _trains(self, name: str) -> bool:
        # backbone children: 0 conv1, 1 bn1, 2 relu, 3 maxpool, 4-7 layer1-4, 8 avgpool
        return self.train_backbone == "all" or (self.train_backbone == "last" and name.startswith("7."))

    def train(self, mode: bool = True) -> EncoderCNN:
        """Like ``nn.Module.train``, but frozen backbone layers always stay in eval mode."""
        super().train(mode)
        if self.train_backbone == "none":
            self.backbone.eval()
        elif self.train_backbone == "last":
            self.backbone.eval()
            self.backbone[7].train(mode)
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """What an optimiser trains, in the two groups that learn at different rates: ``"head"`` (the
        projection and its BatchNorm, always) and ``"backbone"`` (the layers ``train_backbone`` unfroze;
        empty when the backbone is frozen)."""
        head = [p for name, p in self.named_parameters() if not name.startswith("backbone.")]
        return {"head": head, "backbone": [p for p in self.backbone.parameters() if p.requires_grad]}

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, S, S] → pooled features [B, 2048]``: what a feature cache stores."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_backbone != "none"):
            return self.backbone(images).flatten(1)

    def project_features(self, pooled: torch.Tensor) -> torch.Tensor:
        """``pooled [B, 2048] → features [B, embed_size]`` (standardise → Linear → BatchNorm1d → ReLU)."""
        if self.training and pooled.shape[0] == 1:
            raise ValueError(
                "BatchNorm1d cannot train on a batch of one image: it normalises each feature over the "
                "batch, and one value has no spread. Use batches of 2 or more, or call .eval() first."
            )
        return F.relu(self.bn(self.project(self.standardize(pooled))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, S, S] → features [B, embed_size]``."""
        return self.project_features(self.backbone_features(images))


def _cpu_lengths(lengths: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Lengths as a CPU int64 tensor, which is what ``pack_padded_sequence`` requires."""
    return torch.as_tensor(lengths, dtype=torch.long).cpu()


class DecoderRNN(nn.Module):
    """An LSTM that reads the image feature, then the caption, and scores every next word.

    ``forward(features [B, E], captions [B, T], lengths [B]) → logits [B, T+1, V]``. ``lengths`` are the
    true caption lengths (``<start>`` and ``<end>`` included), as a tensor or a list, in any order.
    ``dropout > 0`` zeroes that share of the LSTM's inputs and outputs while training (a regulariser
    for small real datasets); at 0 there is no dropout layer at all, so results are exactly as without.
    """

    def __init__(
        self, embed_size: int, hidden_size: int, vocab_size: int, num_layers: int = 1, dropout: float = 0.0
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.lstm = nn.LSTM(embed_size, hidden_size, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, vocab_size)
        # (no weights either way, so checkpoints load with or without it)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def vocab_size(self) -> int:
        return self.embed.num_embeddings

    def forward(
        self,
        features: torch.Tensor,
        captions: torch.Tensor,
        lengths: torch.Tensor | Sequence[int],
        return_state: bool = False,
    ):
        """Score every position at once (teacher forcing).

        ``features [B, E]`` and ``captions [B, T]`` → ``logits [B, T+1, V]``; with ``return_state`` also
        the LSTM's final ``(h, c)``, each ``[num_layers, B, H]``. Padding never enters the LSTM: the
        sequence is packed by ``lengths + 1`` (the image feature is one more step).
        """
        outputs, state = self.packed_hiddens(features, captions, lengths)
        hiddens, _ = pad_packed_sequence(
            outputs, batch_first=True, total_length=captions.shape[1] + 1
        )  # [B, T+1, H]
        logits = self.linear(self.dropout(hiddens))  # [B, T+1, V]
        return (logits, state) if return_state else logits

    def packed_hiddens(
        self, features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor | Sequence[int]
    ) -> tuple[PackedSequence, tuple[torch.Tensor, torch.Tensor]]:
        """The LSTM part of :meth:`forward`: its outputs still packed (``.data [sum(lengths + 1), H]``)."""
        embeddings = self.embed(captions)  # [B, T, E]
        inputs = self.dropout(torch.cat([features.unsqueeze(1), embeddings], dim=1))  # [B, T+1, E]
        packed = pack_padded_sequence(
            inputs, _cpu_lengths(lengths) + 1, batch_first=True, enforce_sorted=False
        )
        return self.lstm(packed)

    def step(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One step of the LSTM: ``inputs [B, E]`` and state ``(h, c)`` → ``(logits [B, V], new state)``.

        ``state=None`` starts from zeros. Generation calls this once per word, carrying the state.
        """
        output, state = self.lstm(self.dropout(inputs).unsqueeze(1), state)  # [B, 1, H]
        return self.linear(self.dropout(output.squeeze(1))), state

    def start(
        self, features: torch.Tensor, start_id: int = Vocabulary.start_id
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Begin captions for ``features [B, E]``: the image is the LSTM's first input, then ``<start>``.

        Returns the scores of every caption's first word, ``logits [B, V]``, and the state ``(h, c)``
        (each ``[num_layers, B, H]``) to carry on from with :meth:`step`. Every decoder in
        :mod:`helpers.decoding` begins a caption here.
        """
        _, state = self.step(features)  # what the image step predicts is never used
        start = torch.full((features.shape[0],), start_id, dtype=torch.long, device=features.device)
        return self.step(self.embed(start), state)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load weights, refusing weights made for another vocabulary with a clear message."""
        saved = state_dict.get("embed.weight")
        if saved is not None and saved.shape[0] != self.vocab_size:
            raise ValueError(
                f"these decoder weights were trained with a vocabulary of {saved.shape[0]} words, but this "
                f"decoder has {self.vocab_size}: load the vocabulary saved with the checkpoint"
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def target_mask(lengths: torch.Tensor | Sequence[int], steps: int) -> torch.Tensor:
    """``[B, steps]`` booleans: True where a caption has a real token (``t < length``); ``steps`` counts
    positions (tokens), not words."""
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def sequence_loss(
    logits: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor | Sequence[int]
) -> torch.Tensor:
    """The efficient loss: every position of every caption at once, padding never counted.

    ``logits [B, T+1, V]`` (from :meth:`DecoderRNN.forward`), ``captions [B, T]`` → the mean
    cross-entropy over all ``sum(lengths)`` real tokens: position ``t`` is scored against token ``t``.
    """
    T = captions.shape[1]
    mask = target_mask(torch.as_tensor(lengths, device=captions.device), T)
    return F.cross_entropy(logits[:, :T][mask], captions[mask])


def packed_loss(
    decoder: DecoderRNN, features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor | Sequence[int]
) -> torch.Tensor:
    """The loss ``fit`` trains with: the value of ``sequence_loss(decoder(features, captions, lengths), …)``
    (and the same gradients), computed with less work.

    ``forward`` pads the LSTM's outputs back to ``[B, T+1, H]`` and scores every slot, padding included,
    with the biggest layer of the model (``H → V``); ``sequence_loss`` then throws the padding away. Here
    the layer scores only the packed outputs, ``[sum(lengths + 1), H]``, against targets packed the same
    way. The one slot after ``<end>`` of each caption has no target (``ignore_index``).
    """
    lengths = _cpu_lengths(lengths)
    outputs, _ = decoder.packed_hiddens(features, captions, lengths)
    T = captions.shape[1]
    keep = target_mask(lengths.to(captions.device), T + 1)  # [B, T+1]: True where a word is to be guessed
    targets = F.pad(captions, (0, 1)).masked_fill(~keep, IGNORE)  # position t → token t
    packed_targets = pack_padded_sequence(targets, lengths + 1, batch_first=True, enforce_sorted=False)
    logits = decoder.linear(decoder.dropout(outputs.data))
    return F.cross_entropy(logits, packed_targets.data, ignore_index=IGNORE)


def prefix_batch(
    features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training examples one prefix at a time: every prefix of every caption, with the word after it.

    A caption of ``n`` tokens gives ``n`` prefixes: (image) → ``<start>``, (image, ``<start>``) → first
    word, …, (image, ``<start>`` … last word) → ``<end>``. Returns ``(features [N, E], prefixes [N, P],
    prefix_lengths [N], next_words [N])`` with ``N = sum(lengths)``.
    """
    rows, cuts = [], []
    for row, n in enumerate(_cpu_lengths(lengths).tolist()):
        rows += [row] * n
        cuts += range(n)
    rows_t = torch.tensor(rows, device=captions.device)
    cuts_t = torch.tensor(cuts, device=captions.device)
    width = max(1, int(cuts_t.max()))
    prefixes = captions[rows_t, :width] * target_mask(cuts_t, width)  # zero (= <pad>) past each cut
    return features[rows_t], prefixes, cuts_t, captions[rows_t, cuts_t]


def prefix_loss(
    decoder: DecoderRNN, features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor | Sequence[int]
) -> torch.Tensor:
    """The loss the slow way: one forward pass per prefix, scored only at the prefix's last position.

    Each prefix of ``k`` tokens is run through the LSTM on its own (``k + 1`` steps with the image), and
    its last output is compared with the next word. Averaged over all prefixes this equals
    :func:`sequence_loss`, because the LSTM is causal: its output at position ``t`` depends only on what
    came before — but it costs about ``n / 2`` times more LSTM steps for captions of ``n`` tokens.
    """
    prefix_features, prefixes, cuts, next_words = prefix_batch(features, captions, lengths)
    logits = decoder(prefix_features, prefixes, cuts)  # [N, P+1, V]
    last = logits[torch.arange(len(cuts), device=logits.device), cuts]  # position k of a k-token prefix
    return F.cross_entropy(last, next_words)


class Captioner(nn.Module):
    """Encoder and decoder together: ``images [B, 3, S, S]``, ``captions [B, T]`` → ``logits [B, T+1, V]``."""

    def __init__(
        self,
        vocab_size: int,
        embed_size: int = 300,
        hidden_size: int = 512,
        num_layers: int = 1,
        weights: str = "auto",
        train_backbone: str = "none",
        dropout: float = 0.0,
        standardize: bool = True,
    ):
        super().__init__()
        self.encoder = EncoderCNN(
            embed_size, weights=weights, train_backbone=train_backbone, standardize=standardize
        )
        self.decoder = DecoderRNN(embed_size, hidden_size, vocab_size, num_layers, dropout)

    def forward(
        self, images: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor | Sequence[int]
    ) -> torch.Tensor:
        return self.decoder(self.encoder(images), captions, lengths)
