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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/notebooks/02_tensor_shapes.ipynb)
#
# # 02 · Tensor shapes: one real batch through the whole model
#
# Before we look inside the encoder (notebook 03) and the decoder (notebook 04), we push **one real batch
# of four captioned images** through the complete model and print the shape of every tensor on the way,
# in the order the data flows. Every number in the model comes from a tensor you can see.
#
# **The model: Show and Tell.** What this course builds is the model of *Show and Tell: A Neural Image
# Caption Generator* (Vinyals, Toshev, Bengio and Erhan, 2015): a CNN turns the image into one vector, the
# LSTM reads that vector as its first input, before the caption's words, then predicts each next word; a
# caption is written word by word, greedily or by beam search. The paper reports BLEU-4 27.7 on COCO
# (papers print BLEU ×100: 0.277 on the 0–1 scale this course prints). We keep the image feature as the
# LSTM's first input, the next-word objective, and greedy and beam decoding. We change four things:
# ResNet50 instead of GoogLeNet; a projection of Linear, BatchNorm1d and ReLU (as the classic PyTorch
# tutorials write it) where the paper has one linear layer; a standardising step of our own in front of it
# (notebook 03 measures why); and the output that reads the image is trained to predict `<start>`, which
# the paper does not score. Wherever later notebooks say "Show and Tell", they mean this model. Where they
# say "the textbook way", they mean how those tutorials compute the same things more slowly: one training
# example per caption prefix, and a greedy loop that re-reads the whole caption at every step.
#
# **You will learn to**
# 1. follow an image from `[B, 3, 224, 224]` pixels to a `[B, 300]` feature vector;
# 2. follow a padded caption `[B, T]` through the embedding, the image-first concatenation, packing, the
#    LSTM and unpacking to the word scores `[B, T+1, V]`;
# 3. read a `PackedSequence` (`data`, `batch_sizes`) and say which tokens sit in each packed time step;
# 4. check that the steps written out by hand give exactly what `DecoderRNN.forward` gives.
#
# **Prerequisites:** notebook 01 (the dataset, the vocabulary, the image transform); PyTorch tensors,
# `nn.Module`, `nn.Embedding`, `nn.LSTM` at the level of their documentation.
#
# **Run time:** about 5 seconds on a 2-core laptop CPU. A GPU does not help: the batch holds four images, and
# nothing is trained.

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
torch.set_grad_enabled(False)  # we only look at tensors here: no gradients needed
pd.set_option("display.width", 110)


ROOT = course_root()  # the course's folder, found from here upwards (on Colab: the current folder)
DATA = make_shapes(ROOT / "data" / "shapes")  # about 25 s the first time (notebook 01), instant afterwards

# %% [markdown]
# ## 1. Four captions from the training split
#
# We read the shapes dataset (it has the Flickr8k layout, see notebook 01) and build the vocabulary from
# the training captions, exactly as training will.

# %%
from helpers.caption_files import load_captions
from helpers.vocabulary import Vocabulary

table = load_captions(DATA).table
train = table[table.split == "train"].reset_index(drop=True)
vocab = Vocabulary.build(train.caption)
print(f"{len(train)} training captions, {len(vocab)} words in the vocabulary")
print(vocab.itos[:12])

# %% [markdown]
# We pick four captions of four different images, on purpose of different lengths and **not** sorted by
# length: the model must cope with any order.

# %%
from pathlib import Path

rows = [0, 56, 16, 35]
batch_table = train.loc[rows, ["image", "caption"]].reset_index(drop=True)
for i, (image, caption) in enumerate(zip(batch_table.image, batch_table.caption)):
    print(i, Path(image).name, caption)

# %% [markdown]
# `CaptionDataset` turns each row into `(image tensor, caption ids)`; `collate_captions` stacks the
# images and pads the captions with `<pad>` (id 0) to the longest one.

# %%
from helpers.data import CaptionDataset, collate_captions, image_transform

dataset = CaptionDataset(batch_table.image, batch_table.caption, vocab, image_transform(224))
images, captions, lengths = collate_captions([dataset[i] for i in range(len(dataset))])
B, T = captions.shape
V = len(vocab)
print("images  ", tuple(images.shape), images.dtype)
print("captions", tuple(captions.shape), captions.dtype)
print("lengths ", lengths.tolist())
print(captions)

# %% [markdown]
# - `images [B, 3, 224, 224]`: B = 4 pictures, 3 colour channels, 224 × 224 pixels, normalised with
#   ImageNet's mean and standard deviation (so values are roughly in [-2, 2.6], not [0, 1]).
# - `captions [B, T]`: token ids, T = the longest caption's length. Each row starts with `<start>` (1) and
#   ends with `<end>` (2); shorter rows are filled with `<pad>` (0).
# - `lengths [B]`: the true number of tokens per caption, `<start>` and `<end>` included.
#
# Decoding a row gives the words back:

# %%
for row in range(B):
    print(lengths[row].item(), " ".join(vocab.decode(captions[row], strip_special=False)))

# %%
import matplotlib.pyplot as plt

from helpers.data import denormalize

figure, axes = plt.subplots(1, B, figsize=(3 * B, 3.4))
for i, (ax, image) in enumerate(zip(axes, images)):
    ax.imshow(denormalize(image).permute(1, 2, 0))
    ax.set_title(f"{i}: {batch_table.caption[i]}", fontsize=7)
    ax.axis("off")
figure.tight_layout()

# %% [markdown]
# ## 2. The encoder: pixels → one vector per image
#
# `EncoderCNN` is ResNet50 without its last layer (`fc`), followed by a projection to the embedding size
# E = 300. Its weights are a choice we make, not one the network makes for us: `course_weights()` gives
# `"random"` unless the environment variable `COURSE_WEIGHTS` says `"imagenet"`, so every number printed
# below is the same on every machine. To use ImageNet's weights, run `%env COURSE_WEIGHTS=imagenet` before
# this cell (they download once, about 100 MB): the shapes stay the same, the feature values change
# (notebook 03 explains what pretrained weights add).

# %%
from helpers.models import DecoderRNN, EncoderCNN
from helpers.utils import course_weights

E, H = 300, 512
weights = course_weights()
print("encoder weights:", weights)
encoder = EncoderCNN(embed_size=E, weights=weights).eval()
decoder = DecoderRNN(embed_size=E, hidden_size=H, vocab_size=V).eval()

# %% [markdown]
# We call the encoder's parts one at a time. First the ResNet50 backbone: its last block produces 2048
# feature maps, and an adaptive average pool shrinks each map to a single number.

# %%
maps = encoder.backbone(images)
print("backbone output", tuple(maps.shape))

# %% [markdown]
# `[B, 2048, 1, 1]` is "2048 channels of 1 × 1 pixels" per image. The two 1s carry nothing, so we flatten
# them away:

# %%
pooled = maps.flatten(1)
print("pooled  ", tuple(pooled.shape))
print("image 0, first 4 of 2048 values:", [round(v, 1) for v in pooled[0, :4].tolist()])

# %% [markdown]
# The projection brings every image into the same 300-dimensional space as the word embeddings, since the
# LSTM will read the image as if it were a word: Linear 2048 → 300, BatchNorm1d and ReLU. Before it, this
# course adds one step of its own that Show and Tell does not have: each of the 2048
# numbers is **standardised** (mean 0, variance 1 over the training data; `encoder.standardize`, a
# BatchNorm1d without learned weights). Notebook 03 runs the Show and Tell encoder beside ours and measures
# what the step changes; `EncoderCNN(standardize=False)` leaves it out.

# %%
standardised = encoder.standardize(pooled)  # the course's addition: [B, 2048] → [B, 2048]
features = encoder.project_features(pooled)  # standardise, then Linear, BatchNorm1d, ReLU
print("standardised", tuple(standardised.shape))
print("features    ", tuple(features.shape))
torch.testing.assert_close(features, encoder(images), atol=1e-4, rtol=1e-3)  # the same as calling it in one go

# %% [markdown]
# ## 3. The decoder, one step at a time
#
# `DecoderRNN.forward` does six things. We write them out here with the decoder's own layers
# (`decoder.embed`, `decoder.lstm`, `decoder.linear`) and PyTorch's packing functions.
#
# **Embedding.** Every token id becomes a learned vector of E = 300 numbers: `[B, T] → [B, T, 300]`.

# %%
embeddings = decoder.embed(captions)
print("embeddings", tuple(embeddings.shape))
print("token", captions[0, 1].item(), "→", [round(v, 4) for v in embeddings[0, 1, :4].tolist()], "…")
assert torch.equal(embeddings[0, 1], decoder.embed.weight[captions[0, 1]])  # a lookup: row `id` of the table

# %% [markdown]
# **Image first.** The image feature goes in front of the caption as one extra time step:
# `features [B, 300] → [B, 1, 300]`, concatenated along the time axis (dim 1) with `[B, T, 300]`.

# %%
inputs = torch.cat([features.unsqueeze(1), embeddings], dim=1)
print("features.unsqueeze(1)", tuple(features.unsqueeze(1).shape))
print("inputs               ", tuple(inputs.shape), "  = [B, T+1, E]")

# %% [markdown]
# Every caption is now one step longer, so the true lengths grow by one: `lengths + 1`. (The last of
# those steps reads `<end>` and is never scored; notebook 04 shows that it can be left out.)
#
# **Packing**, explained once here for the whole course (later notebooks link back to this section).
# The LSTM should not read the padding. `pack_padded_sequence` keeps only the real steps
# and lays them out **time step by time step**: first step 0 of every caption, then step 1 of every
# caption that is still running, and so on. The captions are sorted longest first inside each step
# (`enforce_sorted=False` lets it sort for us, and remember how to undo it).

# %%
from torch.nn.utils.rnn import pack_padded_sequence

packed = pack_padded_sequence(inputs, lengths + 1, batch_first=True, enforce_sorted=False)
print("packed.data          ", tuple(packed.data.shape), "  = [sum(lengths + 1), E]")
print("sum(lengths + 1)     ", int((lengths + 1).sum()))
print("packed.batch_sizes   ", packed.batch_sizes.tolist())
print("packed.sorted_indices", packed.sorted_indices.tolist())

# %% [markdown]
# - `packed.data [43, 300]`: all 14 + 5 + 9 + 11 real tokens plus 4 image steps, and not a single pad.
# - `packed.batch_sizes`: how many captions are still running at each time step. All four for the first
#   6 steps (the shortest caption has 5 tokens + the image), then three, two, one.
# - `packed.sorted_indices`: the batch rows from longest to shortest, the order inside every step.
#
# The picture shows it for our batch: on top the padded `[B, T+1]` block, below the packed steps. Column
# `t` of the bottom panel is column `t` of the top one without its padding, longest caption first; the
# small numbers are the rows of `packed.data`.

# %%
from helpers.diagrams import packing_figure

figure = packing_figure(captions, lengths, vocab)

# %% [markdown]
# **The LSTM** runs on the packed sequence. At step `t` it processes `batch_sizes[t]` rows at once, so the
# work shrinks as captions end. Its output is packed in the same layout, with H = 512 numbers per step.
# It also returns its final state `(h, c)`: for each caption the state after its **own** last token.

# %%
packed_out, (h, c) = decoder.lstm(packed)
print("packed output data", tuple(packed_out.data.shape), "  = [sum(lengths + 1), H]")
print("h", tuple(h.shape), " c", tuple(c.shape), "  = [num_layers, B, H]")

# %% [markdown]
# **Unpacking** puts the outputs back into a padded block `[B, T+1, H]`, in the original batch order.
# Positions after a caption's end are filled with zeros.

# %%
from torch.nn.utils.rnn import pad_packed_sequence

hiddens, out_lengths = pad_packed_sequence(packed_out, batch_first=True, total_length=T + 1)
print("hiddens", tuple(hiddens.shape), "  = [B, T+1, H]")
print("lengths it returns", out_lengths.tolist())
print("caption 1 (5 tokens): positions 6.. are all zero:", bool((hiddens[1, 6:] == 0).all()))

# %% [markdown]
# **Projection to the vocabulary.** One linear layer scores all V words at every position:
# `[B, T+1, H] → [B, T+1, V]`. Position `t` has seen the image and the first `t` tokens, so it predicts
# token `t` (position 0 predicts `<start>`, …). Notebook 04 turns these scores into the loss.

# %%
logits = decoder.linear(hiddens)
print("logits", tuple(logits.shape), "  = [B, T+1, V], V =", V)

# %% [markdown]
# ## 4. The same thing in one call
#
# Everything in section 3 is what `DecoderRNN.forward` does. Our hand-made `logits` and its final state
# must equal the decoder's own:

# %%
model_logits, (model_h, model_c) = decoder(features, captions, lengths, return_state=True)
print("logits equal:", torch.allclose(logits, model_logits, atol=1e-4, rtol=1e-3), " state equal:",
      torch.allclose(h, model_h, atol=1e-4, rtol=1e-3) and torch.allclose(c, model_c, atol=1e-4, rtol=1e-3))
torch.testing.assert_close(logits, model_logits, atol=1e-4, rtol=1e-3)
torch.testing.assert_close((h, c), (model_h, model_c), atol=1e-4, rtol=1e-3)

# %% [markdown]
# ## 5. Every shape in one table
#
# In the order the data flows, with the real sizes of this batch (B = 4, T = 14, E = 300, H = 512, and V the
# vocabulary size):

# %%
flow = [
    ("images", images, "[B, 3, 224, 224]"),
    ("ResNet50 without fc", maps, "[B, 2048, 1, 1]"),
    ("flatten", pooled, "[B, 2048]"),
    ("standardise (the course's addition)", standardised, "[B, 2048]"),
    ("Linear, BatchNorm1d, ReLU", features, "[B, E]"),
    ("captions", captions, "[B, T]"),
    ("Embedding", embeddings, "[B, T, E]"),
    ("cat: image first", inputs, "[B, T+1, E]"),
    ("pack_padded_sequence: data", packed.data, "[sum(lengths + 1), E]"),
    ("LSTM: data", packed_out.data, "[sum(lengths + 1), H]"),
    ("LSTM: final h (and c)", h, "[num_layers, B, H]"),
    ("pad_packed_sequence", hiddens, "[B, T+1, H]"),
    ("Linear", logits, "[B, T+1, V]"),
]
pd.DataFrame(
    [(step, symbols, str(tuple(tensor.shape))) for step, tensor, symbols in flow],
    columns=["step", "shape in symbols", "shape here"],
)

# %% [markdown]
# And as a picture (the same figure is `assets/architecture.png`, written by
# `helpers.diagrams.save_all()`):

# %%
from helpers.diagrams import architecture_figure

figure = architecture_figure(embed_size=E, hidden_size=H)

# %% tags=["nbval-ignore-output"]
from helpers.utils import run_time

print(f"this notebook ran in {run_time()} up to here (the solutions at the end not counted)")

# %% [markdown]
# ## Recap
#
# - The encoder maps `images [B, 3, 224, 224]` → ResNet50 without `fc` → `[B, 2048, 1, 1]` → flatten
#   `[B, 2048]` → standardise (the course's addition, not Show and Tell's) → Linear, BatchNorm1d, ReLU →
#   `features [B, 300]`. It lives in `helpers/models.py` as `EncoderCNN`; `EncoderCNN(standardize=False)` is
#   the Show and Tell encoder.
# - The decoder maps `captions [B, T]` → embedding `[B, T, 300]` → image first `[B, T+1, 300]` → packed by
#   `lengths + 1` (`data [sum(lengths + 1), 300]`, `batch_sizes`) → LSTM (`data [sum(lengths + 1), 512]`,
#   state `[1, B, 512]`) → unpacked `[B, T+1, 512]` → Linear → `logits [B, T+1, V]`. It lives in
#   `helpers/models.py` as `DecoderRNN`, and we checked that its `forward` does exactly these steps.
# - Packing stores only real tokens, step by step, longest caption first; `batch_sizes` says how many
#   captions are still running at each step. The picture is `helpers.diagrams.packing_figure`.
#
# ## Exercises
#
# 1. Change `rows` to four captions of the **same** length. What do `packed.batch_sizes` and the packing
#    picture look like now, and how many rows does `packed.data` have?
# 2. Build the encoder with `embed_size=256`. Which shapes in the table change, and which layer of
#    `DecoderRNN` must change with it?
# 3. Build a `DecoderRNN` with `num_layers=2`. Which shapes in the table change? (Only one does.)
# 4. Call `pack_padded_sequence` with `lengths` (without `+ 1`). Compare `packed.batch_sizes`: which token
#    of every caption does the LSTM now never read? Why does no prediction need it? (Notebook 04 checks
#    that the loss stays the same.)
# 5. Put `images` through `encoder.backbone` at 128 × 128 pixels (`image_transform(128)`). Which shapes
#    change? (Notebook 03 explains the answer.)

# %% [markdown]
# ### Solutions
#
# Try each exercise before you open its solution: every solution cell below is collapsed (in JupyterLab,
# click the `…` to show it; on Colab, "Show code").

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 1
same_length = train.index[train.caption.map(lambda c: len(vocab.encode(c))) == lengths[0].item()][:4]
same_set = CaptionDataset(train.image[same_length], train.caption[same_length], vocab, image_transform(224))
_, same_captions, same_lengths = collate_captions([same_set[i] for i in range(4)])
same_inputs = torch.cat([features.unsqueeze(1), decoder.embed(same_captions)], dim=1)
same_packed = pack_padded_sequence(same_inputs, same_lengths + 1, batch_first=True, enforce_sorted=False)
print("lengths           ", same_lengths.tolist())
print("packed.batch_sizes", same_packed.batch_sizes.tolist())
print("packed.data       ", tuple(same_packed.data.shape), "= 4 ×", same_lengths[0].item() + 1, "steps")
figure = packing_figure(same_captions, same_lengths, vocab)
# Every step holds all four captions, so packing skips nothing: the picture is a full rectangle.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 2
encoder_256 = EncoderCNN(embed_size=256, weights=weights).eval()
decoder_256 = DecoderRNN(embed_size=256, hidden_size=H, vocab_size=V).eval()
features_256 = encoder_256(images)
print("features  ", tuple(features_256.shape))
print("embeddings", tuple(decoder_256.embed(captions).shape))
print("LSTM input size", decoder_256.lstm.input_size)
print("logits    ", tuple(decoder_256(features_256, captions, lengths).shape))
# Every row whose symbols hold E changes (features, embeddings, inputs, packed.data): the decoder's
# Embedding must give 256 numbers too, since the image feature and the words share the LSTM's input.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 3
decoder_2 = DecoderRNN(embed_size=E, hidden_size=H, vocab_size=V, num_layers=2).eval()
logits_2, (h_2, c_2) = decoder_2(features, captions, lengths, return_state=True)
print("h", tuple(h_2.shape), " c", tuple(c_2.shape), " logits", tuple(logits_2.shape))
# Only the state changes, [num_layers, B, H] = [2, 4, 512]: the second layer reads the first one's
# outputs, and the logits still come from the top layer, one row per position.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 4
without_end = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
print("lengths + 1:", packed.batch_sizes.tolist())
print("lengths:    ", without_end.batch_sizes.tolist())
print("rows of packed.data:", packed.data.shape[0], "→", without_end.data.shape[0], "(one fewer per caption)")
# The LSTM never reads each caption's last token, <end>: the input at position t predicts token t, and
# nothing comes after <end>, so no prediction needs it as an input.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 5
set_128 = CaptionDataset(batch_table.image, batch_table.caption, vocab, image_transform(128))
images_128 = collate_captions([set_128[i] for i in range(len(set_128))])[0]
print("images          ", tuple(images_128.shape))
print("backbone output ", tuple(encoder.backbone(images_128).shape))
print("features        ", tuple(encoder(images_128).shape))
# Only the images change: ResNet50's adaptive pooling averages whatever grid layer4 gives (4 × 4 here)
# down to one value per channel, so everything after it keeps its shape.
