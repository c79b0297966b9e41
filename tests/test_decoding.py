import pytest
import torch

from helpers.config import MAX_DECODE
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

        start = DecoderRNN.start  # the decoders begin every caption the model's way

    toy = Toy()
    features = torch.zeros(2, 1)
    assert greedy(toy, features, vocab, max_len=5).captions == ["x z"] * 2  # 0.55 * 0.34 = 0.187
    assert beam_search(toy, features, vocab, beam=2, max_len=5).captions == ["y"] * 2  # 0.45 * 1.0


class PrefixTree:
    """A stand-in decoder whose next-word probabilities depend on the whole caption so far.

    ``table`` maps a prefix (a tuple of words, ``<start>`` left out) to ``{word: probability}``; the
    probability left over is spread evenly over every other token, so no score is ``-inf``. The hidden
    state carries the index of the prefix, which is how beam search's reordering of states is checked too.
    """

    def __init__(self, vocab: Vocabulary, table: dict[tuple[str, ...], dict[str, float]]):
        self.vocab, self.table, self.vocab_size = vocab, table, len(vocab)
        self.prefixes: list[tuple[str, ...]] = []

    def _node(self, prefix: tuple[str, ...]) -> float:
        if prefix not in self.prefixes:
            self.prefixes.append(prefix)
        return float(self.prefixes.index(prefix))

    def _log_probs(self, prefix: tuple[str, ...]) -> torch.Tensor:
        given = {self.vocab.stoi[w]: p for w, p in self.table.get(prefix, {}).items()}
        rest = (1.0 - sum(given.values())) / (self.vocab_size - len(given))
        probs = torch.full((self.vocab_size,), rest)
        for index, p in given.items():
            probs[index] = p
        return probs.log()

    def embed(self, word: torch.Tensor) -> torch.Tensor:
        return word.float().unsqueeze(1)  # [N] → [N, 1]

    start = DecoderRNN.start  # the image, then <start>: the decoders begin every caption the model's way

    def step(self, inputs: torch.Tensor, state=None):
        """``inputs [N, 1]`` (a word index, or the image), ``state ([1, N, 1], same)`` → logits [N, V]."""
        if state is None:  # the image: its prediction is never used; the next input is <start>
            # image i's captions are looked up under ("#i", ...) when the table has such keys
            tags = [f"#{int(x)}" for x in inputs[:, 0]]
            nodes = [self._node((tag,) if (tag,) in self.table else ()) for tag in tags]
        else:
            nodes = []
            for row in range(inputs.shape[0]):
                prefix = self.prefixes[int(state[0][0, row, 0])]
                word = self.vocab.itos[int(inputs[row, 0])]
                nodes.append(self._node(prefix if word == "<start>" else prefix + (word,)))
        hidden = torch.tensor(nodes).view(1, -1, 1)
        if state is None:
            return torch.zeros(inputs.shape[0], self.vocab_size), (hidden, hidden)
        logits = torch.stack([self._log_probs(self.prefixes[int(n)]) for n in nodes])
        return logits, (hidden, hidden)


def test_beam_search_ranks_finished_captions_by_log_probability_per_token():
    """Total log-probability prefers "a" (0.6 × 0.6 = 0.36 > 0.35 × 0.9 × 0.9 = 0.28), but per token
    "b c" wins: log(0.36) / 2 = -0.51 < log(0.2835) / 3 = -0.42 (each caption's ``<end>`` counts)."""
    vocab = Vocabulary(["a", "b", "c"])
    tree = PrefixTree(
        vocab,
        {(): {"a": 0.6, "b": 0.35}, ("a",): {"<end>": 0.6}, ("b",): {"c": 0.9}, ("b", "c"): {"<end>": 0.9}},
    )
    features = torch.zeros(2, 1)
    assert greedy(tree, features, vocab, max_len=5).captions == ["a"] * 2
    assert beam_search(tree, features, vocab, beam=2, max_len=5).captions == ["b c"] * 2


def test_beam_search_prefers_a_finished_caption_to_a_likelier_unfinished_one():
    """At ``max_len`` the beam holds "b b b" (never ended, log-probability -0.71, -0.24 per token) and
    "a <end>" (-0.80, -0.40 per token): the finished caption is the answer, although it scores lower."""
    vocab = Vocabulary(["a", "b"])
    table = {(): {"a": 0.5, "b": 0.5}, ("a",): {"<end>": 0.9}, ("b",): {"b": 0.99}, ("b", "b"): {"b": 0.99}}
    tree = PrefixTree(vocab, table)
    features = torch.zeros(3, 1)
    assert beam_search(tree, features, vocab, beam=2, max_len=2).captions == ["a"] * 3


def test_beam_search_with_no_finished_caption_takes_the_best_per_token():
    """No caption ends within ``max_len``: the best per-token score wins, cut to ``max_len`` words."""
    vocab = Vocabulary(["a", "b"])
    tree = PrefixTree(
        vocab,
        {
            (): {"a": 0.6, "b": 0.4},
            ("a",): {"a": 0.5, "b": 0.4},
            ("a", "a"): {"a": 0.9},
            ("b",): {"b": 0.99},
            ("b", "b"): {"b": 0.99},
        },
    )
    decoded = beam_search(tree, torch.zeros(1, 1), vocab, beam=2, max_len=2)
    assert decoded.captions == ["b b"]


@pytest.mark.parametrize("decode", [greedy_naive, greedy, beam_search])
def test_decoding_records_no_gradients(setup, decode):
    decoder, vocab, features = setup
    grad_modes = []
    decoder.lstm.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    decode(decoder, features, vocab, max_len=3)
    assert grad_modes and not any(grad_modes)
    assert torch.is_grad_enabled()  # and the caller's mode is back afterwards


def test_beam_search_stops_after_max_len_plus_one_steps():
    """After ``max_len + 1`` steps (here 2) neither "a a" nor "b b" has ended: the better per token, "a a",
    is the answer (cut to 1 word). One step more would end "b b" and prefer it as finished."""
    vocab = Vocabulary(["a", "b"])
    table = {
        (): {"a": 0.6, "b": 0.4},
        ("a",): {"a": 0.9},
        ("b",): {"b": 0.9},
        ("a", "a"): {"a": 0.9},
        ("b", "b"): {"<end>": 0.9},
    }
    decoded = beam_search(PrefixTree(vocab, table), torch.zeros(1, 1), vocab, beam=2, max_len=1)
    assert decoded.captions == ["a"]


def test_decoding_defaults_are_the_documented_ones():
    import inspect

    from helpers.config import TrainConfig
    from helpers.decoding import decode_features
    from helpers.evaluation import evaluate_bleu

    assert inspect.signature(beam_search).parameters["beam"].default == 3
    # one word limit for generated captions, whichever way they are made (it was 20 here, 25 elsewhere)
    for decode in (greedy_naive, greedy, beam_search, decode_features, evaluate_bleu):
        assert inspect.signature(decode).parameters["max_len"].default == 25, decode.__name__
    assert TrainConfig().max_decode == 25


def test_beam_search_keeps_each_image_with_its_own_states():
    """Three images in one batch, each with its own probabilities: the answers are "a", "b c" and "c".
    Beams are reordered every step; mixing up the rows of two images gives one image the other's words."""
    vocab = Vocabulary(["a", "b", "c"])
    table = {
        ("#0",): {"a": 0.7, "b": 0.2},
        ("#0", "a"): {"<end>": 0.9},
        ("#0", "b"): {"<end>": 0.9},
        ("#1",): {"b": 0.7, "a": 0.2},
        ("#1", "b"): {"c": 0.9},
        ("#1", "b", "c"): {"<end>": 0.9},
        ("#1", "a"): {"a": 0.5},
        ("#2",): {"c": 0.7, "a": 0.2},
        ("#2", "c"): {"<end>": 0.9},
        ("#2", "a"): {"<end>": 0.9},
    }
    features = torch.tensor([[0.0], [1.0], [2.0]])
    expected = ["a", "b c", "c"]
    assert beam_search(PrefixTree(vocab, table), features, vocab, beam=2, max_len=5).captions == expected
    assert greedy(PrefixTree(vocab, table), features, vocab, max_len=5).captions == expected


def test_an_empty_caption_is_scored_per_token_like_any_other():
    """"<end>" at once: log(0.5) over 1 token = -0.69; "a <end>": log(0.45 × 0.6) / 2 = -0.65 wins."""
    vocab = Vocabulary(["a", "b"])
    tree = PrefixTree(vocab, {(): {"<end>": 0.5, "a": 0.45}, ("a",): {"<end>": 0.6}})
    assert beam_search(tree, torch.zeros(1, 1), vocab, beam=2, max_len=3).captions == ["a"]


def test_beam_search_keeps_three_captions_and_the_documented_word_limit_by_default(setup):
    """Four first words; only the fourth ("d") leads to a likely caption. Three beams never keep it."""
    vocab = Vocabulary(["a", "b", "c", "d"])
    table = {
        (): {"a": 0.3, "b": 0.25, "c": 0.24, "d": 0.21},
        **{(w,): {"<end>": 0.2} for w in "abc"},
        ("d",): {"<end>": 1.0},
    }
    assert beam_search(PrefixTree(vocab, table), torch.zeros(1, 1), vocab).captions == ["a"]
    assert beam_search(PrefixTree(vocab, table), torch.zeros(1, 1), vocab, beam=4).captions == ["d"]
    decoder, vocab, features = setup
    with torch.no_grad():
        decoder.linear.bias[vocab.end_id] = -1e4  # never ends: every caption runs to max_len
    assert {len(ids) for ids in beam_search(decoder, features[:2], vocab).ids} == {MAX_DECODE}


# Found by mutation testing (make mutation): defaults and step counts of the greedy loops. (The signature
# test above cannot see a changed default through mutmut's wrapper; these tests see its effect.)


def _never_ending(decoder: DecoderRNN, vocab: Vocabulary) -> DecoderRNN:
    with torch.no_grad():
        decoder.linear.bias.fill_(-100)
        decoder.linear.bias[vocab.stoi["red"]] = 100  # "red red red ..." forever
    return decoder


@pytest.mark.parametrize("decode", [greedy_naive, greedy])
def test_greedy_loops_stop_after_the_documented_word_limit_by_default(setup, decode):
    decoder, vocab, features = setup
    out = decode(_never_ending(decoder, vocab), features[:2], vocab)
    assert out.captions == [" ".join(["red"] * MAX_DECODE)] * 2


@pytest.mark.parametrize(("decode", "image_steps"), [(greedy_naive, 1), (greedy, 1)])
def test_greedy_loops_run_max_len_plus_one_steps_at_most_and_stop_once_all_ended(setup, decode, image_steps):
    """Both begin with ``DecoderRNN.start``: the LSTM once on the image, once on ``<start>`` (the first
    word); then ``greedy`` runs it once per word, ``greedy_naive`` once per word over the whole caption so
    far. ``max_len + 1`` word steps give a ``max_len``-word caption its ``<end>``."""
    decoder, vocab, features = setup
    calls = []
    decoder.lstm.register_forward_hook(lambda *_: calls.append(1))
    decode(_never_ending(decoder, vocab), features, vocab, max_len=4)
    assert len(calls) == image_steps + 5

    calls.clear()
    with torch.no_grad():
        decoder.linear.bias[vocab.end_id] = 200  # every caption ends at the first word
    assert decode(decoder, features, vocab, max_len=4).captions == [""] * 6
    assert len(calls) == image_steps + 1


class CountingTree(PrefixTree):
    """A :class:`PrefixTree` that ``greedy_naive`` can call too (the whole caption so far each time), and
    that counts the calls of either kind."""

    def __init__(self, vocab: Vocabulary, table: dict[tuple[str, ...], dict[str, float]]):
        super().__init__(vocab, table)
        self.calls = 0

    def step(self, inputs: torch.Tensor, state=None):
        self.calls += 1
        return super().step(inputs, state)

    def __call__(self, features: torch.Tensor, sequence: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """``features [B, 1]`` (image i: ``i``), ``sequence [B, T]`` → logits ``[B, T + 1, V]``."""
        self.calls += 1
        logits = torch.zeros(sequence.shape[0], sequence.shape[1] + 1, self.vocab_size)
        for row in range(sequence.shape[0]):
            tag = f"#{int(features[row, 0])}"
            words = tuple(self.vocab.itos[int(i)] for i in sequence[row, 1:])
            logits[row, -1] = self._log_probs(((tag,) if (tag,) in self.table else ()) + words)
        return logits


@pytest.mark.parametrize(("decode", "image_steps"), [(greedy_naive, 1), (greedy, 1)])
def test_greedy_loops_stop_once_every_caption_has_ended_at_its_own_step(decode, image_steps):
    """Image 0 ends at once and then says other words; image 1 ends after "a a". Both have ended after
    three steps, though never at the same step."""
    vocab = Vocabulary(["a", "b"])
    table = {
        ("#0",): {"<end>": 0.9},
        ("#0", "<end>"): {"b": 0.9},
        ("#0", "<end>", "b"): {"b": 0.9},
        ("#1",): {"a": 0.9},
        ("#1", "a"): {"a": 0.9},
        ("#1", "a", "a"): {"<end>": 0.9},
    }
    tree = CountingTree(vocab, table)
    assert decode(tree, torch.tensor([[0.0], [1.0]]), vocab, max_len=8).captions == ["", "a a"]
    assert tree.calls == image_steps + 3


def test_beam_search_finished_captions_keep_their_places_in_the_beam():
    """Two beams. After two words "a <end>" (0.25) and "b c" (0.225) fill the beam, and "b d" (0.2025)
    drops out: the finished caption keeps its place. The beam ends with "a" (log(0.25) / 2 = -0.69 per
    token) and "b c c" (log(0.1215) / 4 = -0.53), which wins. Setting "a <end>" aside and keeping two live
    captions would keep "b d" and answer "b d d" (log(0.1985) / 4 = -0.40)."""
    vocab = Vocabulary(["a", "b", "c", "d"])
    table = {
        (): {"a": 0.5, "b": 0.45},
        ("a",): {"<end>": 0.5},
        ("b",): {"c": 0.5, "d": 0.45},
        ("b", "c"): {"c": 0.6},
        ("b", "c", "c"): {"<end>": 0.9},
        ("b", "d"): {"d": 0.99},
        ("b", "d", "d"): {"<end>": 0.99},
    }
    features = torch.zeros(2, 1)
    assert greedy(PrefixTree(vocab, table), features, vocab, max_len=5).captions == ["a"] * 2
    assert beam_search(PrefixTree(vocab, table), features, vocab, beam=2, max_len=5).captions == ["b c c"] * 2
