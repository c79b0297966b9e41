"""Soft attention over the image grid (Show, Attend and Tell): a grid encoder and an attention decoder.

Shapes, with ``B`` images, ``C`` the channels of the chosen ResNet50 stage, ``N`` the adapter's cells,
``D`` its feature size, ``A`` the attention size, ``E`` the embedding size, ``H`` the LSTM's hidden size,
``V`` the vocabulary size and captions padded to ``T`` tokens (``<start>`` and ``<end>`` included)::

    images [B, 3, S, S] → frozen ResNet50 up to a stage → grid [B, C, h, w]      (what a cache stores)
        → adapter: standardise → 3×3 conv (stride s1) → BN → ReLU → 3×3 conv (stride s2) → BN → ReLU
        → features [B, N, D]                          (N = h/(s1·s2) · w/(s1·s2) cells, row by row)
    one step: h [B, H] scores every cell: w·tanh(keys [B, N, A] + W·h [B, A]) → softmax → α [B, N]
        context = β · Σ_i α_i·features_i [B, D], with the gate β = sigmoid(f_β(h)) [B, D]
        LSTMCell([embedding of the previous word [B, E], context]) → h → Linear → logits [B, V]

There is no image step: the LSTM's state starts from the mean of the grid, so the teacher-forced pass
reads ``<start>`` … the last word, and position ``t`` predicts token ``t + 1`` (unlike
:class:`~helpers.models.DecoderRNN`, whose position ``t`` predicts token ``t``). A caption of ``n`` tokens
has ``n − 1`` real steps: its first word … its ``<end>``.

The decoder follows :class:`~helpers.models.DecoderRNN`'s protocol, ``start(features)`` then
``step(embedding, state)``, so :func:`helpers.decoding.greedy` and :func:`~helpers.decoding.beam_search`
decode with it; its state (:class:`AttentionState`) carries each image's features and attention keys
(computed once per image in :meth:`AttentionDecoder.start`) and reorders them with the captions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from helpers.models import build_resnet50, target_mask
from helpers.vocabulary import Vocabulary

STAGES = ("layer1", "layer2", "layer3", "layer4")
STAGE_CHANNELS = {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}


def frozen_stage(stage: str = "layer1", weights: str = "auto") -> tuple[nn.Sequential, str]:
    """ResNet50 from its first convolution up to and including ``stage``, frozen, in eval mode, and the
    weights it got (``"imagenet"`` or ``"random"``; ``weights`` as in :func:`~helpers.models.build_resnet50`).

    ``images [B, 3, S, S] → grid [B, C, S/s, S/s]``: ``C`` is :data:`STAGE_CHANNELS`, and the stride ``s``
    is 4, 8, 16 or 32 for layer1 … layer4 (a 64 px image gives 16×16, 8×8, 4×4 or 2×2 cells).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    resnet, used = build_resnet50(weights)
    parts = list(resnet.children())  # conv1, bn1, relu, maxpool, layer1 … layer4, avgpool, fc
    backbone = nn.Sequential(*parts[: 5 + STAGES.index(stage)])
    for param in backbone.parameters():
        param.requires_grad = False
    return backbone.eval(), used


class GridAdapter(nn.Module):
    """The trainable part of the encoder: ``grid [B, C, h, w]`` (any float dtype, e.g. a cached fp16 grid)
    → ``features [B, N, D]`` with ``N = h/s · w/s`` cells, ``s`` the product of ``strides`` (rounded up).

    Standardise each channel (a BatchNorm without parameters: a random backbone's channels differ in scale
    by orders of magnitude), a 3×3 convolution with stride ``strides[0]`` to ``feature_size`` channels,
    BatchNorm, ReLU, a second 3×3 convolution with stride ``strides[1]``, BatchNorm, ReLU; then the cells
    as a sequence.
    """

    def __init__(self, in_channels: int, feature_size: int = 128, strides: tuple[int, int] = (2, 2)):
        super().__init__()
        first, second = strides
        self.layers = nn.Sequential(
            nn.BatchNorm2d(in_channels, affine=False),
            nn.Conv2d(in_channels, feature_size, 3, stride=first, padding=1, bias=False),
            nn.BatchNorm2d(feature_size),
            nn.ReLU(inplace=True),
            nn.Conv2d(feature_size, feature_size, 3, stride=second, padding=1, bias=False),
            nn.BatchNorm2d(feature_size),
            nn.ReLU(inplace=True),
        )

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """``grid [B, C, h, w] → features [B, N, D]``, cells in row-major order (row by row)."""
        return self.layers(grid.float()).flatten(2).transpose(1, 2)


class GridEncoder(nn.Module):
    """A frozen ResNet50 stage, then a trainable :class:`GridAdapter`: ``images [B, 3, S, S] → [B, N, D]``.

    The two halves are separate so that the stage's grid can be computed once per image and cached:
    :meth:`backbone_features` gives the grid, :meth:`project_features` the adapter's features (the names
    :class:`~helpers.models.EncoderCNN` uses for its pooled vector). ``self.weights`` says which weights
    the stage got. The stage stays in eval mode under ``.train()``.
    """

    def __init__(
        self,
        stage: str = "layer1",
        feature_size: int = 128,
        weights: str = "auto",
        strides: tuple[int, int] = (2, 2),
    ):
        super().__init__()
        self.backbone, self.weights = frozen_stage(stage, weights)
        self.stage, self.feature_size = stage, feature_size
        self.adapter = GridAdapter(STAGE_CHANNELS[stage], feature_size, strides)

    def train(self, mode: bool = True) -> GridEncoder:
        """Like ``nn.Module.train``, but the frozen stage always stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """What an optimiser trains, as :meth:`~helpers.models.EncoderCNN.parameter_groups` gives it:
        ``"head"`` the adapter, ``"backbone"`` empty (the stage is frozen)."""
        return {"head": list(self.adapter.parameters()), "backbone": []}

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, S, S] → grid [B, C, h, w]``, without gradients: what a grid cache stores."""
        with torch.no_grad():
            return self.backbone(images)

    def project_features(self, grid: torch.Tensor) -> torch.Tensor:
        """``grid [B, C, h, w] → features [B, N, D]`` (the adapter)."""
        return self.adapter(grid)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, S, S] → features [B, N, D]``."""
        return self.project_features(self.backbone_features(images))


class AttentionState(NamedTuple):
    """What the attention decoder carries from step to step, every field with the captions along dim 0.

    ``h``, ``c`` ``[B, H]`` the LSTM's state; ``features [B, N, D]`` and ``keys [B, N, A]`` each caption's
    image grid and its projection for the scores (computed once per image); ``alpha [B, N]`` the attention
    map and ``beta [B, D]`` the gate on the context of the step that produced this state (all zeros before
    the first step).
    """

    h: torch.Tensor
    c: torch.Tensor
    features: torch.Tensor
    keys: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor

    def select(self, rows: torch.Tensor) -> AttentionState:
        """The state of the captions ``rows [K]`` (indices into the batch, repeats allowed), in that order."""
        return AttentionState(*(field[rows] for field in self))


class AttentionDecoder(nn.Module):
    """An ``LSTMCell`` that looks at the image grid before every word (additive attention, gate β).

    ``forward(features [B, N, D], captions [B, T], lengths [B]) → (logits [B, T-1, V], alphas [B, T-1, N])``;
    generation: :meth:`start` then :meth:`step`, as with :class:`~helpers.models.DecoderRNN`.
    ``uniform_attention = True`` replaces every α by the uniform map ``1/N`` (the control that shows
    whether the maps are used).
    """

    def __init__(
        self,
        feature_size: int,
        embed_size: int,
        hidden_size: int,
        vocab_size: int,
        attention_size: int | None = None,
    ):
        super().__init__()
        attention_size = attention_size or hidden_size
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.init_h = nn.Linear(feature_size, hidden_size)
        self.init_c = nn.Linear(feature_size, hidden_size)
        self.key = nn.Linear(feature_size, attention_size)  # cells → keys, once per image
        self.query = nn.Linear(hidden_size, attention_size, bias=False)
        self.score = nn.Linear(attention_size, 1)
        self.f_beta = nn.Linear(hidden_size, feature_size)
        self.cell = nn.LSTMCell(embed_size + feature_size, hidden_size)
        self.linear = nn.Linear(hidden_size, vocab_size)
        self.uniform_attention = False

    @property
    def vocab_size(self) -> int:
        return self.embed.num_embeddings

    def initial_state(self, features: torch.Tensor) -> AttentionState:
        """``features [B, N, D]`` → the state before the first word: ``h = tanh(W_h · mean)``,
        ``c = tanh(W_c · mean)`` over the cells, the keys ``[B, N, A]``, ``alpha`` zeros ``[B, N]`` and
        ``beta`` zeros ``[B, D]``."""
        mean = features.mean(dim=1)  # [B, D]
        alpha = features.new_zeros(features.shape[:2])
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        return AttentionState(h, c, features, self.key(features), alpha, torch.zeros_like(mean))

    def attend(self, state: AttentionState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gated context ``[B, D]``, the map ``alpha [B, N]`` (sums to 1 over the cells) and the gate
        ``beta [B, D]`` (each in 0…1) for ``state.h``."""
        if self.uniform_attention:
            alpha = torch.full_like(state.alpha, 1.0 / state.alpha.shape[1])
        else:
            energy = torch.tanh(state.keys + self.query(state.h).unsqueeze(1))  # [B, N, A]
            alpha = self.score(energy).squeeze(2).softmax(dim=1)  # [B, N]
        context = torch.bmm(alpha.unsqueeze(1), state.features).squeeze(1)  # Σ_i α_i · features_i [B, D]
        beta = torch.sigmoid(self.f_beta(state.h))
        return beta * context, alpha, beta

    def step(self, inputs: torch.Tensor, state: AttentionState) -> tuple[torch.Tensor, AttentionState]:
        """One word: ``inputs [B, E]`` (the previous word's embedding) and ``state`` → ``(logits [B, V],
        new state)``; the new state's ``alpha`` and ``beta``: the map and the gate this step looked with."""
        context, alpha, beta = self.attend(state)
        h, c = self.cell(torch.cat([inputs, context], dim=1), (state.h, state.c))
        return self.linear(h), state._replace(h=h, c=c, alpha=alpha, beta=beta)

    def start(
        self, features: torch.Tensor, start_id: int = Vocabulary.start_id
    ) -> tuple[torch.Tensor, AttentionState]:
        """Begin captions for ``features [B, N, D]``: the state from the grid, then ``<start>``.

        Returns the scores of every caption's first word, ``logits [B, V]``, and the state to carry on
        from with :meth:`step`. Every decoder in :mod:`helpers.decoding` begins a caption here.
        """
        start = torch.full((features.shape[0],), start_id, dtype=torch.long, device=features.device)
        return self.step(self.embed(start), self.initial_state(features))

    def forward(
        self,
        features: torch.Tensor,
        captions: torch.Tensor,
        lengths: torch.Tensor | Sequence[int],
        image_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``captions [B, T]`` → ``(logits [B, T-1, V], alphas [B, T-1, N])``.

        Position ``t`` has read ``<start>`` … token ``t`` and predicts token ``t + 1``. ``features`` is
        ``[B, N, D]``, or, with ``image_index [B]``, ``[I, N, D]`` for ``I`` images and each caption's
        image index into it (the keys are then computed once per image, not once per caption). Each step
        runs only the captions still going (sorted by ``lengths``, longest first), so padding never
        enters the LSTM; positions past a caption's end are 0 in both outputs.
        """
        lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
        state = self.initial_state(features)
        if image_index is not None:
            state = state.select(image_index)
        steps = captions.shape[1] - 1
        batch, cells = state.alpha.shape
        order = lengths.argsort(descending=True, stable=True).to(captions.device)
        state, captions = state.select(order), captions[order]
        active = (lengths[order.cpu()] - 1).tolist()  # real steps of each caption, longest first
        embeddings = self.embed(captions)  # [B, T, E]
        logits = embeddings.new_zeros(batch, steps, self.vocab_size)
        alphas = embeddings.new_zeros(batch, steps, cells)
        for t in range(steps):
            going = sum(n > t for n in active)
            if going == 0:
                break
            state = AttentionState(*(field[:going] for field in state))
            logits_t, state = self.step(embeddings[:going, t], state)
            logits[:going, t], alphas[:going, t] = logits_t, state.alpha
        restore = order.argsort()
        return logits[restore], alphas[restore]


def attention_penalty(alphas: torch.Tensor, lengths: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """The doubly stochastic regulariser ``Σ_i (1 − Σ_t α_ti)²``, averaged over the captions.

    ``alphas [B, T-1, N]`` from :meth:`AttentionDecoder.forward`; ``lengths [B]`` in tokens, so a caption
    of ``n`` tokens sums its ``n − 1`` real steps and never the padding after them.
    """
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=alphas.device)
    mask = target_mask(lengths - 1, alphas.shape[1]).unsqueeze(2)  # [B, T-1, 1]
    attention = (alphas * mask).sum(dim=1)  # [B, N]: how much each cell was looked at
    return ((1.0 - attention) ** 2).sum(dim=1).mean()


def attention_loss(
    logits: torch.Tensor,
    alphas: torch.Tensor,
    captions: torch.Tensor,
    lengths: torch.Tensor | Sequence[int],
    penalty: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy over every real next word, plus ``penalty`` × :func:`attention_penalty`.

    ``logits [B, T-1, V]`` and ``alphas [B, T-1, N]`` from :meth:`AttentionDecoder.forward`, ``captions
    [B, T]``: position ``t`` is scored against token ``t + 1``; the mean is over the ``sum(lengths − 1)``
    real words (each caption's first word … its ``<end>``).
    """
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=captions.device)
    mask = target_mask(lengths - 1, logits.shape[1])  # [B, T-1]
    loss = F.cross_entropy(logits[mask], captions[:, 1:][mask])
    if penalty:
        loss = loss + penalty * attention_penalty(alphas, lengths)
    return loss


class AttentionCaptioner(nn.Module):
    """:class:`GridEncoder` and :class:`AttentionDecoder` together: ``images [B, 3, S, S]``, ``captions
    [B, T]`` → ``(logits [B, T-1, V], alphas [B, T-1, N])``."""

    def __init__(
        self,
        vocab_size: int,
        stage: str = "layer1",
        feature_size: int = 128,
        strides: tuple[int, int] = (2, 2),
        embed_size: int = 128,
        hidden_size: int = 256,
        attention_size: int = 128,
        weights: str = "auto",
    ):
        super().__init__()
        self.encoder = GridEncoder(stage, feature_size, weights, strides)
        self.decoder = AttentionDecoder(feature_size, embed_size, hidden_size, vocab_size, attention_size)

    def forward(
        self, images: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor | Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.encoder(images), captions, lengths)
