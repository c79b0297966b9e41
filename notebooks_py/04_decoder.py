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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/notebooks/04_decoder.ipynb)
#
# # 04 · The decoder: an LSTM that reads the image, then the caption
#
# The decoder gets one image feature `[B, 300]` and the padded captions `[B, T]`, and scores every next
# word at every position at once. We write `DecoderRNN` in full, run it one line at a time, see what goes
# wrong without packing, look at the LSTM's states, write the masked loss, check both against the course's
# package, and compare the two ways of writing the loss: the textbook way, "one training example per caption
# prefix" (notebook 02), and the efficient "every position at once".
#
# **You will learn to**
# 1. write the decoder and its masked cross-entropy yourself, and check that they give the same outputs and
#    the same gradients as `helpers.models`;
# 2. explain why the image feature is the LSTM's first input, and why every length grows by one;
# 3. show what packing does (no work and no outputs on padding), and that packing by `lengths` is enough;
# 4. read the LSTM's hidden and cell states `[num_layers, B, H]`, with one and with two layers;
# 5. compute the loss both ways, show that they are equal, and measure what each one costs.
#
# **Prerequisites:** notebook 02 (the shapes through the whole model); what an LSTM and cross-entropy are.
#
# **Run time:** about 6 seconds on a 2-core laptop CPU. A GPU is not needed: the batches are small.

# %% tags=["colab-setup"]
import sys
if "google.colab" in sys.modules:  # on Colab only: install the course (locally it is installed already)
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/captioning-course/image-captioning-cnn-lstm@v0.1.0")  # noqa: F821

# %%
import pandas as pd
import torch

from helpers.scenes import make_shapes
from helpers.utils import course_root, seed_everything

seed_everything(0)
torch.set_grad_enabled(False)  # switched on only where we compare gradients
pd.set_option("display.width", 110)


ROOT = course_root()  # the course's folder, found from here upwards (on Colab: the current folder)
DATA = make_shapes(ROOT / "data" / "shapes")  # about 25 s the first time (notebook 01), instant afterwards

# %% [markdown]
# The same four captions as in notebook 02. The decoder does not care where its `[B, 300]` image features
# come from; notebook 02 showed `EncoderCNN` making them. Here we use random stand-ins of the same shape,
# non-negative like the encoder's ReLU output, so that this notebook is quick and its numbers exact.

# %%
from helpers.data import pad_captions
from helpers.caption_files import load_captions
from helpers.vocabulary import Vocabulary

table = load_captions(DATA).table
train = table[table.split == "train"].reset_index(drop=True)
vocab = Vocabulary.build(train.caption)
batch_table = train.loc[[0, 56, 16, 35]].reset_index(drop=True)
captions, lengths = pad_captions([torch.tensor(vocab.encode(caption)) for caption in batch_table.caption])
B, T = captions.shape
E, H, V = 300, 512, len(vocab)
features = torch.randn(B, E).relu()  # stand-ins for encoder(images)
print(f"features {tuple(features.shape)}, captions {tuple(captions.shape)}, lengths {lengths.tolist()}, V = {V}")
for row in range(B):
    print(row, " ".join(vocab.decode(captions[row], strip_special=False)))

# %% [markdown]
# ## The whole decoder, in one cell
#
# Here is `DecoderRNN` in full: three layers with weights, and a `forward` of five lines. The sections
# below run it one line at a time and print what each line makes.

# %%
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class DecoderRNN(nn.Module):
    """features [B, E], captions [B, T], lengths [B] → logits [B, T+1, V]."""

    def __init__(self, embed_size: int, hidden_size: int, vocab_size: int, num_layers: int = 1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_size)  # a learned vector per word
        self.lstm = nn.LSTM(embed_size, hidden_size, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, vocab_size)  # hidden state → a score per word

    def forward(self, features, captions, lengths, return_state: bool = False):
        embeddings = self.embed(captions)  # [B, T, E]
        inputs = torch.cat([features.unsqueeze(1), embeddings], dim=1)  # the image first: [B, T+1, E]
        packed = pack_padded_sequence(inputs, torch.as_tensor(lengths) + 1, batch_first=True,
                                      enforce_sorted=False)  # the padding never enters the LSTM
        outputs, state = self.lstm(packed)
        hiddens, _ = pad_packed_sequence(outputs, batch_first=True, total_length=captions.shape[1] + 1)
        logits = self.linear(hiddens)  # [B, T+1, V]
        return (logits, state) if return_state else logits


# %%
decoder = DecoderRNN(embed_size=E, hidden_size=H, vocab_size=V).eval()
print(decoder)

# %% [markdown]
# ## 1. The embedding: one learned vector per word
#
# `nn.Embedding(V, 300)` is a table of V rows; a token id picks its row. `[B, T] → [B, T, 300]`.

# %%
embeddings = decoder.embed(captions)
print("embedding table", tuple(decoder.embed.weight.shape), "→ embeddings", tuple(embeddings.shape))
print("<pad> (id 0) has an ordinary vector too:", [round(v, 4) for v in decoder.embed.weight[0, :4].tolist()], "…")

# %% [markdown]
# Nothing stops `<pad>` from having a vector, and nothing needs to: packing (section 3) keeps padding out of
# the LSTM altogether, so these vectors are never read and never learn.
#
# ## 2. The image comes first, so every caption is one step longer
#
# The LSTM reads the image feature as if it were the first word, then the caption. The feature already has
# the embedding size (that is what the encoder's projection is for), so it fits as one more time step:

# %%
inputs = torch.cat([features.unsqueeze(1), embeddings], dim=1)
print("features", tuple(features.shape), "→ unsqueeze(1)", tuple(features.unsqueeze(1).shape))
print("inputs  ", tuple(inputs.shape), " = [B, T+1, E]")
print("lengths     ", lengths.tolist())
print("lengths + 1 ", (lengths + 1).tolist())

# %% [markdown]
# What each position reads and what it must predict, for caption 1 (the shortest: 5 tokens). The
# output at position `t` has seen the image and tokens `0 … t-1`, so it predicts token `t`:

# %%
n = int(lengths[1])
read = ["image"] + [vocab.itos[i] for i in captions[1, :n]]
predict = [vocab.itos[i] for i in captions[1, :n]] + ["— (not scored)"]
pd.DataFrame({"position": range(n + 1), "reads": read, "predicts": predict}).set_index("position").T

# %% [markdown]
# Position 0 sees only the image and predicts `<start>`; position `n-1` predicts `<end>`. The last position
# reads `<end>` and has nothing left to predict: it is computed (the input is simply "image, then the whole
# caption") but never scored. So a caption of `n` tokens is `n + 1` LSTM steps and `n` predictions.
#
# ## 3. Packing, and what goes wrong without it
#
# What `pack_padded_sequence` stores (`data`, `batch_sizes`, the sorted order) is explained in notebook
# 02, section 3 ("Packing"). Here we see what it changes: we run the LSTM twice on the same `inputs`,
# once on the padded block as it is, once packed by `lengths + 1`, then unpacked.

# %%
padded_out, (padded_h, padded_c) = decoder.lstm(inputs)  # reads the padding too

packed = pack_padded_sequence(inputs, lengths + 1, batch_first=True, enforce_sorted=False)
packed_out, (h, c) = decoder.lstm(packed)
hiddens, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=T + 1)
print("without packing: output", tuple(padded_out.shape), "| LSTM steps:", B * (T + 1))
print("with packing:    output", tuple(hiddens.shape), "| LSTM steps:", packed.data.shape[0])

# %% [markdown]
# **On real positions** both agree: padding comes *after* a caption, and an LSTM only looks back. To pick
# the real positions we need a mask, `True` where a position is before the caption's length; we will use
# it again for the loss:

# %%
def target_mask(lengths, max_len: int) -> torch.Tensor:
    """lengths [B] → [B, max_len] booleans: True at positions t < length."""
    return torch.arange(max_len).unsqueeze(0) < torch.as_tensor(lengths).unsqueeze(1)


real = target_mask(lengths + 1, T + 1)  # [B, T+1]: True on the n + 1 real steps of each caption
print("same outputs on real positions:", torch.allclose(padded_out[real], hiddens[real], atol=1e-5))

# %% [markdown]
# **On padded positions** they differ: without packing the LSTM keeps running over `<pad>` vectors and
# produces outputs there (which a careless loss would score); with packing those positions are zeros.

# %%
print("caption 1, positions 6-14, without packing: all zero?", bool((padded_out[1, 6:] == 0).all()))
print("caption 1, positions 6-14, with packing:    all zero?", bool((hiddens[1, 6:] == 0).all()))

# %% [markdown]
# **The final state** differs too. Packed, `h` holds each caption's state after its **own** last token
# (`<end>`). Unpacked, it is the state after the last column of the block: for every caption but the
# longest, after a run of `<pad>`s.

# %%
last = lengths  # position of the last real step (n tokens + image → index n)
after_end = hiddens[torch.arange(B), last]  # [B, H]: each caption's output at its own last step
for row in range(B):
    print(f"caption {row} ({int(lengths[row]):>2} tokens): packed h == its state after <end>: "
          f"{torch.allclose(h[0, row], after_end[row], atol=1e-5)}   "
          f"unpacked h == it: {torch.allclose(padded_h[0, row], after_end[row], atol=1e-5)}")

# %% [markdown]
# Only caption 0, the longest (no padding), ends in the state after its `<end>` without packing. For this
# model that state is never used: training scores only the outputs at real positions (section 6), and
# generation (notebook 06) starts from the image and stops at `<end>`. What packing buys here is work: the
# LSTM skips the padding (the step counts above), and no padded output can slip into the loss.
#
# ## 4. The LSTM's states: `h` and `c`, `[num_layers, B, H]`
#
# An LSTM carries two vectors from step to step for every caption: the **hidden state** `h` (what it outputs)
# and the **cell state** `c` (its memory, never output directly; `h = o · tanh(c)` with an output gate `o`
# between 0 and 1, so every value of `h` lies in (−1, 1)). Both have one `[B, H]` slice per layer.

# %%
print("h", tuple(h.shape), " c", tuple(c.shape), " = [num_layers, B, H]")
print("|h| < 1 everywhere:", bool((h.abs() < 1).all()))

# %% [markdown]
# With `num_layers=2`, the second LSTM reads the first one's outputs. The states get one slice per layer;
# the output sequence is the **top** layer's `h` at every step, so the output shape does not change.

# %%
decoder2 = DecoderRNN(embed_size=E, hidden_size=H, vocab_size=V, num_layers=2).eval()
logits2, (h2, c2) = decoder2(features, captions, lengths, return_state=True)
at_last_step = logits2[torch.arange(B), last]  # [B, V]: each caption's scores at its last step
print("2 layers: h", tuple(h2.shape), " c", tuple(c2.shape), " logits", tuple(logits2.shape))
print("scores at the last step come from the top layer,    linear(h[-1]):",
      torch.allclose(decoder2.linear(h2[-1]), at_last_step, atol=1e-5))
print("                          not from the bottom layer, linear(h[0]): ",
      torch.allclose(decoder2.linear(h2[0]), at_last_step, atol=1e-5))

# %% [markdown]
# ## 5. Unpacking and the projection to the vocabulary
#
# `pad_packed_sequence` (section 3) gave `hiddens [B, T+1, H]` back in the batch's own order. One linear
# layer turns each `H`-vector into V scores (logits), one per word: `[B, T+1, H] → [B, T+1, V]`.

# %%
logits = decoder.linear(hiddens)
print("logits", tuple(logits.shape), " = [B, T+1, V]")
print("same as DecoderRNN.forward:", torch.allclose(logits, decoder(features, captions, lengths), atol=1e-5))
print("padded positions score only the bias:", torch.equal(logits[1, 6], decoder.linear.bias))

# %% [markdown]
# Softmax over the last axis turns the scores into probabilities. Untrained, the decoder's guesses are
# nearly uniform, about 1/V each:

# %%
probs = logits.softmax(dim=-1)
print(f"1/V = {1 / V:.4f}; caption 0, position 0: the most likely word has p = {probs[0, 0].max():.3f}")

# %% [markdown]
# ## 6. The loss, two ways
#
# **The efficient way: `sequence_loss`.** Score every real position at once: position `t` against token
# `t`, for `t < n`. The mask of section 3 keeps padding out of the loss:

# %%
mask = target_mask(lengths, T)  # [B, T]
print(mask.int())
print("scored predictions:", int(mask.sum()), "= sum(lengths) =", int(lengths.sum()))

# %% [markdown]
# The masked cross-entropy is three lines: the mask from the lengths, the cross-entropy of every position
# (`F.cross_entropy` wants the scores' class axis second, hence the `transpose`), and the mean over the
# real tokens only.

# %%
import math

import torch.nn.functional as F


def sequence_loss(logits, captions, lengths) -> torch.Tensor:
    """logits [B, T+1, V], captions [B, T] → mean cross-entropy over the sum(lengths) real tokens."""
    mask = target_mask(lengths, captions.shape[1])  # [B, T]: True on real tokens
    per_token = F.cross_entropy(logits[:, : captions.shape[1]].transpose(1, 2), captions, reduction="none")
    return per_token[mask].mean()  # padding never counts


loss_all_at_once = sequence_loss(logits, captions, lengths)
print("sequence_loss:", round(loss_all_at_once.item(), 4), f"(log V = {math.log(V):.4f}: an untrained model "
      "guesses about uniformly)")

# %% [markdown]
# ### Check, then import
#
# The course's package holds the same pieces: `helpers.models.DecoderRNN` (with a few extras: optional
# dropout, a `step` method for generation, a clear error for weights made for another vocabulary),
# `helpers.models.target_mask` and `helpers.models.sequence_loss`. We copy our decoder's weights into the
# package's (`load_state_dict`), and check the logits, the final states, the loss and the gradient of every
# weight, on the batch above and on 64 training captions.

# %%
import helpers.models

theirs = helpers.models.DecoderRNN(embed_size=E, hidden_size=H, vocab_size=V).eval()
theirs.load_state_dict(decoder.state_dict())
captions64, lengths64 = pad_captions([torch.tensor(vocab.encode(c)) for c in train.caption[:64]])
features64 = torch.randn(64, E, generator=torch.Generator().manual_seed(1)).relu()  # leaves the global seed alone
for name, (f, c, n) in {"4 captions": (features, captions, lengths),
                        "64 captions": (features64, captions64, lengths64)}.items():
    assert torch.equal(target_mask(n, c.shape[1]), helpers.models.target_mask(n, c.shape[1]))
    with torch.enable_grad():
        mine_logits, mine_state = decoder(f, c, n, return_state=True)
        their_logits, their_state = theirs(f, c, n, return_state=True)
        mine_loss = sequence_loss(mine_logits, c, n)
        their_loss = helpers.models.sequence_loss(their_logits, c, n)
        decoder.zero_grad()
        theirs.zero_grad()
        mine_loss.backward()
        their_loss.backward()
    torch.testing.assert_close(mine_logits, their_logits)
    torch.testing.assert_close(mine_state, their_state)
    torch.testing.assert_close(mine_loss, their_loss)
    for (weight, mine_p), their_p in zip(decoder.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(mine_p.grad, their_p.grad, msg=weight)
    print(f"{name}: same logits, states, loss ({mine_loss.item():.4f}) and gradients of all "
          f"{len(list(theirs.parameters()))} weights")

# %% [markdown]
# They agree, so from here on we use the package's versions (the loss functions that follow need its
# extras), with the same weights:

# %%
from helpers.models import DecoderRNN, sequence_loss, target_mask

decoder = theirs

# %% [markdown]
# **The textbook way: one example per prefix.** A caption of `n` tokens is `n` training examples: the image
# and the first `k` tokens (the *prefix*) → the token that follows, for `k = 0 … n-1`. `prefix_batch` builds
# them; here are the ones of caption 1:

# %%
from helpers.models import prefix_batch

f1, prefixes, cuts, next_words = prefix_batch(features[1:2], captions[1:2], lengths[1:2])
pd.DataFrame({
    "k": cuts.tolist(),
    "the LSTM reads": ["image " + " ".join(vocab.itos[i] for i in p[:k]) for p, k in zip(prefixes, cuts)],
    "and must predict": [vocab.itos[i] for i in next_words],
})

# %% [markdown]
# `prefix_loss` runs the decoder once per prefix (k + 1 steps), keeps only each prefix's last output, and
# scores it against the next word. Over the whole batch:

# %%
from helpers.models import prefix_loss

loss_per_prefix = prefix_loss(decoder, features, captions, lengths)
print("prefix_loss:  ", round(loss_per_prefix.item(), 4))
print("sequence_loss:", round(loss_all_at_once.item(), 4))
assert torch.allclose(loss_per_prefix, loss_all_at_once, atol=1e-5)

# %% [markdown]
# They are the same number, for the reason of section 3: the LSTM only looks back, so its output at position
# `k` of the full caption is exactly its last output on the prefix of `k` tokens. The textbook's
# "one example per prefix" is the efficient loss written out.
#
# Equal losses give equal gradients, so training is the same too:

# %%
with torch.enable_grad():
    grads = []
    for loss_fn in (lambda: sequence_loss(decoder(features, captions, lengths), captions, lengths),
                    lambda: prefix_loss(decoder, features, captions, lengths)):
        decoder.zero_grad()
        loss_fn().backward()
        grads.append(decoder.lstm.weight_hh_l0.grad.clone())
print("same gradient for the LSTM's weights:", torch.allclose(grads[0], grads[1], atol=1e-5))

# %% [markdown]
# **What each costs.** Count the LSTM steps, from the packed sequences themselves: the efficient loss runs
# each caption once (`n + 1` steps); the prefix loss runs `n` prefixes of `1, 2, …, n` steps.

# %%
def lstm_steps(lengths_plus_one) -> int:
    """Rows of a packed sequence = LSTM steps actually computed."""
    dummy = torch.zeros(len(lengths_plus_one), int(max(lengths_plus_one)), 1)
    return pack_padded_sequence(dummy, lengths_plus_one, batch_first=True, enforce_sorted=False).data.shape[0]


cuts_all = prefix_batch(features, captions, lengths)[2]  # k for every prefix of every caption
once = lstm_steps(lengths + 1)
per_prefix = lstm_steps(cuts_all + 1)
print(f"sequence_loss: {B} sequences, {once} LSTM steps")
print(f"prefix_loss:   {len(cuts_all)} sequences, {per_prefix} LSTM steps ({per_prefix / once:.1f}× as many)")
print("check:", sum(n * (n + 1) // 2 for n in lengths.tolist()), "= sum of n(n+1)/2")

# %% [markdown]
# For captions of about 14 tokens that is about 7× more work, and it grows with the caption length. We time
# both (forward and backward, as in training) on 32 captions:

# %%
import time

captions32, lengths32 = pad_captions([torch.tensor(vocab.encode(c)) for c in train.caption[:32]])
features32 = torch.randn(32, E)  # stand-ins: the cost does not depend on the feature values


def seconds(step, repeats: int = 2) -> float:
    """The fastest of a few runs of ``step()`` (the least disturbed by whatever else the machine does)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def train_step(loss_fn):
    with torch.enable_grad():
        decoder.zero_grad()
        loss_fn().backward()


# %%
threads = torch.get_num_threads()
torch.set_num_threads(1)  # on one core, programs running beside this one disturb the comparison least
fast = seconds(lambda: train_step(
    lambda: sequence_loss(decoder(features32, captions32, lengths32), captions32, lengths32)))
slow = seconds(lambda: train_step(lambda: prefix_loss(decoder, features32, captions32, lengths32)))
torch.set_num_threads(threads)

# %% tags=["nbval-ignore-output"]
print(f"sequence_loss: {fast * 1000:7.1f} ms per batch of 32 captions")
print(f"prefix_loss:   {slow * 1000:7.1f} ms  ({slow / fast:.1f}× slower)")

# %% [markdown]
# Same loss, same gradients, several times cheaper: training scores every position at once. `prefix_loss`
# stays in `helpers/models.py` as the readable statement of what we train for, and the tests check that the
# two agree.
#
# **One step further: `packed_loss`, what `fit` trains with.** `forward` unpacks the LSTM's outputs back to
# `[B, T+1, H]`, and its last layer (`H → V`, the biggest one once the vocabulary has thousands of words)
# scores every slot, padding included; `sequence_loss` then throws the padding away. `packed_loss` scores
# the packed outputs `[sum(lengths + 1), H]` directly, against targets packed the same way (the slot after
# `<end>` has no target and is ignored):

# %%
from helpers.models import packed_loss

loss_packed = packed_loss(decoder, features, captions, lengths)
print("packed_loss:  ", round(loss_packed.item(), 4))
print("sequence_loss:", round(loss_all_at_once.item(), 4))
print(f"rows the H → V layer scores: forward {B} × {T + 1} = {B * (T + 1)}, packed {int((lengths + 1).sum())}")
assert torch.allclose(loss_packed, loss_all_at_once, atol=1e-5)

# %% [markdown]
# The same number again (and the same gradients). With the shapes' 40 or
# so words the saving is small. It grows with the vocabulary, since the H → V layer's work is proportional
# to V (thousands of words on real captions), and on a GPU it is part of what brings a Flickr8k-sized epoch
# under one second (`benchmarks/README.md`, `loss.py`, measures both sides).
#
# **Packing by `lengths` is enough.** The output at the last packed step, the one that reads `<end>`, is
# never scored: nothing comes after `<end>`. So the LSTM need not read `<end>` at all. Packing by `lengths`
# instead of `lengths + 1` (as most tutorials do) feeds the image and every token but
# `<end>`: `n` steps for the `n` predictions, the same loss, one step less per caption.

# %%
packed_n = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
hiddens_n, _ = pad_packed_sequence(decoder.lstm(packed_n)[0], batch_first=True, total_length=T + 1)
loss_n = sequence_loss(decoder.linear(hiddens_n), captions, lengths)
print("LSTM steps, packed by lengths + 1:", packed.data.shape[0], "| by lengths:", packed_n.data.shape[0])
print("sequence_loss, packed by lengths + 1:", round(loss_all_at_once.item(), 4), "| by lengths:", round(loss_n.item(), 4))
assert torch.allclose(loss_n, loss_all_at_once, atol=1e-5)

# %% [markdown]
# The same loss, and the same gradients: the step that reads `<end>` contributes nothing to either.

# %%
with torch.enable_grad():
    grads = []
    for by in (lengths + 1, lengths):
        decoder.zero_grad()
        packed_by = pack_padded_sequence(torch.cat([features.unsqueeze(1), decoder.embed(captions)], dim=1),
                                         by, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(decoder.lstm(packed_by)[0], batch_first=True, total_length=T + 1)
        sequence_loss(decoder.linear(out), captions, lengths).backward()
        grads.append([p.grad.clone() for p in decoder.parameters()])
same = all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))
print("packed by lengths + 1 and by lengths: same gradients for every weight:", same)
assert same

# %% tags=["nbval-ignore-output"]
from helpers.utils import run_time

print(f"this notebook ran in {run_time()} up to here (the solutions at the end not counted)")

# %% [markdown]
#
# ## Recap
#
# - We wrote `DecoderRNN` and the masked `sequence_loss` (with `target_mask`) in full, and checked that they
#   give the same logits, states, loss and gradients as `helpers.models.DecoderRNN`,
#   `helpers.models.sequence_loss` and `helpers.models.target_mask`.
# - `DecoderRNN` (in `helpers/models.py`): `captions [B, T]` → `Embedding` `[B, T, 300]` → image feature
#   first `[B, T+1, 300]` → packed by `lengths + 1` → `LSTM` → unpacked `[B, T+1, H]` → `Linear` →
#   `logits [B, T+1, V]`; position `t` predicts token `t`, the last position is not scored.
# - Packing keeps `<pad>` out of the LSTM: no work and no outputs on padding. Packing by `lengths` (the
#   LSTM never reads `<end>`) gives the same loss with one step less per caption.
# - The states `h` and `c` are `[num_layers, B, H]`; the output sequence is the top layer's `h`.
# - `sequence_loss` (every position at once, padding masked) equals `prefix_loss` (one example per prefix, the
#   textbook way), with the same gradients, at a fraction of the LSTM steps. Both live in
#   `helpers/models.py`, next to `prefix_batch` and `target_mask`.
#
# ## Exercises
#
# 1. Pack by `lengths` in section 3 as well. Which outputs of `hiddens` disappear, and why is none of them
#    scored by the loss? How many LSTM steps does it save on a batch of 128 training captions?
# 2. Make the decoder with `num_layers=3`. What are the shapes of `h`, `c` and the logits?
# 3. Compute the loss over **all** positions of the padded block (no mask, `<pad>` as the target past the
#    end). Is it larger or smaller than `sequence_loss`, and what would training learn from it?
# 4. For captions of `n` tokens, `prefix_loss` needs `n / 2` times the LSTM steps of
#    `sequence_loss`. Check the formula against the counts above, then predict the ratio for Flickr8k's
#    captions (about 12 words plus `<start>` and `<end>`).
# 5. Feed caption 0 one token at a time with `decoder.step`, carrying the state, and check that the logits
#    equal `logits[0]` (generating a caption works exactly this way, one word at a time).

# %% [markdown]
# ### Solutions
#
# Try each exercise before you open its solution: every solution cell below is collapsed (in JupyterLab,
# click the `…` to show it; on Colab, "Show code").

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 1
by_n = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
hiddens_by_n, _ = pad_packed_sequence(decoder.lstm(by_n)[0], batch_first=True, total_length=T + 1)
gone = target_mask(lengths + 1, T + 1) & ~target_mask(lengths, T + 1)  # the last real step of each caption
print("(caption, position) of the outputs that disappear:", gone.nonzero().tolist())
print("lengths:", lengths.tolist(), "| those outputs are now zero:", bool((hiddens_by_n[gone] == 0).all()))
captions128, lengths128 = pad_captions([torch.tensor(vocab.encode(c)) for c in train.caption[:128]])
print(f"128 training captions: {int((lengths128 + 1).sum())} LSTM steps → {int(lengths128.sum())}, "
      f"{int((lengths128 + 1).sum() - lengths128.sum())} saved")
# Each caption loses its last output, the one after reading <end>: it would predict what follows <end>,
# which no loss scores. One step saved per caption: 128 on a batch of 128.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 2
decoder3 = DecoderRNN(embed_size=E, hidden_size=H, vocab_size=V, num_layers=3).eval()
logits3, (h3, c3) = decoder3(features, captions, lengths, return_state=True)
print("h", tuple(h3.shape), " c", tuple(c3.shape), " logits", tuple(logits3.shape))
# The state gets one [B, H] slice per layer; the logits still come from the top layer, [B, T+1, V].

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 3
everything = F.cross_entropy(logits[:, :T].reshape(-1, V), captions.reshape(-1))  # <pad> targets included
print(f"all positions: {everything.item():.4f} | sequence_loss: {loss_all_at_once.item():.4f}")
print(f"{int((captions == 0).sum())} of {captions.numel()} targets are <pad>")
# Untrained, both are close to ln V. Trained, the unmasked loss gets smaller for a bad reason: after <end>
# the answer is always <pad>, which is easy, so part of the loss and of the gradients goes into learning
# to say <pad> after <pad> instead of describing the image. The mask keeps only what we care about.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 4
n = lengths.float()  # tokens per caption: sequence_loss feeds n + 1 inputs, prefix_loss n(n+1)/2 in all
formula = (n * (n + 1) / 2).sum() / (n + 1).sum()
print(f"measured {per_prefix / once:.2f}× | n(n+1)/2 against n+1, summed over the batch: {formula:.2f}×")
print("per caption, n / 2:", [round(k / 2, 1) for k in lengths.tolist()])
flickr = 12 + 2  # about 12 words, <start> and <end>
print(f"Flickr8k: about {flickr / 2:.0f}× as many LSTM steps")
# The formula gives exactly the measured ratio; per caption it is n / 2, and the batch's ratio sits
# nearer the long captions' n / 2 because they hold most of the steps.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 5
step_logits, state = decoder.step(features[0:1])  # the image first
rows = [step_logits]
for token in captions[0, : lengths[0] - 1]:  # then every token but the last (<end>)
    step_logits, state = decoder.step(decoder.embed(token.view(1)), state)
    rows.append(step_logits)
stepped = torch.cat(rows)  # [n, V]
print("step by step", tuple(stepped.shape), "| forward", tuple(logits[0, : lengths[0]].shape))
print("equal:", torch.allclose(stepped, logits[0, : lengths[0]], atol=1e-5))
