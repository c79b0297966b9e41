import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.vocabulary import END, PAD, START, UNK, Vocabulary, tokenize


def test_tokenize_lowercases_and_strips_punctuation():
    assert tokenize("A dog's ball, (red)!") == ["a", "dog's", "ball", "red"]
    assert tokenize("Two shapes : a RED circle .") == ["two", "shapes", "a", "red", "circle"]


def test_tokenize_keeps_digits_and_accented_letters_and_splits_underscores():
    assert tokenize("3 cafés_near the\tsea\r\n") == ["3", "cafés", "near", "the", "sea"]


def test_specials_come_first_with_pad_zero():
    vocab = Vocabulary.build(["a red circle"])
    assert vocab.itos[:4] == [PAD, START, END, UNK]
    assert (vocab.pad_id, vocab.start_id, vocab.end_id, vocab.unk_id) == (0, 1, 2, 3)


def test_build_orders_by_frequency_then_alphabet_and_applies_threshold():
    vocab = Vocabulary.build(["b a a", "c b a", "d"], min_freq=2)
    assert vocab.itos[4:] == ["a", "b"]
    assert "c" not in vocab and "d" not in vocab


def test_encode_adds_start_end_and_maps_unknown_words():
    vocab = Vocabulary.build(["a red circle"])
    ids = vocab.encode("A red SQUARE.")
    assert ids[0] == vocab.start_id and ids[-1] == vocab.end_id
    assert ids[1:-1] == [vocab.stoi["a"], vocab.stoi["red"], vocab.unk_id]


def test_encode_max_words_cuts_words_but_keeps_start_and_end():
    vocab = Vocabulary.build(["a b c d e"])
    ids = vocab.encode("a b c d e", max_words=2)
    assert vocab.decode(ids, strip_special=False) == [START, "a", "b", END]  # 2 words, 4 tokens
    assert vocab.encode("a b", max_words=2) == vocab.encode("a b")  # a caption of max_words is not cut


def test_decode_stops_at_end_and_drops_start_and_pad():
    vocab = Vocabulary.build(["a red circle"])
    ids = vocab.encode("a red circle") + [vocab.pad_id, vocab.stoi["red"]]
    assert vocab.decode(ids) == ["a", "red", "circle"]


def test_json_round_trip_keeps_every_index(tmp_path):
    vocab = Vocabulary.build(["a red circle", "a blue café"])
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded == vocab and loaded.stoi == vocab.stoi
    assert json.loads((tmp_path / "vocab.json").read_text())["itos"][:4] == [PAD, START, END, UNK]


def test_load_rejects_a_broken_file_naming_it(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text('{"itos": ["a", "b"]}')
    with pytest.raises(ValueError, match="vocab.json"):
        Vocabulary.load(path)
    path.write_text("not json")
    with pytest.raises(ValueError, match="vocab.json"):
        Vocabulary.load(path)


def test_vocabulary_round_trip_in_utf8_under_the_c_locale(tmp_path):
    """A vocabulary of non-ASCII words, saved here, loaded and saved again where the locale is ASCII."""
    vocab = Vocabulary.build(["a café by the naïve señor", "café"])
    vocab.save(tmp_path / "here.json")
    assert '"café"' in (tmp_path / "here.json").read_text(encoding="utf-8")  # readable, not "caf\\u00e9"
    script = (  # ASCII only: under the C locale the command line itself is read as ASCII
        "import sys\n"
        "from helpers.vocabulary import Vocabulary\n"
        "Vocabulary.load(sys.argv[1]).save(sys.argv[2])\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONPATH": str(root)}
    there = tmp_path / "there.json"
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "here.json"), str(there)],
        env=env,
        capture_output=True,
        cwd=root,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-600:]
    words = json.loads(there.read_bytes().decode("utf-8"))["itos"][4:]
    assert words == ["café", "a", "by", "naïve", "señor", "the"]
    assert Vocabulary.load(there) == vocab


def test_vocabularies_are_equal_only_with_the_same_words_in_the_same_order():
    assert Vocabulary(["a", "b"]) == Vocabulary(["a", "b"])
    assert Vocabulary(["a", "b"]) != Vocabulary(["b", "a"]) and Vocabulary(["a"]) != ["<pad>"]


def test_repr_counts_the_words_and_shows_the_first_eight():
    vocab = Vocabulary.build(["a red circle and a blue square above it"])
    assert repr(vocab) == "Vocabulary(12 words: <pad> <start> <end> <unk> a above and blue ...)"


def test_bad_input_is_refused_with_a_message_that_says_why(tmp_path):
    with pytest.raises(ValueError, match="cannot hold the same word twice"):
        Vocabulary(["a", "a"])
    (tmp_path / "list.json").write_text('["<pad>"]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"list\.json: cannot read the vocabulary \(not a vocabulary"):
        Vocabulary.load(tmp_path / "list.json")


def test_encode_takes_a_list_of_words_as_it_is():
    vocab = Vocabulary.build(["a red circle"])
    assert vocab.encode(["red", "A"]) == [vocab.start_id, vocab.stoi["red"], vocab.unk_id, vocab.end_id]
