import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import Rectangle

from helpers import diagrams
from helpers.data import pad_captions
from helpers.vocabulary import Vocabulary


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def small_batch():
    vocab = Vocabulary(["a", "red", "circle", "blue", "square"])
    captions, lengths = pad_captions(
        [torch.tensor(vocab.encode(t)) for t in ["a red circle", "a blue square a red circle", "a square"]]
    )
    return captions, lengths, vocab


def test_architecture_figure_names_every_module_and_shape_with_the_given_sizes():
    figure = diagrams.architecture_figure(embed_size=64, hidden_size=128)
    words = " ".join(texts(figure.axes[0]))
    for expected in (
        "ResNet50",
        "standardise",
        "(the course's addition)",
        "Embedding V × 64",
        "LSTM 64 → 128",
        "Linear 128 → V",
        "[B, 2048, 1, 1]",
        "[B, T+1, 64]",
        "[B, T+1, 128]",
        "logits [B, T+1, V]",
        "EncoderCNN",
        "DecoderRNN",
    ):
        assert expected in words, expected


def test_packing_figure_draws_one_packed_cell_per_real_step():
    captions, lengths, vocab = small_batch()
    figure = diagrams.packing_figure(captions, lengths, vocab)
    top, bottom = figure.axes
    steps = captions.shape[1] + 1
    cells = [p for p in bottom.patches if isinstance(p, Rectangle)]
    assert len(cells) == int((lengths + 1).sum()) == 6 + 9 + 5
    assert len([p for p in top.patches if isinstance(p, Rectangle)]) == 3 * steps == 27
    assert texts(top).count("<pad>") == 27 - 20
    assert texts(top).count("image") == texts(bottom).count("image") == 3
    assert "<pad>" not in texts(bottom)
    # the bold batch sizes under the packed columns: 3 captions until the shortest ends, then fewer
    sizes = [t.get_text() for t in bottom.texts if t.get_fontweight() == "bold" and t.get_text().isdigit()]
    assert sizes == ["3", "3", "3", "3", "3", "2", "1", "1", "1"]


def test_packing_figure_puts_the_longest_caption_first_in_each_step():
    captions, lengths, vocab = small_batch()
    bottom = diagrams.packing_figure(captions, lengths, vocab).axes[1]
    # caption 1 is the longest, so it fills the top row of every step; the shortest (2) only the first 5
    top_row = [t.get_text() for t in bottom.texts if t.get_position()[1] == pytest.approx(2.5)]
    assert top_row == ["image", "<start>", "a", "blue", "square", "a", "red", "circle", "<end>"]
    bottom_row = [t.get_text() for t in bottom.texts if t.get_position()[1] == pytest.approx(0.5)]
    assert bottom_row == ["image", "<start>", "a", "square", "<end>"]


def test_packing_figure_without_the_image_column():
    captions, lengths, vocab = small_batch()
    bottom = diagrams.packing_figure(captions, lengths, vocab, image_first=False).axes[1]
    assert "image" not in texts(bottom)
    assert len([p for p in bottom.patches if isinstance(p, Rectangle)]) == int(lengths.sum())


def test_save_all_writes_every_diagram_as_png(tmp_path):
    written = diagrams.save_all(tmp_path)
    assert {p.name for p in written} >= {"architecture.png", "packing.png"}
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5_000


def test_save_all_replaces_its_own_diagrams_but_not_a_file_it_did_not_write(tmp_path):
    diagrams.save_all(tmp_path)
    diagrams.save_all(tmp_path)  # its own files: replaced without a word of protest
    mine = tmp_path / "packing.png"
    mine.write_bytes(b"my drawing")
    with pytest.raises(ValueError, match=f"{tmp_path} holds packing.png, which this command did not write"):
        diagrams.save_all(tmp_path)
    assert mine.read_bytes() == b"my drawing"


def test_diagrams_command_says_what_it_replaced_and_refuses_in_one_line(tmp_path, capsys):
    from helpers import cli

    assert cli.main(["diagrams", "--out", str(tmp_path)]) == 0
    assert cli.main(["diagrams", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    n = len(diagrams.DIAGRAMS)
    assert lines[:n] == [f"wrote {tmp_path / name}.png" for name in diagrams.DIAGRAMS]
    assert lines[n:] == [f"replaced {tmp_path / name}.png" for name in diagrams.DIAGRAMS]
    (tmp_path / "architecture.png").write_text("notes\n")
    assert cli.main(["diagrams", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path} holds architecture.png")
    assert (tmp_path / "architecture.png").read_text() == "notes\n"


def holds(outer, inner) -> bool:
    """Whether the display-space box ``outer`` contains all of ``inner``."""
    return outer.x0 <= inner.x0 and inner.x1 <= outer.x1 and outer.y0 <= inner.y0 and inner.y1 <= outer.y1


def overflowing_labels(figure) -> list[str]:
    """The texts that stick out of the box they sit in, measured with the renderer (in display pixels)."""
    from matplotlib.patches import FancyBboxPatch

    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    boxes = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, FancyBboxPatch)]
    out = []
    for text in ax.texts:
        extent = text.get_window_extent(renderer)
        around = [b for b in boxes if b.contains(*extent.get_points().mean(axis=0))]
        if around and not any(holds(b, extent) for b in around):
            out.append(text.get_text())
    return out


def test_attention_figure_names_every_module_and_shape_with_the_given_sizes():
    figure = diagrams.attention_figure(embed_size=64, hidden_size=96, feature_size=48, attention_size=32)
    words = " ".join(texts(figure.axes[0]))
    for expected in (
        "ResNet50 up to layer1",
        "GridAdapter",
        "[B, 3, 64, 64]",
        "grid [B, 256, 16, 16]",
        "[B, 48, 4, 4]",
        "features [B, 16, 48]",
        "keys [B, 16, 32]",
        "α_t [B, 16]",
        "softmax",
        "β",
        "context [B, 48]",
        "Embedding V × 64",
        "LSTMCell 64 + 48 → 96",
        "Linear 96 → V",
        "logits [B, V]",
        "GridEncoder",
        "AttentionDecoder",
    ):
        assert expected in words, expected


def test_attention_figure_labels_fit_inside_their_boxes():
    figure = diagrams.attention_figure()
    assert diagrams.DIAGRAMS["attention_architecture"] is diagrams.attention_figure
    assert overflowing_labels(figure) == []


def test_overflowing_labels_finds_a_label_wider_than_its_box():
    figure, ax = plt.subplots(figsize=(4, 4))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    diagrams.box(ax, 4, 4, 2, 1, "a label far too long for a box this narrow")
    diagrams.box(ax, 4, 7, 2, 1, "fits")
    assert overflowing_labels(figure) == ["a label far too long for a box this narrow"]


@pytest.mark.parametrize("sizes", [(300, 512), (300, 256)])
def test_architecture_figure_labels_fit_inside_their_boxes(sizes):
    embed_size, hidden_size = sizes
    figure = diagrams.architecture_figure(embed_size=embed_size, hidden_size=hidden_size)
    assert overflowing_labels(figure) == []
