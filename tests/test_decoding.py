import pytest
import torch

from helpers.decoding import beam_search, greedy, greedy_naive
from helpers.models import DecoderRNN
from helpers.vocabulary import Vocabulary

WORDS = ["a", "red", "blue", "circle", "square", "on", "the", "left"]


@pytest.fixture()
def setup():
    torch.manual_seed(0)
    vocab = Vocabulary(WORDS)
    decoder = DecoderRNN(8, 16, len(vocab)).eval()
    return decoder, vocab, torch.randn(6, 8)


def test_greedy_naive_and_carried_state_greedy_give_identical_captions(setup):
    decoder, vocab, features = setup
    for seed in range(5):
        torch.manual_seed(seed)
        decoder = DecoderRNN(8, 16, len(vocab), num_layers=1 + seed % 2).eval()
        naive = greedy_naive(decoder, features, vocab, max_len=12)
        fast = greedy(decoder, features, vocab, max_len=12)
        assert naive == fast


def test_greedy_returns_ids_and_matching_strings_without_specials(setup):
    decoder, vocab, features = setup
    out = greedy(decoder, features, vocab, max_len=7)
    assert len(out.ids) == len(out.captions) == 6
    for ids, caption in zip(out.ids, out.captions, strict=True):
        assert caption == " ".join(vocab.itos[i] for i in ids)
        assert vocab.end_id not in ids and vocab.start_id not in ids
        assert len(ids) <= 7


def test_a_caption_that_never_ends_stops_at_max_len(setup):
    decoder, vocab, features = setup
    with torch.no_grad():
        decoder.linear.bias.fill_(-100)
        decoder.linear.bias[vocab.stoi["red"]] = 100  # "red red red ..." forever
    for decode in (greedy, greedy_naive, beam_search):
        out = decode(decoder, features, vocab, max_len=5)
        assert all(c.split() == ["red"] * 5 for c in out.captions)  # max_len words, not one more


def test_decoding_stops_early_when_every_caption_has_ended(setup):
    decoder, vocab, features = setup
    with torch.no_grad():
        decoder.linear.bias.fill_(-100)
        decoder.linear.bias[vocab.end_id] = 100
    assert greedy(decoder, features, vocab, max_len=50).captions == [""] * 6
    assert beam_search(decoder, features, vocab, beam=3, max_len=50).captions == [""] * 6


def test_beam_of_one_is_greedy(setup):
    decoder, vocab, features = setup
    assert beam_search(decoder, features, vocab, beam=1, max_len=10) == greedy(
        decoder, features, vocab, max_len=10
    )


def test_beam_search_finds_a_more_probable_caption_than_greedy():
    """A hand-built case: greedy takes the likelier first word and walks into an unlikely second one."""
    vocab = Vocabulary(["x", "y", "z"])
    x, y, z, end = vocab.stoi["x"], vocab.stoi["y"], vocab.stoi["z"], vocab.end_id

    class Toy:
        """Next-word probabilities depend only on the previous word (a tiny Markov chain)."""

        vocab_size = len(vocab)

        def step(self, inputs, state=None):
            previous = state[0] if state is not None else None
            table = {
                vocab.start_id: {x: 0.55, y: 0.45},
                x: {z: 0.34, y: 0.33, end: 0.33},
                y: {end: 1.0},
                z: {end: 1.0},
            }
            probs = torch.full((inputs.shape[0], len(vocab)), 1e-9)
            for row in range(inputs.shape[0]):
                token = int(inputs[row, 0]) if previous is not None else None
                for word, p in table.get(token, {}).items():
                    probs[row, word] = p
            hidden = torch.zeros(1, inputs.shape[0], 1)
            return probs.log(), (hidden, hidden)

        def embed(self, word):
            return word.float().unsqueeze(1)

    toy = Toy()
    features = torch.zeros(2, 1)
    assert greedy(toy, features, vocab, max_len=5).captions == ["x z"] * 2  # 0.55 * 0.34 = 0.187
    assert beam_search(toy, features, vocab, beam=2, max_len=5).captions == ["y"] * 2  # 0.45 * 1.0
