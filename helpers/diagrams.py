"""Diagrams of our own, drawn with matplotlib so they regenerate exactly: ``assets/*.png``.

Each ``*_figure()`` returns a matplotlib Figure; :func:`save_all` writes every diagram under ``assets/``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SIGNATURE = {"Source": "helpers.diagrams"}  # a PNG text chunk: how save_all knows a file is one it wrote


def box(ax, x: float, y: float, w: float, h: float, text: str, color: str = "#dbe9f6", fontsize: float = 9):
    """A rounded box with centred text, in data coordinates. The text is measured with the figure's
    renderer and set smaller (down to 6 pt) until it fits inside the box with a small margin."""
    patch = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="#333333", lw=1)
    ax.add_patch(patch)
    label = ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)
    renderer = ax.figure.canvas.get_renderer()
    room = patch.get_window_extent(renderer).shrunk(0.94, 0.9)
    while fontsize > 6:
        extent = label.get_window_extent(renderer)
        if extent.width <= room.width and extent.height <= room.height:
            break
        fontsize -= 0.5
        label.set_fontsize(fontsize)


def arrow(ax, start: tuple[float, float], end: tuple[float, float], text: str = "", fontsize: int = 8):
    """An arrow from ``start`` to ``end``, with an optional label beside its middle."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#333333", lw=1))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.05, (start[1] + end[1]) / 2, text, fontsize=fontsize, va="center")


# --- data flow (notebook 01) ---

FILES_COLOR, STEP_COLOR, TENSOR_COLOR = "#eeeeee", "#dbe9f6", "#d9f0d3"


# One box per block reads better than what the formatter would make of this table.
# fmt: off
DATA_FLOW_BOXES = [  # (x, y, width, height, colour, lines of text) of the steps in data_flow_figure
    (2.0, 9.1, 6.0, 1.0, FILES_COLOR, (
        "files on disk (Flickr8k layout)",
        "Flickr8k.token.txt · Flickr_8k.*Images.txt · Flicker8k_Dataset/*.jpg",
    )),
    (2.0, 7.25, 6.0, 1.05, STEP_COLOR, (
        "caption table: image | caption | split",
        "one row per caption (5 per image); rows it cannot use",
        "are listed in .skipped, with the reason",
    )),
    (0.2, 5.35, 4.2, 1.05, STEP_COLOR, (
        "load_image(path)   [helpers.data]",
        "any file → upright RGB PIL image",
        "(a broken file raises ImageLoadError)",
    )),
    (0.2, 3.3, 4.2, 1.3, STEP_COLOR, (
        "image_transform()   [helpers.data]",
        "Resize 224×224 → ToTensor [0, 1]",
        "→ Normalize (ImageNet mean, std)",
    )),
    (5.6, 5.35, 4.2, 1.05, STEP_COLOR, (
        "tokenize(caption)   [helpers.vocabulary]",
        "\"A red circle .\" → ['a', 'red', 'circle']",
    )),
    (5.6, 3.3, 4.2, 1.3, STEP_COLOR, (
        "Vocabulary.build(train captions)",
        "encode: <start> a red circle <end>",
        "→ indices (unseen words → <unk>)",
    )),
    (1.2, 1.55, 7.6, 1.05, STEP_COLOR, (
        "CaptionDataset + DataLoader(collate_fn=collate_captions)",
        "stack the images · pad the captions with <pad> = 0 to the longest",
    )),
]
# fmt: on


def data_flow_figure() -> plt.Figure:
    """From files on disk to a padded batch: which helper does each step, and what comes out of it.

    Grey boxes are files, blue boxes are steps (named after the helper that does them), green boxes are
    what the model receives. Images go down the left column, captions down the right.
    """
    figure, ax = plt.subplots(figsize=(9, 8.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.4, 10.4)
    ax.axis("off")
    for x, y, w, h, colour, lines in DATA_FLOW_BOXES:
        box(ax, x, y, w, h, "\n".join(lines), colour)
    batch = "batch → the model (notebooks 03–05)\nimages [B, 3, 224, 224]   captions [B, T]   lengths [B]"
    box(ax, 1.2, -0.2, 7.6, 1.0, batch, TENSOR_COLOR, fontsize=10)

    arrow(ax, (5.0, 9.1), (5.0, 8.35), "load_captions(root)   [helpers.caption_files]")
    arrow(ax, (3.2, 7.25), (2.3, 6.45))
    ax.text(2.45, 6.95, "image path", fontsize=8, ha="right")
    arrow(ax, (6.8, 7.25), (7.7, 6.45))
    ax.text(7.55, 6.95, "caption text", fontsize=8, ha="left")
    arrow(ax, (2.3, 5.35), (2.3, 4.65))
    arrow(ax, (7.7, 5.35), (7.7, 4.65))
    arrow(ax, (2.3, 3.3), (2.3, 2.65), "image [3, 224, 224], float")
    arrow(ax, (7.7, 3.3), (7.7, 2.65), "caption [n + 2], long")
    arrow(ax, (5.0, 1.55), (5.0, 0.85))
    return figure


# --- model: architecture and packing (notebook 02) ---

MODULE_COLOR, TENSOR_COLOR = "#dbe9f6", "#ffffff"


def architecture_figure(embed_size: int = 300, hidden_size: int = 512, image_size: int = 224):
    """Our model, top to bottom: modules in boxes, the tensor shapes on the arrows between them.

    ``B`` images, captions of ``T`` tokens, ``V`` words in the vocabulary; the numbers are the given sizes.
    """
    from matplotlib.patches import Polygon, Rectangle

    E, H = embed_size, hidden_size
    figure, ax = plt.subplots(figsize=(9, 9.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.9, 14.2)
    ax.axis("off")
    w, h = 3.4, 0.8
    left, right, mid = 2.6 - w / 2, 7.4 - w / 2, 5.0 - w / 2

    # Dashed frames: what lives in EncoderCNN, and what lives in DecoderRNN (an L shape around the rest).
    frame = {"fill": False, "ls": "--", "ec": "#888888"}
    ax.add_patch(Rectangle((0.25, 7.1), 4.6, 5.8, **frame))
    corners = [(5.05, 12.9), (9.75, 12.9), (9.75, -0.3), (0.25, -0.3), (0.25, 6.9), (5.05, 6.9)]
    ax.add_patch(Polygon(corners, closed=True, **frame))
    ax.text(0.35, 12.75, "EncoderCNN", fontsize=10, weight="bold", va="top", color="#555555")
    ax.text(9.65, 12.75, "DecoderRNN", fontsize=10, weight="bold", va="top", ha="right", color="#555555")

    box(ax, left, 13.2, w, h, "images", TENSOR_COLOR)
    box(ax, left, 11.0, w, h, "ResNet50 without fc\nfrozen, BatchNorm in eval mode")
    box(ax, left, 9.0, w, h, "flatten")
    # The classic encoder projects the pooled features directly; standardising them first is this course's own
    # step (EncoderCNN(standardize=False) leaves it out), so the figure says so.
    box(ax, left, 7.25, w, 1.2,
        f"standardise the 2048 features\n(the course's addition)\nLinear 2048 → {E}\nBatchNorm1d, ReLU")
    arrow(ax, (2.6, 13.2), (2.6, 11.8), f"[B, 3, {image_size}, {image_size}]")
    arrow(ax, (2.6, 11.0), (2.6, 9.8), "[B, 2048, 1, 1]")
    arrow(ax, (2.6, 9.0), (2.6, 8.45), "[B, 2048]")

    box(ax, right, 13.2, w, h, "captions: token ids, padded", TENSOR_COLOR)
    box(ax, right, 11.0, w, h, f"Embedding V × {E}")
    arrow(ax, (7.4, 13.2), (7.4, 11.8), "[B, T]")

    box(ax, mid, 5.6, w, h, "torch.cat along time:\nimage feature first")
    arrow(ax, (2.6, 7.3), (3.6, 6.4))
    ax.text(2.95, 6.65, f"features [B, {E}]", fontsize=8, va="center", ha="right")
    arrow(ax, (7.4, 11.0), (5.8, 6.4), f"[B, T, {E}]")
    box(ax, mid, 4.1, w, h, "pack_padded_sequence\nby lengths + 1")
    box(ax, mid, 2.6, w, h, f"LSTM {E} → {H}")
    box(ax, mid, 1.1, w, h, "pad_packed_sequence")
    box(ax, mid, -0.4 + 0.3, w, h * 0.75, f"Linear {H} → V")
    arrow(ax, (5.0, 5.6), (5.0, 4.9), f"[B, T+1, {E}]")
    arrow(ax, (5.0, 4.1), (5.0, 3.4), f"data [Σ(lengths + 1), {E}]")
    arrow(ax, (5.0, 2.6), (5.0, 1.9), f"data [Σ(lengths + 1), {H}]")
    arrow(ax, (5.0, 1.1), (5.0, 0.5), f"[B, T+1, {H}]")
    ax.text(6.8, 0.2, "→ logits [B, T+1, V]", fontsize=9, va="center", weight="bold")
    ax.text(
        5.0,
        -0.75,
        "B images, captions of T tokens (<start> … <end>, padded), V words in the vocabulary",
        ha="center",
        fontsize=8,
        color="#555555",
    )
    return figure


STAGE_STRIDE = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}  # input pixels per grid cell


def attention_figure(
    embed_size: int = 128,
    hidden_size: int = 256,
    feature_size: int = 128,
    attention_size: int = 128,
    image_size: int = 64,
    stage: str = "layer1",
):
    """The attention model (:mod:`helpers.attention`): the grid encoder above, one decoding step below,
    modules in boxes and the tensor shapes on the arrows. ``B`` images, ``V`` words; the grid is the
    ``stage`` of a ``image_size`` px image, and the adapter's two stride-2 convolutions divide its side by 4.
    """
    from matplotlib.patches import Rectangle

    E, H, D, A = embed_size, hidden_size, feature_size, attention_size
    side = image_size // STAGE_STRIDE[stage]
    cells = (-(-side // 4)) ** 2  # the adapter's two stride-2 convolutions (padding 1) round up
    figure, ax = plt.subplots(figsize=(9, 10.5))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.9, 15.0)
    ax.axis("off")
    frame = {"fill": False, "ls": "--", "ec": "#888888"}
    ax.add_patch(Rectangle((0.2, 8.3), 5.2, 6.5, **frame))
    ax.add_patch(Rectangle((0.2, -0.35), 9.6, 8.4, **frame))
    ax.text(0.3, 14.65, "GridEncoder", fontsize=10, weight="bold", va="top", color="#555555")
    ax.text(0.3, -0.25, "AttentionDecoder\n(one step t)", fontsize=10, weight="bold", color="#555555")

    _draw_grid_encoder(ax, stage, image_size, D)
    box(ax, 6.0, 13.5, 3.6, 0.7, "word t (token ids)", TENSOR_COLOR)
    box(ax, 6.0, 11.9, 3.6, 0.8, f"Embedding V × {E}")
    arrow(ax, (7.8, 13.5), (7.8, 12.7), "[B]")

    box(ax, 1.6, 6.0, 3.0, 1.1, f"before word 0:\nmean over the cells,\nh, c = tanh(Linear {D} → {H})")
    box(ax, 5.3, 6.1, 3.6, 0.9, f"keys = Linear {D} → {A}\n(once per image)")
    arrow(ax, (1.0, 9.55), (1.0, 5.2))
    ax.text(1.1, 7.65, f"features [B, {cells}, {D}]", fontsize=8, va="center")
    arrow(ax, (3.9, 9.55), (3.9, 7.1))
    arrow(ax, (4.6, 9.55), (6.4, 7.0))
    box(ax, 4.9, 4.2, 4.0, 1.0, f"scores = w · tanh(keys + W · h_t-1)\nsoftmax over the {cells} cells")
    arrow(ax, (7.4, 6.1), (7.4, 5.2), f"keys [B, {cells}, {A}]")
    box(ax, 0.5, 4.2, 3.9, 1.0, f"context = Σ_i α_ti · features_i\ngate β = σ(Linear {H} → {D}(h_t-1))")
    arrow(ax, (4.9, 4.7), (4.4, 4.7))
    ax.text(4.65, 5.35, f"α_t [B, {cells}]", fontsize=8, ha="center")
    box(ax, 2.9, 2.2, 4.2, 1.0, f"LSTMCell {E} + {D} → {H}\n[embedding, β ⊙ context]")
    arrow(ax, (2.6, 4.2), (3.6, 3.2), f"context [B, {D}]")
    ax.plot([9.35, 9.35], [11.9, 2.7], color="#333333", lw=1)
    arrow(ax, (9.35, 2.7), (7.1, 2.7), f"[B, {E}]")
    box(ax, 2.9, 0.3, 4.2, 0.8, f"Linear {H} → V")
    arrow(ax, (5.0, 2.2), (5.0, 1.1), f"h_t [B, {H}] (also to step t + 1)")
    ax.text(7.3, 0.7, "→ logits [B, V]:\nword t + 1", fontsize=9, va="center", weight="bold")
    note = "B images, V words in the vocabulary; the state (h, c) and α carry to the next step"
    ax.text(5.0, -0.75, note, ha="center", fontsize=8, color="#555555")
    return figure


def _draw_grid_encoder(ax, stage: str, image_size: int, feature_size: int) -> None:
    """The top left of :func:`attention_figure`: images → frozen stage → grid → adapter."""
    from helpers.attention import STAGE_CHANNELS

    C, side = STAGE_CHANNELS[stage], image_size // STAGE_STRIDE[stage]
    reduced, D = -(-side // 4), feature_size
    box(ax, 1.0, 13.5, 3.6, 0.7, "images", TENSOR_COLOR)
    box(ax, 1.0, 11.9, 3.6, 0.8, f"ResNet50 up to {stage}\nfrozen, eval mode")
    adapter = "GridAdapter (trained): standardise\n→ 3×3 conv, stride 2 → BN → ReLU\n"
    adapter += "→ 3×3 conv, stride 2 → BN → ReLU\n→ the cells as a sequence, row by row"
    box(ax, 0.5, 9.55, 4.6, 1.35, adapter)
    arrow(ax, (2.8, 13.5), (2.8, 12.7), f"[B, 3, {image_size}, {image_size}]")
    arrow(ax, (2.8, 11.9), (2.8, 10.9), f"grid [B, {C}, {side}, {side}]\n(cached once per image)")
    ax.text(3.8, 9.3, f"[B, {D}, {reduced}, {reduced}] → flatten", fontsize=8, ha="right")


PALETTE = ("#a6cee3", "#b2df8a", "#fdbf6f", "#cab2d6", "#fb9a99", "#ffff99", "#8dd3c7", "#bebada")
PAD_COLOR = "#e6e6e6"


def packing_figure(captions, lengths, vocab, image_first: bool = True):
    """How ``pack_padded_sequence`` lays out a real batch.

    ``captions [B, T]`` (token ids padded with ``<pad>``), ``lengths [B]`` (true lengths, any order) and
    the :class:`~helpers.vocabulary.Vocabulary` that decodes them. With ``image_first`` a column "image"
    is put in front, as the decoder does, and every length grows by one.

    Top: the padded batch, one row per caption. Bottom: the packed sequence, one column per time step,
    holding only the captions still running at that step, longest first; the small number in a cell is
    its row in ``packed.data``. Returns the Figure (axes 0 and 1 are the two panels).
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    ids = torch.as_tensor(captions, dtype=torch.long)
    lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
    if image_first:
        ids = torch.cat([torch.full((ids.shape[0], 1), -1), ids], dim=1)  # -1 marks the image feature
        lengths = lengths + 1
    B, steps = ids.shape
    packed = pack_padded_sequence(ids.unsqueeze(-1), lengths, batch_first=True, enforce_sorted=False)
    words = [["image" if i == -1 else vocab.itos[i] for i in row] for row in ids.tolist()]

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(0.72 * steps + 1.6, 0.42 * 2 * B + 2.4), gridspec_kw={"height_ratios": [B, B + 1.2]}
    )
    _draw_padded(top, words, lengths.tolist(), image_first)
    _draw_packed(bottom, words, packed.batch_sizes.tolist(), packed.sorted_indices.tolist())
    for ax in (top, bottom):
        ax.set_xlim(-0.05, steps + 0.05)
        ax.set_aspect("equal")
        ax.set_xticks([t + 0.5 for t in range(steps)], [str(t) for t in range(steps)], fontsize=7)
        ax.set_yticks([])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    top.set_ylim(-0.05, B + 0.05)
    bottom.set_ylim(-0.7, B + 0.05)
    top.set_xlabel("position t", fontsize=7)
    bottom.set_xlabel("time step t", fontsize=7)
    figure.tight_layout()
    return figure


def _cell(ax, x: float, y: float, text: str, color: str, small: str = "") -> None:
    """One token of :func:`packing_figure`: a coloured square with its word (and its row in packed.data)."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x, y), 1, 1, fc=color, ec="white", lw=1.5))
    ax.text(x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=7)
    if small:
        ax.text(x + 0.06, y + 0.92, small, ha="left", va="top", fontsize=5, color="#444444")


def _draw_padded(ax, words: list[list[str]], lengths: list[int], image_first: bool) -> None:
    """The top panel of :func:`packing_figure`: one row per caption, padding in grey."""
    B, steps = len(words), len(words[0])
    for row in range(B):
        y = B - 1 - row
        color = PALETTE[row % len(PALETTE)]
        for t in range(steps):
            real = t < lengths[row]
            _cell(ax, t, y, words[row][t] if real else "<pad>", color if real else PAD_COLOR)
        size = f"{lengths[row] - 1} tokens + image" if image_first else f"{lengths[row]} tokens"
        ax.text(-0.15, y + 0.5, f"caption {row}\n{size}", ha="right", va="center", fontsize=7)
    width = f"T+1={steps}" if image_first else f"T={steps}"
    ax.set_title(
        f"Padded batch [B={B}, {width}]: every caption is as long as the longest; grey cells are padding",
        fontsize=9,
    )


def _draw_packed(ax, words: list[list[str]], batch_sizes: list[int], order: list[int]) -> None:
    """The bottom panel of :func:`packing_figure`: per time step, the captions still running, longest
    first, each cell numbered with its row in ``packed.data``."""
    B = len(words)
    data_row = 0
    for t, size in enumerate(batch_sizes):
        for k, row in enumerate(order[:size]):
            _cell(ax, t, B - 1 - k, words[row][t], PALETTE[row % len(PALETTE)], str(data_row))
            data_row += 1
        ax.text(t + 0.5, -0.35, str(size), ha="center", va="center", fontsize=8, weight="bold")
    ax.text(-0.15, -0.35, "batch_sizes", ha="right", va="center", fontsize=7, weight="bold")
    ax.text(-0.15, B / 2, "captions still\nrunning,\nlongest first", ha="right", va="center", fontsize=7)
    ax.set_title(
        f"Packed: time step t holds only the captions still running; packed.data has {data_row} rows, "
        "column by column",
        fontsize=9,
    )


def packing_example_figure():
    """:func:`packing_figure` for three fixed captions of a tiny vocabulary (for ``assets/``)."""
    import torch

    from helpers.data import pad_captions
    from helpers.vocabulary import Vocabulary

    vocab = Vocabulary(["a", "red", "circle", "above", "blue", "square", "small", "green", "triangle"])
    texts = ["a small green triangle", "a red circle above a blue square", "a blue circle"]

    captions, lengths = pad_captions([torch.tensor(vocab.encode(text)) for text in texts])
    return packing_figure(captions, lengths, vocab)


def written_by_save_all(path: Path) -> bool:
    """Whether the PNG at ``path`` carries :data:`SIGNATURE`, i.e. :func:`save_all` wrote it."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return all(getattr(image, "text", {}).get(k) == v for k, v in SIGNATURE.items())
    except OSError:  # not an image at all
        return False


def save_all(folder: Path = ASSETS) -> list[Path]:
    """Write every diagram as a PNG under ``folder`` and return the paths.

    It replaces only diagrams it wrote itself (they carry :data:`SIGNATURE`), or any file of the same
    name in the course's own ``assets/``; another file in the way raises ``ValueError`` before anything
    is written.
    """
    folder = Path(folder)
    paths = {name: folder / f"{name}.png" for name in DIAGRAMS}
    foreign = [
        path.name
        for path in paths.values()
        if (path.exists() or path.is_symlink())
        and folder.resolve() != ASSETS.resolve()
        and not written_by_save_all(path)
    ]
    if foreign:
        raise ValueError(
            f"{folder} holds {', '.join(foreign)}, which this command did not write and will not "
            "replace: move them, or choose another --out (nothing was changed)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in DIAGRAMS.items():
        figure = make()
        path = paths[name]
        figure.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None, **SIGNATURE})
        plt.close(figure)
        written.append(path)
    return written


DIAGRAMS: dict = {
    "data_flow": data_flow_figure,
    "architecture": architecture_figure,
    "packing": packing_example_figure,
    "attention_architecture": attention_figure,
}
