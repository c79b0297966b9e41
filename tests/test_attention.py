import pytest
import torch

from helpers.attention import (
    STAGE_CHANNELS,
    AttentionCaptioner,
    AttentionDecoder,
    GridAdapter,
    attention_loss,
    attention_penalty,
    frozen_stage,
)
from helpers.data import pad_captions
from helpers.decoding import beam_search, greedy
from helpers.vocabulary import Vocabulary

WORDS = ["a", "red", "blue", "circle", "square", "on", "the", "left"]
D, E, H, A = 12, 8, 16, 10


@pytest.fixture()
def vocab():
    return Vocabulary(WORDS)


@pytest.fixture()
def decoder(vocab):
    torch.manual_seed(0)
    return AttentionDecoder(D, E, H, len(vocab), A).eval()


def _captions(vocab, texts):
    return pad_captions([torch.tensor(vocab.encode(text)) for text in texts])


@pytest.mark.parametrize(("stage", "cells"), [("layer1", 16), ("layer2", 8), ("layer3", 4), ("layer4", 2)])
def test_frozen_stage_gives_the_grid_of_its_stage_and_does_not_train(stage, cells):
    torch.manual_seed(0)
    backbone, weights = frozen_stage(stage, weights="random")
    grid = backbone(torch.randn(2, 3, 64, 64))
    assert weights == "random"
    assert grid.shape == (2, STAGE_CHANNELS[stage], cells, cells)
    assert not any(p.requires_grad for p in backbone.parameters())


def test_frozen_stage_refuses_an_unknown_stage():
    with pytest.raises(ValueError, match="stage must be one of"):
        frozen_stage("layer5", weights="random")


@pytest.mark.parametrize(("strides", "cells"), [((1, 1), 64), ((2, 1), 16), ((2, 2), 4)])
def test_adapter_turns_a_grid_into_one_feature_per_cell(strides, cells):
    adapter = GridAdapter(32, feature_size=D, strides=strides)
    grid = torch.randn(3, 32, 8, 8).half()  # a cached grid is stored in fp16
    features = adapter(grid)
    assert features.shape == (3, cells, D) and features.dtype == torch.float32


def test_adapter_keeps_cells_in_row_major_order_with_channels_last():
    adapter = GridAdapter(2, feature_size=2)
    adapter.layers = torch.nn.Identity()  # only the reshaping is left
    grid = torch.stack([torch.arange(6.0), 10 + torch.arange(6.0)]).view(1, 2, 2, 3)  # [B, C, h, w]
    assert adapter(grid).tolist() == [[[0, 10], [1, 11], [2, 12], [3, 13], [4, 14], [5, 15]]]


def test_captioner_shapes_from_images_to_logits_and_maps(vocab):
    torch.manual_seed(0)
    model = AttentionCaptioner(len(vocab), stage="layer1", feature_size=D, strides=(2, 1), embed_size=E,
                               hidden_size=H, attention_size=A, weights="random")
    images = torch.randn(2, 3, 64, 64)
    assert model.encoder.backbone_features(images).shape == (2, 256, 16, 16)
    assert model.encoder(images).shape == (2, 64, D)  # 16×16 cells, stride 2 → 8×8
    captions, lengths = _captions(vocab, ["a red circle", "a blue square on the left"])
    logits, alphas = model(images, captions, lengths)
    assert captions.shape == (2, 8)
    assert logits.shape == (2, 7, len(vocab)) and alphas.shape == (2, 7, 64)
    model.train()
    assert not model.encoder.backbone.training and model.encoder.adapter.training


def test_state_and_step_shapes(decoder, vocab):
    features = torch.randn(3, 5, D)
    logits, state = decoder.start(features, vocab.start_id)
    assert logits.shape == (3, len(vocab))
    assert state.h.shape == state.c.shape == (3, H)
    assert state.features.shape == (3, 5, D) and state.keys.shape == (3, 5, A)
    assert state.alpha.shape == (3, 5)
    torch.testing.assert_close(state.alpha.sum(dim=1), torch.ones(3))
    assert (state.alpha > 0).all() and not torch.allclose(state.alpha, torch.full((3, 5), 0.2))
    context, alpha, _ = decoder.attend(state)
    assert context.shape == (3, D) and alpha.shape == (3, 5)


def test_alphas_sum_to_one_over_cells_on_real_steps_and_are_zero_on_padding(decoder, vocab):
    captions, lengths = _captions(vocab, ["a red circle", "a blue square on the left", "red"])
    _, alphas = decoder(torch.randn(3, 6, D), captions, lengths)
    sums = alphas.sum(dim=2)  # [B, T-1]
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(sums[row, : n - 1], torch.ones(n - 1))
        assert (sums[row, n - 1 :] == 0).all()


def test_teacher_forced_pass_equals_start_then_step(decoder, vocab):
    features = torch.randn(3, 6, D)
    captions, lengths = _captions(vocab, ["a red circle", "a blue square on the left", "red"])
    logits, alphas = decoder(features, captions, lengths)
    step_logits, state = decoder.start(features, vocab.start_id)
    for t in range(captions.shape[1] - 1):
        real = lengths > t + 1
        torch.testing.assert_close(logits[real, t], step_logits[real])
        torch.testing.assert_close(alphas[real, t], state.alpha[real])
        step_logits, state = decoder.step(decoder.embed(captions[:, t + 1]), state)


def test_shared_image_index_equals_repeated_features(decoder, vocab):
    images = torch.randn(2, 6, D)
    index = torch.tensor([0, 0, 1])
    captions, lengths = _captions(vocab, ["a red circle", "a blue square on the left", "red"])
    shared = decoder(images, captions, lengths, image_index=index)
    repeated = decoder(images[index], captions, lengths)
    torch.testing.assert_close(shared, repeated)


def test_masked_penalty_on_a_padded_batch_equals_caption_by_caption(decoder, vocab):
    texts = ["a red circle", "a blue square on the left on the left", "red"]
    features = torch.randn(3, 4, D)  # 4 cells: a long caption looks at each cell more than once
    captions, lengths = _captions(vocab, texts)
    _, alphas = decoder(features, captions, lengths)
    one_by_one = []
    for row, text in enumerate(texts):
        alone, alone_lengths = _captions(vocab, [text])
        _, alone_alphas = decoder(features[row : row + 1], alone, alone_lengths)
        one_by_one.append(attention_penalty(alone_alphas, alone_lengths))
    expected = torch.stack(one_by_one).mean()
    torch.testing.assert_close(attention_penalty(alphas, lengths), expected)
    # the decoder run over the padding too (as a plain loop would): its real steps are the same, and the
    # mask must leave the padded steps' maps out
    everything = torch.full_like(lengths, captions.shape[1])
    _, unmasked = decoder(features, captions, everything)
    assert (unmasked.sum(dim=2) > 0.99).all()
    torch.testing.assert_close(attention_penalty(unmasked, lengths), expected)
    assert not torch.isclose(attention_penalty(unmasked, everything), expected, rtol=0.05)


def test_penalty_by_hand():
    alphas = torch.tensor([[[0.5, 0.5], [1.0, 0.0], [0.3, 0.7]]])  # [1, 3 steps, 2 cells]
    # 3 tokens = 2 real steps: cell sums 1.5 and 0.5 → (1 - 1.5)² + (1 - 0.5)² = 0.5
    assert attention_penalty(alphas, [3]).item() == pytest.approx(0.5)


def test_loss_is_masked_cross_entropy_plus_penalty(decoder, vocab):
    captions, lengths = _captions(vocab, ["a red circle", "a blue square on the left"])
    logits, alphas = decoder(torch.randn(2, 6, D), captions, lengths)
    terms = [
        torch.nn.functional.cross_entropy(logits[row, t], captions[row, t + 1], reduction="sum")
        for row, n in enumerate(lengths.tolist())
        for t in range(n - 1)
    ]
    cross_entropy = torch.stack(terms).sum() / len(terms)
    torch.testing.assert_close(attention_loss(logits, alphas, captions, lengths), cross_entropy)
    with_penalty = attention_loss(logits, alphas, captions, lengths, penalty=0.5)
    torch.testing.assert_close(with_penalty, cross_entropy + 0.5 * attention_penalty(alphas, lengths))


def test_greedy_returns_one_map_per_emitted_word(decoder, vocab):
    features = torch.randn(4, 6, D)
    decoded, attention = greedy(decoder, features, vocab, max_len=5, return_attention=True)
    maps = attention.alphas
    assert decoded == greedy(decoder, features, vocab, max_len=5)
    assert maps.shape[0] == 4 and maps.shape[2] == 6 and 1 <= maps.shape[1] <= 6
    assert all(maps.shape[1] >= len(ids) for ids in decoded.ids)
    torch.testing.assert_close(maps.sum(dim=2), torch.ones(maps.shape[:2]))
    _, state = decoder.start(features, vocab.start_id)
    torch.testing.assert_close(maps[:, 0], state.alpha)


def test_beam_of_one_is_greedy_with_the_attention_decoder(decoder, vocab):
    for seed in range(3):
        torch.manual_seed(seed)
        features = torch.randn(5, 6, D) * 3
        assert beam_search(decoder, features, vocab, beam=1, max_len=8) == greedy(
            decoder, features, vocab, max_len=8
        )


def test_beam_search_reorders_each_images_grid_with_its_captions(decoder, vocab):
    """Beam search on a batch gives each image the captions it gets on its own: the grid and keys in the
    state follow the beams they belong to."""
    torch.manual_seed(1)
    features = torch.randn(4, 6, D) * 3
    together = beam_search(decoder, features, vocab, beam=3, max_len=8).captions
    alone = [
        beam_search(decoder, features[i : i + 1], vocab, beam=3, max_len=8).captions[0]
        for i in range(4)
    ]
    assert together == alone
    assert len(set(together)) > 1  # the images get different captions, so a mix-up would show


def test_uniform_attention_looks_at_every_cell_equally(decoder, vocab):
    features = torch.randn(2, 5, D)
    decoder.uniform_attention = True
    _, state = decoder.start(features, vocab.start_id)
    torch.testing.assert_close(state.alpha, torch.full((2, 5), 0.2))


def test_a_tiny_attention_captioner_overfits_two_captions(vocab):
    """The word after "a" depends on where a bright cell is, so the decoder must look to learn it."""
    torch.manual_seed(0)
    decoder = AttentionDecoder(D, E, H, len(vocab), A)
    features = torch.zeros(2, 4, D)
    features[0, 0, 0] = features[1, 3, 1] = 3.0
    captions, lengths = _captions(vocab, ["a red circle", "a blue square"])
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        logits, alphas = decoder(features, captions, lengths)
        loss = attention_loss(logits, alphas, captions, lengths, penalty=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert greedy(decoder.eval(), features, vocab, max_len=5).captions == ["a red circle", "a blue square"]
