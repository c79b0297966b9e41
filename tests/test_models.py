import pytest
import torch

from helpers.models import (
    DecoderRNN,
    EncoderCNN,
    packed_loss,
    prefix_batch,
    prefix_loss,
    resolve_weights,
    sequence_loss,
    target_mask,
)

E, H, V = 16, 24, 30


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return EncoderCNN(embed_size=E, weights="random")


def captions_and_lengths():
    """Three captions of lengths 4, 6 and 1, unsorted, padded with zeros to 6."""
    lengths = torch.tensor([4, 6, 1])
    captions = torch.randint(1, V, (3, 6))
    captions[0, 4:] = 0
    captions[2, 1:] = 0
    return captions, lengths


def test_encoder_gives_the_design_shapes(encoder):
    images = torch.randn(2, 3, 64, 64)
    encoder.eval()
    pooled = encoder.backbone_features(images)
    assert encoder.backbone(images).shape == (2, 2048, 1, 1)
    assert pooled.shape == (2, 2048)
    assert encoder(images).shape == (2, E)
    assert torch.allclose(encoder.project_features(pooled), encoder(images))


def test_frozen_backbone_stays_in_eval_mode_and_keeps_its_statistics(encoder):
    encoder.train()
    assert not encoder.backbone.training and encoder.bn.training
    before = encoder.backbone[1].running_mean.clone()
    encoder(torch.randn(4, 3, 64, 64))
    assert torch.equal(encoder.backbone[1].running_mean, before)
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    assert all(p.requires_grad for p in encoder.project.parameters())


def test_fine_tuning_the_last_block_trains_only_layer4():
    encoder = EncoderCNN(embed_size=E, weights="random", train_backbone="last").train()
    trainable = {n.split(".")[0] for n, p in encoder.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"7"}
    assert encoder.backbone[7].training and not encoder.backbone[4].training
    all_encoder = EncoderCNN(embed_size=E, weights="random", train_backbone="all").train()
    assert all(p.requires_grad for p in all_encoder.backbone.parameters()) and all_encoder.backbone.training


def test_encoder_refuses_to_train_on_a_single_image_with_a_reason(encoder):
    encoder.train()
    with pytest.raises(ValueError, match="batch of one"):
        encoder(torch.randn(1, 3, 64, 64))
    encoder.eval()
    assert encoder(torch.randn(1, 3, 64, 64)).shape == (1, E)


def test_forced_weight_choices_and_bad_names():
    assert resolve_weights("random") == "random"
    assert resolve_weights("imagenet") == "imagenet"
    with pytest.raises(ValueError, match="weights"):
        resolve_weights("best")


def test_auto_weights_decide_quickly_when_offline(monkeypatch, capsys):
    import helpers.models as models

    monkeypatch.setattr(models, "imagenet_weights_reachable", lambda timeout=3.0: False)
    encoder = EncoderCNN(embed_size=E, weights="auto")
    assert encoder.weights == "random"
    assert "random weights" in capsys.readouterr().out


@pytest.mark.parametrize("num_layers", [1, 2])
def test_decoder_output_shape_with_unsorted_lengths(num_layers):
    decoder = DecoderRNN(E, H, V, num_layers=num_layers)
    captions, lengths = captions_and_lengths()
    logits, (h, c) = decoder(torch.randn(3, E), captions, lengths, return_state=True)
    assert logits.shape == (3, 7, V)
    assert h.shape == c.shape == (num_layers, 3, H)
    logits_from_list = decoder(torch.randn(3, E), captions, lengths.tolist())
    assert logits_from_list.shape == (3, 7, V)


def test_decoder_ignores_padding_and_matches_one_caption_alone():
    torch.manual_seed(0)
    decoder = DecoderRNN(E, H, V).eval()
    captions, lengths = captions_and_lengths()
    features = torch.randn(3, E)
    batch = decoder(features, captions, lengths)
    alone = decoder(features[:1], captions[:1, :4], [4])
    assert torch.allclose(batch[0, :5], alone[0], atol=1e-5)
    assert torch.all(batch[0, 5:] == decoder.linear.bias)  # padded positions: zero hidden state


def test_step_by_step_equals_teacher_forcing():
    torch.manual_seed(0)
    decoder = DecoderRNN(E, H, V, num_layers=2).eval()
    captions, lengths = captions_and_lengths()
    features = torch.randn(3, E)
    full = decoder(features[1:2], captions[1:2], lengths[1:2])
    logits, state = decoder.step(features[1:2])
    steps = [logits]
    for t in range(6):
        logits, state = decoder.step(decoder.embed(captions[1:2, t]), state)
        steps.append(logits)
    assert torch.allclose(torch.stack(steps, dim=1), full, atol=1e-5)


def test_target_mask_marks_real_tokens():
    assert target_mask(torch.tensor([2, 0, 3]), 3).tolist() == [
        [True, True, False],
        [False, False, False],
        [True, True, True],
    ]


def test_prefix_batch_makes_one_prefix_per_token():
    captions = torch.tensor([[1, 7, 2], [1, 2, 0]])
    features = torch.arange(2.0).unsqueeze(1)
    feats, prefixes, cuts, nxt = prefix_batch(features, captions, [3, 2])
    assert cuts.tolist() == [0, 1, 2, 0, 1]
    assert nxt.tolist() == [1, 7, 2, 1, 2]
    assert prefixes.tolist() == [[0, 0], [1, 0], [1, 7], [0, 0], [1, 0]]
    assert feats.squeeze(1).tolist() == [0, 0, 0, 1, 1]


def test_prefix_loss_equals_sequence_loss():
    torch.manual_seed(0)
    decoder = DecoderRNN(E, H, V, num_layers=2)
    captions, lengths = captions_and_lengths()
    features = torch.randn(3, E)
    full = sequence_loss(decoder(features, captions, lengths), captions, lengths)
    prefix = prefix_loss(decoder, features, captions, lengths)
    assert torch.allclose(full, prefix, atol=1e-6)
    assert full.item() > 1.0  # untrained: about log(V), nowhere near zero


def test_sequence_loss_never_counts_padding():
    torch.manual_seed(0)
    decoder = DecoderRNN(E, H, V)
    captions, lengths = captions_and_lengths()
    features = torch.randn(3, E)
    logits = decoder(features, captions, lengths)
    garbage = logits.clone()
    garbage[0, 4:] = 1e3
    garbage[2, 1:] = -1e3
    assert torch.equal(sequence_loss(logits, captions, lengths), sequence_loss(garbage, captions, lengths))


def test_packed_loss_equals_sequence_loss_in_value_and_gradients():
    torch.manual_seed(0)
    decoder = DecoderRNN(E, H, V, num_layers=2)
    lengths = torch.tensor([4, 6, 1, 6, 4])  # unsorted, with ties, two that fill all T columns
    captions = torch.randint(1, V, (5, 6)) * target_mask(lengths, 6)
    features = torch.randn(5, E, requires_grad=True)

    def loss_and_grads(loss_fn):
        decoder.zero_grad()
        features.grad = None
        loss = loss_fn()
        loss.backward()
        return loss.detach(), [features.grad.clone()] + [p.grad.clone() for p in decoder.parameters()]

    full, full_grads = loss_and_grads(
        lambda: sequence_loss(decoder(features, captions, lengths), captions, lengths)
    )
    packed, packed_grads = loss_and_grads(lambda: packed_loss(decoder, features, captions, lengths.tolist()))
    assert torch.allclose(full, packed, atol=1e-6)
    for a, b in zip(full_grads, packed_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_packed_loss_never_reads_padding():
    torch.manual_seed(0)
    decoder = DecoderRNN(E, H, V)
    captions, lengths = captions_and_lengths()
    features = torch.randn(3, E)
    garbage = captions.clone()
    garbage[0, 4:] = V - 1
    garbage[2, 1:] = 5
    assert torch.equal(
        packed_loss(decoder, features, captions, lengths), packed_loss(decoder, features, garbage, lengths)
    )


def test_decoder_refuses_weights_from_another_vocabulary():
    trained = DecoderRNN(E, H, V).state_dict()
    with pytest.raises(ValueError, match=f"vocabulary of {V} words"):
        DecoderRNN(E, H, V + 5).load_state_dict(trained)


@pytest.mark.parametrize("train_backbone", ["none", "last", "all"])
def test_encoder_offers_its_head_and_the_backbone_layers_that_learn_as_two_groups(train_backbone):
    encoder = EncoderCNN(embed_size=E, weights="random", train_backbone=train_backbone)
    groups = encoder.parameter_groups()
    head_ids = {id(p) for p in groups["head"]}
    assert head_ids == {id(p) for p in (*encoder.project.parameters(), *encoder.bn.parameters())}
    offered = {id(p) for p in groups["backbone"]}
    backbone = {name for name, p in encoder.backbone.named_parameters() if id(p) in offered}
    expected = {
        "none": set(),
        "last": {name for name, _ in encoder.backbone.named_parameters() if name.startswith("7.")},
        "all": {name for name, _ in encoder.backbone.named_parameters()},
    }[train_backbone]
    assert backbone == expected
    everything = {id(p) for p in encoder.parameters() if p.requires_grad}
    assert head_ids | {id(p) for p in groups["backbone"]} == everything


def test_start_feeds_the_image_then_start_and_scores_the_first_word():
    torch.manual_seed(0)
    decoder = DecoderRNN(E, H, V, num_layers=2).eval()
    features = torch.randn(3, E)
    logits, (h, c) = decoder.start(features, start_id=1)
    assert logits.shape == (3, V) and h.shape == c.shape == (2, 3, H)
    # the same as teacher forcing on the one-token caption "<start>": position 1 scores the first word
    forced = decoder(features, torch.ones(3, 1, dtype=torch.long), [1, 1, 1])
    torch.testing.assert_close(logits, forced[:, 1])
    other, _ = decoder.start(features, start_id=2)
    assert not torch.allclose(other, logits)  # the start token really is fed
