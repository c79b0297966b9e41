# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/notebooks/06_generation.ipynb)
#
# # 06 · Generation: from an image to a caption, one word at a time
#
# A trained decoder scores the next word; it does not write captions by itself. This notebook turns scores
# into captions: the textbook greedy loop, the same loop made fast by carrying the LSTM's state, decoding a
# whole batch at once, and beam search. We write each one here in full, check it against the version in
# `helpers.decoding`, and score them on the test split. At the end, an explorer lets you step through
# decoding yourself, word by word, on our images or your own.
#
# **You will learn to**
# - write greedy decoding twice, the literal way and with the carried LSTM state, and show that they agree
#   while one is much faster;
# - decode a batch of images at once, and say why it is faster than one image at a time;
# - write beam search with length normalisation, and find an image where it changes the caption;
# - compare decoders on the test split by BLEU-4 and by every attribute's accuracy, between the best
#   image-blind caption and the humans; and draw the curve of beam size against BLEU-4, CIDEr-D and length;
# - check that a model looks at its images (`diagnose`), and look at the captions it gets most wrong, with
#   each wrong word marked;
# - look inside one decoding: the top-5 next words and their probabilities at every step.
#
# **Prerequisites:** notebook 04 (the decoder, `step`) and notebook 05 (training; its run folder
# `runs/shapes`). If that run is missing, this notebook trains it first.
#
# **Run time:** about a minute on a quiet 2-core CPU when notebook 05 has run, under two minutes on a busy
# one (plus notebook 05's training time otherwise). **GPU:** not needed: decoding is small work (the stored
# timings were measured on a CPU).

# %% tags=["colab-setup"]
import sys
if "google.colab" in sys.modules:  # on Colab only: install the course (locally it is installed already)
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/captioning-course/image-captioning-cnn-lstm@v0.1.0")  # noqa: F821

# %%
from helpers.utils import get_device, seed_everything

seed_everything(0)
device = get_device()

# %% [markdown]
# ## 1. The trained model
#
# Notebook 05 saved its run in `runs/shapes`. `Run.load` reads back `best.pt`, the epoch with the best dev
# BLEU-4 (the course's rule: a run's figures come from that checkpoint, notebook 05, section 7): weights,
# vocabulary and configuration, never pickled code. It returns a `Run`: the model in eval mode, with the vocabulary, the
# configuration and the device that travel with it. If there is no run yet, we train one now with the same
# `fit` and the same configuration, so the result is the same model either way.

# %%
from helpers.scenes import make_shapes
from helpers.utils import course_root

ROOT = course_root()  # the course's folder, found from here upwards (on Colab: the current folder)
DATA = ROOT / "data" / "shapes"
CACHE = DATA / ".cache"
RUN = ROOT / "runs" / "shapes"
make_shapes(DATA)
print("dataset:", DATA.relative_to(ROOT), "| run folder:", RUN.relative_to(ROOT))

# %% tags=["nbval-ignore-output"]
from helpers.config import TrainConfig
from helpers.runs import Run
from helpers.training import fit
from helpers.utils import course_weights

print("device:", device)
if not (RUN / "checkpoint.pt").exists():
    print("No trained run yet: training one (this is what notebook 05 does).")
    config = TrainConfig.for_device(device, weights=course_weights())
    fit(DATA, run_dir=RUN, config=config, device=device, cache_dir=CACHE)
run = Run.load(RUN, device)
model, vocab, config = run.model, run.vocab, run.config

# %%
print(f"vocabulary: {len(vocab)} words | images at {config.image_size} px | hidden size {config.hidden_size}"
      f" | encoder weights: {config.weights}")
assert not model.training

# %% [markdown]
# The test images, and their backbone features: computed once and cached (notebook 05), so that decoding
# below costs only the projection and the LSTM.

# %%
import torch

from helpers.features import cached_features

from helpers.prepare import prepare_data

data = prepare_data(DATA, config.min_freq, log=lambda _: None)
test_images = data.images("test")
test_refs = data.references("test")
references = [test_refs[image] for image in test_images]
pooled = cached_features(model, test_images, config.image_size, device, CACHE, log=lambda _: None)
with torch.no_grad():
    features = model.encoder.project_features(pooled.to(device))  # [N, E]: the LSTM's first input
print("test images:", len(test_images), "| pooled:", tuple(pooled.shape), "→ features:", tuple(features.shape))

# %% [markdown]
# ## 2. Greedy decoding, the textbook way
#
# Every decoder begins the same way: the image is the LSTM's first input, then `<start>`; the scores after
# `<start>` are those of the first word. The decoder offers this as one method, `decoder.start(features)`
# → `(logits [B, V], state)`.
#
# The textbook loop (notebook 02): after the first word, run the decoder over the image and *the whole caption so far*
# at every step, keep the last position's scores, append the most probable word; stop at `<end>`. All
# test images go through it at once, as one batch (section 4 says why). A caption that has ended keeps
# being extended until all have; `words_until_end` afterwards keeps each caption's words up to its first
# `<end>`. The loop allows `max_len` words and then one more token, so that a caption of exactly `max_len`
# words can still say `<end>`; one that never does is cut to `max_len` words.

# %%
def words_until_end(ids: list[int], vocab, max_len: int) -> str:
    """Predicted word ids → the caption: the words before the first ``<end>``, at most ``max_len``."""
    if vocab.end_id in ids:
        ids = ids[: ids.index(vocab.end_id)]
    return " ".join(vocab.itos[i] for i in ids[:max_len])


def my_greedy_naive(decoder, features, vocab, max_len: int) -> list[str]:
    """``features [B, E]`` → B captions; every step re-reads the image and the whole caption so far."""
    batch = features.shape[0]
    with torch.no_grad():
        logits, _ = decoder.start(features, vocab.start_id)  # [B, V]: the first word's scores
        word = logits.argmax(dim=-1)  # [B]
        sequence = torch.stack([torch.full_like(word, vocab.start_id), word], dim=1)  # [B, 2]
        ended = word == vocab.end_id
        while sequence.shape[1] <= max_len + 1 and not ended.all():  # <start> + max_len words, then <end>
            logits = decoder(features, sequence, [sequence.shape[1]] * batch)  # [B, t+2, V]: all again
            word = logits[:, -1].argmax(dim=-1)  # the last position predicts the next word
            sequence = torch.cat([sequence, word.unsqueeze(1)], dim=1)
            ended |= word == vocab.end_id
    return [words_until_end(row, vocab, max_len) for row in sequence[:, 1:].tolist()]  # without <start>


# %% tags=["nbval-ignore-output"]
from pathlib import Path

naive = my_greedy_naive(model.decoder, features, vocab, max_len=config.max_decode)
for image, caption in list(zip(test_images, naive, strict=True))[:4]:
    print(f"{Path(image).name}: {caption}")

# %% [markdown]
# Step `t` re-reads `t + 2` positions, so a caption of `n` words costs about `n²/2` LSTM steps. The same
# loop is `helpers.decoding.greedy_naive`; it gives the same captions:

# %%
from helpers.decoding import greedy_naive

assert naive == greedy_naive(model.decoder, features, vocab, max_len=config.max_decode).captions
print(f"my_greedy_naive and greedy_naive: the same {len(naive)} captions")

# %% [markdown]
# ## 3. Greedy decoding with the carried state
#
# An LSTM is causal: its state after reading the image and `t` words summarises everything it has read.
# Re-reading the same words gives the same state again. So we keep the state `(h, c)` and feed only the
# newest word, one `decoder.step` per word (notebook 04).

# %%
def my_greedy(decoder, features, vocab, max_len: int) -> list[str]:
    """``features [B, E]`` → B captions, one LSTM step per word with the state carried along."""
    with torch.no_grad():
        logits, state = decoder.start(features, vocab.start_id)  # the image, then <start>
        word = logits.argmax(dim=-1)  # [B]
        words, ended = [word], word == vocab.end_id
        while len(words) <= max_len and not ended.all():  # max_len words, then room for <end>
            logits, state = decoder.step(decoder.embed(word), state)  # only the newest word, and the state
            word = logits.argmax(dim=-1)
            words.append(word)
            ended |= word == vocab.end_id
    return [words_until_end(row, vocab, max_len) for row in torch.stack(words, dim=1).tolist()]


# %% tags=["nbval-ignore-output"]
carried = my_greedy(model.decoder, features, vocab, max_len=config.max_decode)
for image, caption in list(zip(test_images, carried, strict=True))[:4]:
    print(f"{Path(image).name}: {caption}")
same = sum(a == b for a, b in zip(naive, carried, strict=True))
print(f"the same as re-reading the caption: {same} of {len(test_images)}")
# The same arithmetic in another order: a near tie between two words can, rarely, fall the other way.
assert same >= 0.99 * len(test_images), same

# %% [markdown]
# Checked against the helpers' version, `helpers.decoding.greedy`, which the rest of the course uses:

# %%
from helpers.decoding import greedy

assert carried == greedy(model.decoder, features, vocab, max_len=config.max_decode).captions
print(f"my_greedy and greedy: the same {len(carried)} captions")

# %% [markdown]
# How much faster is the carried state? We decode the whole test split both ways with the helpers'
# versions, twice each, and keep the faster run of each (the one least disturbed by whatever else the
# machine does).

# %%
import time

def seconds(decode, repeats: int = 2) -> float:
    """The fastest of ``repeats`` runs of ``decode()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode()
        times.append(time.perf_counter() - start)
    return min(times)


slow = seconds(lambda: greedy_naive(model.decoder, features, vocab, max_len=config.max_decode))
fast = seconds(lambda: greedy(model.decoder, features, vocab, max_len=config.max_decode))

# %% tags=["nbval-ignore-output"]
print(f"greedy_naive (re-reads the caption): {slow * 1000:7.0f} ms for {len(test_images)} images")
print(f"greedy (carried state):              {fast * 1000:7.0f} ms  ({slow / fast:.1f}× faster)")

# %% [markdown]
# ## 4. Batched decoding
#
# Both loops above decode all test images at once: each `decoder.step` is one matrix product for the whole
# batch. Captions end at different steps; a caption that has ended keeps being extended (its extra words
# are cut at its first `<end>` afterwards), and the loop stops when all have ended. Decoding one image at a
# time gives the same captions, with one small matrix product per image per step instead:

# %%
sample = features[:100]
one_by_one = [greedy(model.decoder, f.unsqueeze(0), vocab, config.max_decode).captions[0] for f in sample]
batched = greedy(model.decoder, sample, vocab, config.max_decode).captions
identical = sum(a == b for a, b in zip(one_by_one, batched, strict=True))
print(f"identical: {identical} of {len(sample)}")

# %%
assert identical >= 0.98 * len(sample), identical
single = seconds(lambda: [greedy(model.decoder, f.unsqueeze(0), vocab, config.max_decode) for f in sample])
batch = seconds(lambda: greedy(model.decoder, sample, vocab, config.max_decode))

# %% tags=["nbval-ignore-output"]
print(f"one image at a time: {single * 1000:6.0f} ms for {len(sample)} images")
print(f"one batch of {len(sample)}:    {batch * 1000:6.0f} ms  ({single / batch:.0f}× faster)")

# %% [markdown]
# ## 5. Beam search
#
# Greedy decoding commits to the best word at every step, and can never take it back. Beam search keeps the
# `k` most probable partial captions of each image instead (the *beam*): at every step it extends each of
# them by every word of the vocabulary and keeps the `k` best of the `k × V` candidates, by total
# log-probability. A caption that has said `<end>` keeps its place in the beam with its score, and competes
# for the `k` places with the ones still growing: the more captions end, the fewer grow. (A common
# alternative sets finished captions aside and keeps `k` growing ones; exercise 6 builds it.) The search
# stops when every caption in the beam has ended. It answers with a finished caption: the one with the
# best log-probability *per token* (its words and its `<end>`). Every extra word adds a negative
# log-probability, so ranking by the total would favour short captions; the average does not. With `k = 1`
# it is greedy decoding.
#
# The whole batch at once: the `k` partial captions of the `B` images are `B × k` rows of one LSTM batch,
# and after each step every row takes over the state of the caption it continues (`parent`).

# %%
def beam_step(scores, words, tokens, ended, log_probs, vocab):
    """One step for ``B`` images with ``k`` captions each: ``log_probs [B, k, V]`` of every next word →
    the ``k`` best continuations per image: their ``scores``, ``words``, ``tokens``, ``ended`` and
    ``parent [B, k]``, the caption each one continues."""
    batch, beam, vocab_size = log_probs.shape
    only_end = torch.full((vocab_size,), float("-inf"), device=log_probs.device)
    only_end[vocab.end_id] = 0.0  # an ended caption may only go on with <end>, at no cost
    log_probs[ended] = only_end
    candidates = (scores.unsqueeze(-1) + log_probs).view(batch, beam * vocab_size)
    scores, best = candidates.topk(beam, dim=-1)  # [B, k] the k best of k × V
    parent, new_word = best // vocab_size, best % vocab_size  # which caption, extended by which word
    kept = words.gather(1, parent.unsqueeze(-1).expand(-1, -1, words.shape[2]))
    words = torch.cat([kept, new_word.unsqueeze(-1)], dim=-1)  # [B, k, t+1]
    parent_ended = ended.gather(1, parent)
    tokens = tokens.gather(1, parent) + (~parent_ended).float()  # tokens said, <end> included
    ended = parent_ended | (new_word == vocab.end_id)
    return scores, words, tokens, ended, parent


# %% [markdown]
# At the end, each image keeps its best caption by score per token; a finished caption beats any
# unfinished one:

# %%
def choose_best(scores, words, tokens, ended, normalise: bool = True):
    """``words [B, k, t]`` → ``[B, t]``, the best caption of each image."""
    per_token = scores / tokens.clamp(min=1) if normalise else scores
    # finished captions first: where an image has one, its unfinished ones are out of the running
    per_token = per_token.masked_fill(~ended & ended.any(dim=1, keepdim=True), float("-inf"))
    return words[torch.arange(words.shape[0], device=words.device), per_token.argmax(dim=1)]


# %% [markdown]
# And the search itself: start from the image, then step, moving each row's LSTM state to the caption
# it now continues, until every caption has ended or `max_len` words are said.

# %%
def my_beam_search(decoder, features, vocab, beam: int, max_len: int, normalise: bool = True) -> list[str]:
    """``features [B, E]`` → B captions, the best finished one of ``beam`` kept per image."""
    batch, device = features.shape[0], features.device
    scores = torch.full((batch, beam), float("-inf"), device=device)  # [B, k] total log-probabilities
    scores[:, 0] = 0.0  # the k rows start identical: only the first may grow at the first step
    words = torch.zeros((batch, beam, 0), dtype=torch.long, device=device)  # [B, k, t] words so far
    tokens = torch.zeros(batch, beam, device=device)  # [B, k]
    ended = torch.zeros(batch, beam, dtype=torch.bool, device=device)  # [B, k]
    with torch.no_grad():
        logits, (h, c) = decoder.start(features, vocab.start_id)  # [B, V]; (h, c) [layers, B, H] each
        logits = logits.repeat_interleave(beam, dim=0)  # [B*k, V]: k rows per image
        h, c = h.repeat_interleave(beam, dim=1), c.repeat_interleave(beam, dim=1)  # [layers, B*k, H]
        for step in range(max_len + 1):  # max_len words, then room for <end>
            log_probs = logits.log_softmax(dim=-1).view(batch, beam, -1)
            scores, words, tokens, ended, parent = beam_step(scores, words, tokens, ended, log_probs, vocab)
            rows = (parent + beam * torch.arange(batch, device=device).unsqueeze(1)).view(-1)
            h, c = h[:, rows], c[:, rows]  # each row continues from its parent's state
            if ended.all() or step == max_len:
                break
            logits, (h, c) = decoder.step(decoder.embed(words[:, :, -1].reshape(-1)), (h, c))
    chosen = choose_best(scores, words, tokens, ended, normalise)
    return [words_until_end(row, vocab, max_len) for row in chosen.tolist()]


# %% tags=["nbval-ignore-output"]
beams = {k: my_beam_search(model.decoder, features, vocab, beam=k, max_len=config.max_decode) for k in (3, 5)}
for image, caption in list(zip(test_images, beams[3], strict=True))[:4]:
    print(f"{Path(image).name}: {caption}")

# %% [markdown]
# The same as `helpers.decoding.beam_search`, for both beam widths. Also with room for only 8 words: then
# some captions cannot finish, and the rule that prefers finished ones decides.

# %%
from helpers.decoding import beam_search

for k, captions in beams.items():
    assert captions == beam_search(model.decoder, features, vocab, beam=k, max_len=config.max_decode).captions, k
    short = my_beam_search(model.decoder, features, vocab, beam=k, max_len=8)
    assert short == beam_search(model.decoder, features, vocab, beam=k, max_len=8).captions, k
print(f"my_beam_search and beam_search: the same {len(test_images)} captions with beams of 3 and 5, "
      f"with {config.max_decode} words at most and with 8")

# %% tags=["nbval-ignore-output"]
from helpers.vocabulary import tokenize

for k, decoded in beams.items():
    differ = sum(a != b for a, b in zip(carried, decoded, strict=True))
    print(f"beam {k}: differs from greedy on {differ} of {len(test_images)} images")


def written_by_an_annotator(caption: str, image: str) -> bool:
    return tokenize(caption) in [tokenize(reference) for reference in test_refs[image]]


# %% tags=["nbval-ignore-output"]
first = next(
    (i for i, image in enumerate(test_images)
     if written_by_an_annotator(beams[3][i], image)
     and not written_by_an_annotator(carried[i], image)),
    None,
)
if first is None:
    print("beam 3 never finds an annotator's exact caption where greedy misses it")
else:
    print(f"\n{Path(test_images[first]).name}")
    print(f"  greedy: {carried[first]}")
    print(f"  beam 3: {beams[3][first]}")
    print(f"  beam 5: {beams[5][first]}")
    for reference in test_refs[test_images[first]]:
        print(f"  reference: {reference}")
assert all(len(decoded) == len(test_images) for decoded in beams.values())

# %% [markdown]
# Beam search changes most captions here. The example above is the first test image on which beam 3 finds a
# caption that one of the five annotators wrote word for word, and greedy does not. Why so many changes?
# At several steps our model hesitates between words of similar probability (section 8 shows where);
# greedy takes the narrow winner and cannot go back, beam search keeps the alternatives and picks the
# caption that is most probable *as a whole* (per token).
#
# ## 6. Scores on the test split: words and facts
#
# Each decoder on every test image, scored two ways (notebook 05, sections 8–9): BLEU-4 against the five
# references, and the accuracy of every attribute a caption states, checked against the scene's truth. Two
# rows frame them: the floor, the best image-blind caption (one caption for every image, chosen on dev),
# and the ceiling, the humans (each annotator scored against the other four).

# %%
import pandas as pd

from helpers.attributes import attribute_accuracy, read_scenes, scenes_for
from helpers.metrics import best_blind_caption, corpus_bleu_scores, human_ceiling

dev_refs = data.references("dev")
blind_caption, _ = best_blind_caption(
    list(data.split("train")["caption"]), [dev_refs[image] for image in data.images("dev")]
)
test_scenes = scenes_for(test_images, read_scenes(DATA))
decoders = {
    "greedy": carried,
    "beam 3": beams[3],
    "beam 5": beams[5],
    "best image-blind caption": [blind_caption] * len(test_images),
}
rows = {
    name: {**corpus_bleu_scores(references, captions), **attribute_accuracy(captions, test_scenes)}
    for name, captions in decoders.items()
}
rows["humans (each against the other four)"] = human_ceiling(references, test_scenes).loc["mean"].to_dict()
scores = pd.DataFrame(rows).T.drop(columns=["bleu1", "bleu2", "bleu3"])
print(f"best image-blind caption: {blind_caption!r}")

# %% tags=["nbval-ignore-output"]
floor = scores.loc["best image-blind caption", "bleu4"]
for name in ("greedy", "beam 3", "beam 5"):
    row = scores.loc[name]
    assert row["bleu4"] >= max(0.65, floor + 0.2), scores
    assert row["colour"] >= 0.85 and row["count"] >= 0.98 and row["background"] >= 0.95, scores
scores.round(3)

# %% [markdown]
# Beam search raises BLEU-4 a little (the first three rows), and the facts hardly at all: colour, kind and
# relation stay close to where greedy put them, and the whole-caption score (**all**) moves by a few points
# at most. A decoder
# cannot add what the features do not carry: the **kind** stays partly a guess with every decoder (notebook
# 05, section 9, traces it to the frozen random ResNet50). Beam search's BLEU gain is style: ranking
# finished captions by log-probability *per token* favours the annotators' longer templates ("there is a
# …", "two shapes …"), and BLEU's brevity penalty favours long captions too. The blind caption shows how
# much BLEU rewards phrasing alone: its BLEU-4 is above the humans' agreement with each other, while it
# gets almost no image entirely right (**all**).
#
# ### How wide a beam?
#
# Beams of 1 (greedy), 2, 3, 5 and 10 on every test image, each scored by BLEU-4, CIDEr-D (notebook 05,
# section 9), the whole-caption attribute score **all**, and the mean caption length in words. The cell
# prints how long each beam takes to decode the test split.

# %%
from helpers.decoding import decode_features
from helpers.metrics import cider_d

curve, decode_seconds = {}, {}
for k in (1, 2, 3, 5, 10):
    start = time.perf_counter()
    decoded = decode_features(model, pooled, vocab, device, beam=k, max_len=config.max_decode)
    decode_seconds[k] = time.perf_counter() - start
    curve[k] = {
        "BLEU-4": corpus_bleu_scores(references, decoded)["bleu4"],
        "CIDEr-D": cider_d(references, decoded)[0],
        "all": attribute_accuracy(decoded, test_scenes)["all"],
        "mean length (words)": sum(len(c.split()) for c in decoded) / len(decoded),
    }
curve = pd.DataFrame(curve).T.rename_axis("beam")
assert curve.loc[1, "BLEU-4"] == scores.loc["greedy", "bleu4"]  # a beam of 1 is greedy decoding

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt

for k, took in decode_seconds.items():
    print(f"beam {k:>2}: {took:5.1f} s for {len(test_images)} images")
figure, axes = plt.subplots(1, len(curve.columns), figsize=(12, 2.8), layout="constrained")
for ax, (name, values) in zip(axes, curve.items(), strict=True):
    ax.plot(curve.index, values, marker="o")
    ax.set(title=name, xlabel="beam size (log scale)", xscale="log")
    ax.set_xticks(list(curve.index), labels=list(curve.index))
    ax.minorticks_off()
curve.round(3)

# %% [markdown]
# Here a wider beam writes longer captions: the mean length climbs by three to four words up to a beam of 3,
# then stays. BLEU-4 and **all** rise a little with it up to a beam of 3 and are flat after, while CIDEr-D
# falls a little: the longer templates ("two shapes : … on the left and … on the right") share more n-grams
# with some reference, but CIDEr-D gives such common words little weight. Beyond 3 the scores barely move:
# a wider beam costs time and buys nothing here. Even a beam of 10 decodes the whole test split in seconds
# on a CPU (the timings above), so no subset is needed.
#
# ### Is the model looking at the image?
#
# The questions learners ask most about a captioner that disappoints: does it give every image the same
# caption, and does it look at the image at all? `helpers.diagnostics.diagnose` answers both for a split
# (the same report as `python -m helpers diagnose --run RUN --data DATA`): the share of images that get the
# single most common caption, how varied the words are (distinct-1 and -2: distinct words and word pairs
# over all of them), the mean length against the references', the share of the vocabulary ever used, and
# **image sensitivity**: swap every image's features with another test image's and count the captions that
# change (a model that ignores its image scores 0). A failure comes with its usual causes and how to check
# each.

# %% tags=["nbval-ignore-output"]
from helpers.diagnostics import diagnose, format_diagnosis

report = diagnose(model, pooled, vocab, references, device, max_len=config.max_decode, captions=carried)
print(format_diagnosis(report))
assert report["flags"] == [], report["flags"]

# %% [markdown]
# The trained model passes both checks: its most common caption goes to about one test image in a hundred,
# and swapping the features changes nearly every caption. Its captions are a little shorter than the
# references, and it uses most of the vocabulary. Look at the captions, not only at the scores:
#
# ## 7. What the captions look like
#
# Six test images, with the greedy and beam-3 captions and two of the five references.

# %%
from helpers.plots import show_captions

table = pd.DataFrame(
    {"image": test_images, "generated": carried, "beam 3": beams[3], "references": references}
)
figure = show_captions(table, n=6, columns=3, references=2, seed=1)

# %% [markdown]
# From image files (or pictures) to captions in one call: `run.caption` reads them at the run's image size,
# encodes them, and decodes greedily, or with beam search when given a `beam_size`.

# %% tags=["nbval-ignore-output"]
for path, caption in zip(test_images[:3], run.caption(test_images[:3], beam_size=3), strict=True):
    print(f"{Path(path).name}: {caption}")

# %% [markdown]
# ### The worst captions, and what is wrong in them
#
# An average hides the errors. CIDEr-D scores every image on its own (`cider_d` returns the per-image
# scores beside the corpus score), so we can rank the test images by it and look at the 8 the greedy
# captions get most wrong, with the 4 best for contrast. Each wrong colour, kind or size word is marked in
# red, checked against the scene's truth (`helpers.attributes` records where in the caption it read each
# word). On a dataset without scene truth, such as Flickr8k, call `gallery_table` without `scenes`: it
# marks nothing, and the references are there to compare with.

# %% tags=["nbval-ignore-output"]
from helpers.gallery import gallery_table, show_error_gallery

test_cider, per_image = cider_d(references, carried)
gallery = gallery_table(test_images, carried, references, per_image, scenes=test_scenes, worst=8, best=4)
print(f"greedy test CIDEr-D {test_cider:.3f}; per image from {min(per_image):.2f} to {max(per_image):.2f}")
for row in gallery.itertuples():
    marked = ", ".join(f"{row.caption.split()[at]} ({what})" for at, what in row.wrong.items()) or "-"
    print(f"{row.group:5} {row.score:5.2f}  {Path(row.image).name}: wrong {marked}")

# %% tags=["nbval-ignore-output"]
figure = show_error_gallery(gallery, columns=4)

# %% [markdown]
# The worst captions are not vague: they are fluent, confident descriptions of another scene. Most of their
# marked words are kinds and sizes (the frozen random ResNet50 carries little of the shape, notebook 05,
# section 9), some are colours, and some captions invent a second shape or leave one out. The best ones
# use the first annotator's template with every fact right.

# %% [markdown]
# ## 8. Inside one decoding, step by step
#
# `helpers.widgets.CaptionStepper` runs greedy decoding one word at a time, with the carried state, and lets
# you look at the next-word distribution between steps: `reset(image)` encodes an image, `top_k()` lists the
# most probable next words, `step()` appends the best one (or a word you give it), `caption` is the caption
# so far. Here is the trace for one test image: at every step, the five most probable words.

# %% tags=["nbval-ignore-output"]
from helpers.data import load_image
from helpers.widgets import CaptionStepper

stepper = CaptionStepper(run)
image_path = test_images[0]
stepper.reset(load_image(image_path))
trace = []
while not stepper.done:
    top = stepper.top_k(5)
    word = stepper.step()
    trace.append((word, top))
print(Path(image_path).name)
for number, (word, _) in enumerate(trace, start=1):
    print(f"step {number:>2}: {word}")
print("caption:", stepper.caption)

# %% jupyter={"source_hidden": true} tags=["check"]
# greedy() on the features of this one image, computed the same way as the stepper's
with torch.no_grad():
    own = greedy(model.decoder, model.encoder(run.pixels([load_image(image_path)])), vocab, config.max_decode)
assert stepper.caption == own.captions[0]
assert trace[-1][0] == "<end>" and len(trace) == len(carried[0].split()) + 1  # every word, then <end>

# %% [markdown]
# The same steps with the probabilities of the five best candidates (rounded to two digits):

# %% tags=["nbval-ignore-output"]
for number, (_, top) in enumerate(trace, start=1):
    print(f"step {number:>2}: " + "  ".join(f"{w} {p:.2f}" for w, p in top))
assert all(word == top[0][0] for word, top in trace)  # greedy: always the most probable word
assert all(1 >= top[0][1] >= top[-1][1] > 0 for _, top in trace)

# %% [markdown]
# Look where the model hesitates. Some choices are open by nature: the first word ("a", "one", "there" begin
# different annotators' sentences), "small" against the colour (one annotator leaves sizes out), or "on"
# against "in". Others are about the image: the colour and the shape. On this image the model is sure of
# both, but over the test split it names the kind wrong in more than a third of the shapes (section 6), so
# on many images the shape is a close call: look at a few more (`image_path = test_images[1]`, and so on).
# Where the grammar decides (once "in" is chosen, "the middle of the picture" follows), it is close to 1.
#
# ## 9. The explorer
#
# The same thing, interactively. Pick a test image, or upload your own (it goes through
# `helpers.data.load_image`, so a file that is not a readable image gets a clear message instead of an
# error), then press **next word** to decode one more word; **reset** starts the caption again. The table
# shows the five most probable next words. (The widgets need a running notebook: on GitHub you see only a
# line of text.)

# %%
from helpers.widgets import decoding_explorer

explorer = decoding_explorer(run, test_images[:30])
explorer

# %% [markdown]
# The upload button sends the file through the notebook's connection to its kernel, which suits an ordinary
# photograph of a few megabytes; a much larger file may never arrive (on Colab too). Then copy the file into
# the session instead, with Colab's *Files* panel or by mounting Google Drive
# (`from google.colab import drive; drive.mount("/content/drive")`), and show it by its path, in a cell
# of its own (a sketch: put your file's path in the first line):
#
# ```python
# path = Path("/content/drive/MyDrive/photo.jpg")
# explorer.show_bytes(path.name, path.read_bytes())
# ```
#
# Try it: upload a photograph. The model has only ever seen coloured shapes on plain backgrounds, and its
# few dozen words are all it can say — it will describe your photo as shapes. A captioner knows only the world
# of its training data.

# %% tags=["nbval-ignore-output"]
from helpers.utils import run_time

print(f"this notebook ran in {run_time()} up to here (the solutions at the end not counted)")

# %% [markdown]
# ## Recap
#
# | Step | Where it lives |
# |---|---|
# | read a trained run back (model, vocabulary, configuration, device) | `helpers.runs.Run.load` |
# | begin a caption: the image, then `<start>` (every decoder below) | `helpers.models.DecoderRNN.start` |
# | greedy, re-reading the caption at every step (the textbook loop): `my_greedy_naive` | `helpers.decoding.greedy_naive` |
# | greedy with the carried LSTM state, one `decoder.step` per word: `my_greedy` | `helpers.decoding.greedy` |
# | beam search, the best finished caption per token: `my_beam_search` | `helpers.decoding.beam_search` |
# | captions for cached features, in batches; BLEU on a split | `helpers.decoding.decode_features`; `helpers.evaluation.evaluate_split` |
# | captions for image files or pictures, greedy or beam | `Run.caption(images, beam_size=...)` |
# | BLEU-1…4 (0–1); the blind floor and the human ceiling | `helpers.metrics.corpus_bleu_scores`, `best_blind_caption`, `human_ceiling` |
# | every attribute's accuracy against the scene's truth | `helpers.attributes.attribute_accuracy` |
# | CIDEr-D, corpus and per image | `helpers.metrics.cider_d` |
# | is the model looking at its images? | `helpers.diagnostics.diagnose`, `format_diagnosis` (`python -m helpers diagnose`) |
# | the worst and best images, wrong words marked | `helpers.gallery.gallery_table`, `show_error_gallery`, `wrong_words` |
# | one word at a time, with the top-k next words | `helpers.widgets.CaptionStepper` |
# | the explorer | `helpers.widgets.decoding_explorer` (`DecodingExplorer`) |
#
# From a terminal: `python -m helpers caption --run runs/shapes --beam 3 IMAGE...` captions image files, and
# `python -m helpers evaluate --run runs/shapes --data data/shapes --beam 3` scores a split.
#
# ## Exercises
#
# 1. Time `greedy_naive` and `greedy` with `max_len=50` on a model that never says `<end>`: on a copy of
#    the decoder, set `linear.bias[vocab.end_id] = -100` inside `with torch.no_grad():` (the bias is a
#    parameter, so autograd refuses an in-place edit otherwise). How does the gap grow with the length?
# 2. In the explorer's stepper, force a different first word: `stepper.reset(image)`, then
#    `stepper.step("big")` (or any word in `vocab.itos`), then keep calling `stepper.step()`. Does the model
#    recover a sensible caption?
# 3. The beam curve of section 6 stops at 10: add beams of 20 and 50. Does BLEU-4 keep rising? Look at the
#    captions that change.
# 4. Remove the length normalisation from `my_beam_search`: `normalise=False` picks the best total
#    log-probability. Are the captions shorter? Why?
# 5. Sampling instead of the argmax: at every step draw the next word from `softmax(logits / T)` for a
#    temperature `T`. What do `T = 0.5`, `1` and `2` produce?
# 6. Set finished captions aside: copy `my_beam_search` and take the `2k` best candidates at every step (at
#    most `k` of them say `<end>`, one per caption). An `<end>` among the `k` best goes to a list of
#    finished captions, with its score per token; the `k` best that do not end stay in the beam, so `k`
#    captions always grow. Stop an image once it has `k` finished captions, and compare BLEU-4 and **all**
#    with section 6 for `k = 3` and `5`. Then stop an image only once the best growing caption, were it to
#    end at the next step at no cost, would score no better per token than the worst of its `k` finished
#    ones (or after `max_len` words). Which stopping rule loses captions, and why?

# %% [markdown]
# ### Solutions
#
# Try each exercise before you open its solution: every solution cell below is collapsed (in JupyterLab,
# click the `…` to show it; on Colab, "Show code").

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 1
import copy

endless = copy.deepcopy(model.decoder)
with torch.no_grad():  # the bias is a parameter: edit it without autograd
    endless.linear.bias[vocab.end_id] = -100
some = features[:100]
for max_len in (10, 25, 50):
    slow = seconds(lambda max_len=max_len: greedy_naive(endless, some, vocab, max_len=max_len), repeats=1)
    fast = seconds(lambda max_len=max_len: greedy(endless, some, vocab, max_len=max_len), repeats=1)
    print(f"max_len {max_len:>2}: re-feeding {slow * 1000:6.0f} ms, carried state {fast * 1000:5.0f} ms ({slow / fast:.0f}×)")
# The carried state does one LSTM step per word, re-feeding does 1 + 2 + … + n: the gap grows about in
# proportion to the length.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 2
for first_word in ("big", "two", "there"):
    stepper.reset(load_image(image_path))
    stepper.step(first_word)
    while not stepper.done:
        stepper.step()
    print(f"{first_word:>5} → {stepper.caption}")
print(f"greedy: {carried[0]}")
# The model carries on from the forced word with a sentence of the same template ("two" starts the
# two-shape template); whether the facts survive depends on the word: the state now says something else.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 3
first_200 = pooled[:200]  # a sized-down subset: beam 50 on all 1000 images takes a while on a CPU
wide = {k: decode_features(model, first_200, vocab, device, beam=k, max_len=config.max_decode) for k in (10, 20, 50)}
for k, decoded in wide.items():
    changed = sum(a != b for a, b in zip(decoded, wide[10], strict=True))
    print(f"beam {k:>2}: BLEU-4 {corpus_bleu_scores(references[:200], decoded)['bleu4']:.3f}, "
          f"{sum(len(c.split()) for c in decoded) / 200:.2f} words, {changed} captions differ from beam 10")
# BLEU-4 stops rising: wider beams find captions that are more probable as a whole, not better ones.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 4
for normalise in (True, False):
    decoded = my_beam_search(model.decoder, features, vocab, beam=3, max_len=config.max_decode, normalise=normalise)
    print(f"normalise={normalise!s:<5}: {sum(len(c.split()) for c in decoded) / len(decoded):.2f} words, "
          f"BLEU-4 {corpus_bleu_scores(references, decoded)['bleu4']:.3f}")
# Every word adds a negative log-probability, so the total favours short captions; dividing by the
# number of tokens removes that bias.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 5
def sample(decoder, features, vocab, temperature: float, max_len: int, seed: int = 0) -> list[str]:
    """Draw each next word from softmax(logits / temperature) instead of taking the argmax."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        logits, state = decoder.start(features, vocab.start_id)
        drawn = []
        for _ in range(max_len + 1):
            probs = (logits / temperature).softmax(dim=-1).cpu()
            word = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(features.device)
            drawn.append(word)
            logits, state = decoder.step(decoder.embed(word), state)
    return [words_until_end(row, vocab, max_len) for row in torch.stack(drawn, dim=1).tolist()]


for temperature in (0.5, 1.0, 2.0):
    drawn = sample(model.decoder, features[:200], vocab, temperature, config.max_decode)
    print(f"T = {temperature}: BLEU-4 {corpus_bleu_scores(references[:200], drawn)['bleu4']:.3f} | {drawn[0]}")
# Low temperatures stay close to greedy; T = 1 samples the model's own distribution (varied, a few
# slips); T = 2 flattens it until rare words and broken grammar come in.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 6
def set_aside_search(decoder, feature, vocab, k: int, max_len: int, rule: str) -> str:
    """Beam search for one image that keeps k growing captions and sets finished ones aside.
    rule "k finished": stop at k finished; "bound": stop when no growing caption can still win."""
    with torch.no_grad():
        logits, state = decoder.start(feature.unsqueeze(0), vocab.start_id)
        alive, finished = [(0.0, [], state, logits[0].log_softmax(-1))], []  # finished: (per token, words)
        for _ in range(max_len + 1):
            candidates = sorted(
                ((score + lp, words + [w], st) for score, words, st, log_probs in alive
                 for lp, w in zip(*[t.tolist() for t in log_probs.topk(2 * k)], strict=True)),
                key=lambda c: -c[0])[: 2 * k]
            finished += [(score / len(words), words) for score, words, _ in candidates[:k]
                         if words[-1] == vocab.end_id]
            growing = [c for c in candidates if c[1][-1] != vocab.end_id][:k]
            best_k = sorted(finished, reverse=True)[:k]
            if rule == "k finished" and len(finished) >= k:
                break
            if rule == "bound" and len(best_k) == k and max(s / (len(w) + 1) for s, w, _ in growing) <= best_k[-1][0]:
                break
            alive = []
            for score, words, st in growing:
                step_logits, step_state = decoder.step(decoder.embed(torch.tensor(words[-1:], device=feature.device)), st)
                alive.append((score, words, step_state, step_logits[0].log_softmax(-1)))
        pool = finished or [(score / len(words), words) for score, words, _ in growing]
    return words_until_end(max(pool)[1], vocab, max_len)


some_images = 60  # a sized-down subset: a Python loop per image
table = {}
for k in (3, 5):
    table[f"section 6's beam, k={k}"] = decode_features(model, pooled[:some_images], vocab, device, beam=k,
                                                        max_len=config.max_decode)
    for rule in ("k finished", "bound"):
        table[f"{rule}, k={k}"] = [set_aside_search(model.decoder, f, vocab, k, config.max_decode, rule)
                                   for f in features[:some_images]]
print(pd.DataFrame({name: {"BLEU-4": corpus_bleu_scores(references[:some_images], decoded)["bleu4"],
                           "all": attribute_accuracy(decoded, test_scenes[:some_images])["all"]}
                    for name, decoded in table.items()}).T.round(3))
# The bound rule returns the captions of section 6's search. Stopping at k finished ends early and returns
# others (whether they score higher or lower here is luck): it loses the captions a longer search would
# prefer, since a caption still growing could end with a better score per token than those that ended.
