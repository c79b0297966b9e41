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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/notebooks/05_training.ipynb)
#
# # 05 · Training: the loop in the open, then for real
#
# Notebooks 03 and 04 built the encoder, the decoder and the loss. Here we train them. First by hand, one
# step at a time, so that every line of the training loop is visible; then with `helpers.training.fit`,
# which runs the same loop for several epochs, validates after each one and saves the run. At the end we
# score the trained model on test images it has never seen: against a caption that ignores the image,
# against the humans, and fact by fact (which colours and shapes does it get right?).
#
# **You will learn to**
# - explain why we compute the frozen ResNet50's features once and cache them, and measure the speed-up;
# - write one training step: forward, `sequence_loss`, backward, gradient clipping, an Adam step, and a
#   one-cycle learning-rate schedule; and check it against the step `fit` takes, `train_epoch`;
# - validate the way the model is used: greedy decoding without teacher forcing, scored with BLEU;
# - train with `fit`, read its history, and score the model on the test split: BLEU and CIDEr-D between a
#   floor (the best image-blind caption) and a ceiling (the humans), then attribute by attribute (colour,
#   shape, …);
# - say why a BLEU-4 differs from a paper's: measure it each common way, and name the one papers report.
#
# **Prerequisites:** notebooks 01–04 (the data, the shapes through the model, the encoder, the decoder and
# its loss); what gradient descent and Adam are.
#
# **Run time:** on a 2-core CPU, `fit` alone takes about 4 minutes (12 epochs; its cell prints how
# long it took), and the rest of the notebook about a minute more; several times that on a machine busy
# with other programs. **GPU:** helps a lot, and changes what is trained: `TrainConfig.for_device` then
# picks a larger configuration by itself (section 1), and it still takes only minutes.

# %% tags=["colab-setup"]
import sys
if "google.colab" in sys.modules:  # on Colab only: install the course (locally it is installed already)
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/captioning-course/image-captioning-cnn-lstm@v0.1.0")  # noqa: F821

# %%
from helpers.utils import get_device, seed_everything

seed_everything(0)
device = get_device()  # CUDA if there is a GPU, then Apple's MPS, else the CPU

# %% [markdown]
# ## 1. Device, configuration, data
#
# The device is chosen automatically. It decides the configuration: `TrainConfig.for_device` gives a small
# one on a CPU (64-pixel images, the frozen backbone's features cached, 12 epochs) and a larger one on a
# GPU: with ImageNet weights, 224-pixel images and cached features; without them, the whole ResNet50
# trains too, at 128 pixels (section 9 says why). Everything below reads its numbers from `config`, so this
# notebook runs unchanged on both.
#
# One setting we choose explicitly: the encoder's weights. `course_weights()` gives `"random"` unless the
# environment variable `COURSE_WEIGHTS` says `"imagenet"`, so the run is the same whether or not a machine
# has the internet. To train on ImageNet features, run `%env COURSE_WEIGHTS=imagenet` before this cell (on
# Colab, for example; the weights download once, about 100 MB): the losses, scores and captions below then
# change, and notebook 06 decodes that model.

# %% tags=["nbval-ignore-output"]
print("device:", device)

# %%
from dataclasses import asdict

import pandas as pd

from helpers.config import TrainConfig
from helpers.utils import course_weights

config = TrainConfig.for_device(device, weights=course_weights())
pd.Series(asdict(config), name="value").to_frame()

# %% [markdown]
# `train_backbone="none"` means the ResNet50 stays frozen and we train only what comes after it: the
# projection to the embedding size and the decoder (`"last"` or `"all"` would train the backbone's last
# block or all of it). `standardize=True` is the course's own addition to Show and Tell (notebook 03): the
# pooled features are standardised before the projection.
#
# The dataset is read, checked and turned into a vocabulary by `prepare_data` (notebook 01 did these steps one
# by one).

# %%
from helpers.scenes import make_shapes
from helpers.utils import course_root

ROOT = course_root()  # the course's folder, found from here upwards (on Colab: the current folder)
DATA = ROOT / "data" / "shapes"
CACHE = DATA / ".cache"  # where the backbone's features are stored between runs
RUN = ROOT / "runs" / "shapes"  # where fit writes the trained model (notebook 06 reads it)
make_shapes(DATA)
print("dataset:", DATA.relative_to(ROOT), "| run folder:", RUN.relative_to(ROOT))

# %%
from helpers.prepare import prepare_data

data = prepare_data(DATA, config.min_freq)
vocab = data.vocab
train_images = data.images("train")
dev_images = data.images("dev")[: config.val_images]
print(f"vocabulary: {len(vocab)} words | train: {len(train_images)} images | dev (validation): "
      f"{len(dev_images)} images")

# %% [markdown]
# Training works on caption rows, not images: every image has five captions, so five rows. `encode_captions`
# turns the training captions into one padded tensor, with the index of each row's image.

# %%
from helpers.batches import encode_captions

image_index, captions, lengths = encode_captions(data.split("train"), train_images, vocab, config.max_words)
print("image_index:", tuple(image_index.shape), image_index[:7].tolist())
print("captions:   ", tuple(captions.shape), "(padded with <pad> = 0)")
print("lengths:    ", tuple(lengths.shape), lengths[:7].tolist())

# %% [markdown]
# ## 2. The model, and which parts learn
#
# `build_model(config, vocab_size)` builds the `Captioner` of notebooks 03–04 with the sizes in `config`.
# We seed first, with the configuration's seed, so the backbone's (random or ImageNet) weights are the same
# ones `fit` will use, and the feature cache below can be shared with it.

# %%
from helpers.runs import build_model

seed_everything(config.seed)
model = build_model(config, len(vocab)).to(device)
trainable = [p for p in model.parameters() if p.requires_grad]
frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
print(f"encoder weights: {model.encoder.weights}")
print(f"frozen (the ResNet50 backbone): {frozen:>11,} numbers")
print(f"trained (projection + decoder): {sum(p.numel() for p in trainable):>11,} numbers")

# %% [markdown]
# ## 3. Cached features, and why
#
# The backbone is frozen: for a given image it always returns the same `[2048]` features. The textbook loop
# still runs it on every batch of every epoch, i.e. it recomputes identical numbers over and over (each
# image appears five times per epoch, once per caption). We compute them once per image and keep them on
# disk. `cached_features` reuses the stored file while nothing they depend on has changed (the images, the
# image size, the backbone's weights), and recomputes them otherwise. The first run of the course computes
# them (a minute or two on a CPU); the message below says which happened.

# %% tags=["nbval-ignore-output"]
from helpers.features import cached_features

train_features = cached_features(model, train_images, config.image_size, device, CACHE)
dev_features = cached_features(model, dev_images, config.image_size, device, CACHE)

# %%
print("train_features:", tuple(train_features.shape), train_features.dtype)
print("dev_features:  ", tuple(dev_features.shape))
assert train_features.shape == (len(train_images), 2048) and dev_features.shape == (len(dev_images), 2048)

# %% [markdown]
# How much does that save? We time a few training batches both ways: forward pass, loss and backward pass
# (no optimiser step, so the model is not changed by the measurement).
#
# - **textbook**: read and transform the images, run the whole encoder, then the decoder;
# - **cached**: look up the stored features, run the projection and the decoder.

# %%
import time

import torch
from torch.utils.data import DataLoader

from helpers.data import CaptionDataset, collate_captions, image_transform
from helpers.models import sequence_loss
from helpers.batches import batches

train_table = data.split("train")
textbook_loader = DataLoader(  # the textbook way: every caption with its image, through the whole encoder
    CaptionDataset(train_table["image"], train_table["caption"], vocab, image_transform(config.image_size),
                   max_words=config.max_words),
    batch_size=config.batch_size,
    shuffle=True,
    collate_fn=collate_captions,
    generator=torch.Generator().manual_seed(0),
)

# %% [markdown]
# One timer for both ways: a few batches of loading, forward, loss and backward, in seconds per batch.

# %%
N_BATCHES = 3


def timed_batches(next_batch, forward) -> float:
    """Seconds per batch for ``N_BATCHES`` batches: load, forward, loss and backward (weights unchanged)."""
    model.train()
    start = time.perf_counter()
    for _ in range(N_BATCHES):
        inputs, batch_captions, batch_lengths = next_batch()
        logits = forward(inputs.to(device), batch_captions.to(device), batch_lengths)
        sequence_loss(logits, batch_captions.to(device), batch_lengths).backward()
        model.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / N_BATCHES


def cached_batch():
    idx = torch.randint(len(captions), (config.batch_size,))
    batch_lengths = lengths[idx]
    return train_features[image_index[idx]], captions[idx, : int(batch_lengths.max())], batch_lengths


# %%
textbook_iter = iter(textbook_loader)
textbook = timed_batches(lambda: next(textbook_iter), model)  # model(images, captions, lengths)
cached = timed_batches(
    cached_batch, lambda pooled, c, n: model.decoder(model.encoder.project_features(pooled), c, n)
)

# %% tags=["nbval-ignore-output"]
import math

print(f"textbook (images → whole encoder): {textbook * 1000:8.0f} ms per batch of {config.batch_size}")
print(f"cached features:                   {cached * 1000:8.0f} ms per batch  ({textbook / cached:.0f}× faster)")
steps = math.ceil(len(captions) / config.batch_size)
print(f"one epoch is {steps} batches: {steps * textbook / 60:.1f} min the textbook way, "
      f"{steps * cached / 60:.1f} min cached")

# %% [markdown]
# Computing the features once costs about one textbook epoch divided by five (each image once, not once
# per caption), and every epoch after that is the cheap one. The price: the backbone cannot learn. That is
# what fine-tuning (`TrainConfig(train_backbone="last")`, `--fine-tune` on the command line) pays for: every
# image through the backbone every epoch, forward and backward (once per epoch, not once per caption: a
# batch holds whole images, and an image's captions share its features).
#
# ## 4. One training step, by hand
#
# `batches` shuffles the caption rows with a seeded generator and cuts them into batches. One batch: the
# stored features of its images, its captions cut to its longest one, and its lengths.

# %%
generator = torch.Generator().manual_seed(config.seed)
order = batches(len(captions), config.batch_size, generator)
idx = order[0]
batch_lengths = lengths[idx]
batch_captions = captions[idx, : int(batch_lengths.max())].to(device)
inputs = train_features[image_index[idx]].to(device)
print(f"{len(order)} batches per epoch")
print("inputs:  ", tuple(inputs.shape), " (stored backbone features)")
print("captions:", tuple(batch_captions.shape))
print("lengths: ", tuple(batch_lengths.shape))

# %% [markdown]
# **Forward.** The projection turns `[B, 2048]` into the embedding size; the decoder scores every next word
# at every position (teacher forcing: it reads the true caption); `sequence_loss` averages the cross-entropy
# over the real tokens only (notebook 04).

# %%
import copy

twin = copy.deepcopy(model)  # the model as it is now: below, the helpers' step starts from this copy
model.train()
features = model.encoder.project_features(inputs)
logits = model.decoder(features, batch_captions, batch_lengths)
loss = sequence_loss(logits, batch_captions, batch_lengths)
print("features:", tuple(features.shape))
print("logits:  ", tuple(logits.shape), " [B, T+1, V]")
print(f"an untrained model guesses about evenly among {len(vocab)} words: loss ≈ ln {len(vocab)} "
      f"= {math.log(len(vocab)):.2f}")

# %% tags=["nbval-ignore-output"]
print(f"loss: {loss.item():.3f}")
assert abs(loss.item() - math.log(len(vocab))) < 1.0

# %% [markdown]
# **Backward, clip, step.** Adam gets only the parameters that learn. `clip_grad_norm_` rescales the
# gradients when their overall length is above `config.grad_clip`: an LSTM's gradients can spike, and one
# huge step can undo hours of training. The one-cycle schedule (next section) sets the learning rate of
# each step. Here it runs over a short hand-written loop of `HAND_STEPS` steps.

# %%
HAND_STEPS = 40
optimizer = torch.optim.Adam(trainable, lr=config.lr)
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=config.lr, total_steps=HAND_STEPS, pct_start=0.25
)

optimizer.zero_grad(set_to_none=True)
loss.backward()
norm = torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
first_rate = optimizer.param_groups[0]["lr"]  # the learning rate this step uses
optimizer.step()
scheduler.step()  # sets the rate of the next step

# %% tags=["nbval-ignore-output"]
print(f"gradient norm before clipping: {norm.item():.2f} (clipped to at most {config.grad_clip})")
print(f"learning rate of this step: {first_rate:.3g}")

# %% [markdown]
# **Check it against the helpers.** `fit` runs its epochs with `helpers.training.train_epoch`. Given the
# copy of the model we kept before the step (`twin`), an optimiser and a schedule built the same way, and
# the same one batch, it must compute the same loss and leave the same weights as our step did. (It
# computes the loss with `packed_loss`, notebook 04's equal of `sequence_loss` that skips the padding, so
# the two agree to rounding, not to the last bit.)

# %%
from helpers.training import TrainStep, train_epoch

twin_trainable = [p for p in twin.parameters() if p.requires_grad]
twin_optimizer = torch.optim.Adam(twin_trainable, lr=config.lr)
twin_scheduler = torch.optim.lr_scheduler.OneCycleLR(
    twin_optimizer, max_lr=config.lr, total_steps=HAND_STEPS, pct_start=0.25
)
twin_loss = train_epoch(  # one "epoch" of one batch: our batch
    TrainStep(twin, cached=True), [(inputs, batch_captions, batch_lengths)], twin_optimizer, config.grad_clip,
    twin_scheduler,
)
torch.testing.assert_close(twin_loss, loss.item())
for (name, mine), (_, theirs) in zip(model.state_dict().items(), twin.state_dict().items(), strict=True):
    torch.testing.assert_close(mine, theirs, msg=lambda text, name=name: f"{name}: {text}")
print(f"train_epoch on the same batch: the same loss, and all {len(model.state_dict())} tensors of the model's "
      "state equal to ours after the step")

# %% [markdown]
# Did the step help? The loss on the same batch, after it:

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    after = sequence_loss(
        model.decoder(model.encoder.project_features(inputs), batch_captions, batch_lengths),
        batch_captions,
        batch_lengths,
    )
print(f"loss on the same batch: {loss.item():.3f} before the step, {after.item():.3f} after it")
assert after.item() < loss.item()

# %% [markdown]
# That is the whole step, the same one `train_epoch` takes. Repeated over the next batches, it is a training
# loop; we write that loop out too, to watch the loss and the learning rate step by step (`fit` instead
# hands `train_epoch` a whole epoch of batches):

# %%
losses, rates = [loss.item()], [first_rate]
for idx in order[1:HAND_STEPS]:
    batch_lengths = lengths[idx]
    batch_captions = captions[idx, : int(batch_lengths.max())].to(device)
    inputs = train_features[image_index[idx]].to(device)
    logits = model.decoder(model.encoder.project_features(inputs), batch_captions, batch_lengths)
    loss = sequence_loss(logits, batch_captions, batch_lengths)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
    losses.append(loss.item())
    rates.append(optimizer.param_groups[0]["lr"])  # the rate of this step, before the schedule moves on
    optimizer.step()
    scheduler.step()

# %% tags=["nbval-ignore-output"]
for step in range(0, HAND_STEPS, 10):
    print(f"step {step + 1:>3}: loss {losses[step]:.3f}, learning rate {rates[step]:.5f}")
print(f"step {HAND_STEPS:>3}: loss {losses[-1]:.3f}")
assert len(losses) == HAND_STEPS and sum(losses[-5:]) / 5 < losses[0] - 1.0

# %% [markdown]
# **The first check of any training recipe: overfit one batch.** Before training for real, ask whether the
# model can learn *anything*: take 16 captions of 16 different images and train on them alone, over and
# over. A model that works drives the loss on them towards zero within a few hundred steps, since it only
# has to memorise 16 sentences. We train a fresh copy, so `model` above is left as it is.

# %%
one_per_image: dict[int, int] = {}  # image → the first caption row of it
for row, image in enumerate(image_index.tolist()):
    one_per_image.setdefault(image, row)
rows = torch.tensor(list(one_per_image.values())[:16])
tiny_lengths = lengths[rows]
tiny_captions = captions[rows, : int(tiny_lengths.max())].to(device)
tiny_inputs = train_features[image_index[rows]].to(device)
print(f"{len(rows)} captions of {len(set(image_index[rows].tolist()))} different images")

torch.manual_seed(config.seed)
probe = build_model(config, len(vocab)).to(device).train()
probe_optimizer = torch.optim.Adam([p for p in probe.parameters() if p.requires_grad], lr=config.lr)
overfit_losses = []
for _ in range(200):
    logits = probe.decoder(probe.encoder.project_features(tiny_inputs), tiny_captions, tiny_lengths)
    loss = sequence_loss(logits, tiny_captions, tiny_lengths)
    probe_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    probe_optimizer.step()
    overfit_losses.append(loss.item())

# %% tags=["nbval-ignore-output"]
import matplotlib.pyplot as plt

for step in (1, 25, 50, 100, 200):
    print(f"step {step:>3}: loss {overfit_losses[step - 1]:.4f}")
figure, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(range(1, 201), overfit_losses)
ax.set(yscale="log", xlabel="step", ylabel="loss (log scale)", title="16 captions, learnt by heart")
figure.tight_layout()
assert overfit_losses[-1] < 0.05 * overfit_losses[0], overfit_losses[-1]

# %% [markdown]
# It can. When this check fails, nothing else is worth running yet; the usual causes, and how to see each:
# - **the loss stalls near ln V** (chance): the gradients do not reach the weights (`requires_grad` off, the
#   optimiser given other parameters, a learning rate of 0): print the gradient norm of each layer;
# - **it falls, then stalls well above 0**: the targets are not what the inputs predict (shifted by one
#   position too many or too few, notebook 04), or the padding is scored: decode one target row with
#   `vocab.decode` and compare it with the caption;
# - **it jumps around or becomes nan**: the learning rate is too high, or the gradients are not clipped.
#
# And the reverse does not hold: a model that overfits one batch can still fail to generalise. That is
# what the dev split is for (section 6).

# %% [markdown]
# ## 5. The one-cycle learning-rate schedule
#
# `OneCycleLR` starts low, climbs to the peak `config.lr` over the first quarter of training (warm-up: the
# first gradients are large and noisy), then decays smoothly to almost zero (big steps to get close, small
# steps to settle). `fit` builds it with `make_optimizer`. Its length, `total_steps`, is the step at which
# the rate reaches its minimum, and `OneCycleLR` refuses to be stepped past it. `fit` builds it for one
# step per epoch more than it takes, `(steps per epoch + 1) × epochs`: a margin that is never used. Built
# for exactly the steps `fit` takes, it would work as well and end at the minimum; with the margin, the
# last step's rate stays a little above it. Here it is as `fit` will run it (stepped through a stand-in
# optimiser: only the learning rates matter).

# %%
from helpers.plots import plot_lr_schedule
from helpers.training import make_optimizer

steps_per_epoch = len(order)
_, fit_schedule = make_optimizer(model, config, steps_per_epoch)  # the optimiser and schedule fit builds
total_steps = fit_schedule.total_steps
print(f"{steps_per_epoch} steps per epoch × {config.epochs} epochs = {steps_per_epoch * config.epochs} steps; "
      f"the schedule is built for {total_steps}")
stand_in = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=config.lr)
schedule = torch.optim.lr_scheduler.OneCycleLR(stand_in, max_lr=config.lr, total_steps=total_steps,
                                               pct_start=0.25)
full_rates = []
for _ in range(steps_per_epoch * config.epochs):
    full_rates.append(stand_in.param_groups[0]["lr"])
    stand_in.step()
    schedule.step()
figure = plot_lr_schedule(full_rates, steps_per_epoch)

# %%
print(f"{len(full_rates)} steps; peak {max(full_rates):.4g} at step {full_rates.index(max(full_rates)) + 1}")
print(f"first step {full_rates[0]:.3g}, last step {full_rates[-1]:.3g}")

# %% [markdown]
# ## 6. Validation without teacher forcing
#
# The training loss is measured with teacher forcing: the decoder always reads the *true* previous words.
# When we use the model, there are no true words: it reads its own previous guesses, and one early mistake
# can derail the rest. So we validate the way the model will be used: greedy decoding from the image alone
# (notebook 06 looks inside it), scored against the five human captions with BLEU (0 to 1; papers print it
# ×100). `evaluate_bleu` does both; `fit` calls it after every epoch, through `helpers.training.validate`.
#
# ### BLEU, built by hand
#
# BLEU asks how many of a caption's *n-grams* (runs of n words, n = 1 to 4) also appear in the references.
# We build BLEU-4 from its four parts on real captions of the test split: for every test image, its first
# human caption plays the model, and the other four are its references (the same game as the human
# ceiling in section 8). First, the n-grams of one caption:

# %%
import math
from collections import Counter

from helpers.vocabulary import tokenize


def ngrams(words: list[str], n: int) -> Counter:
    """How often each run of ``n`` words occurs in ``words``."""
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


test_groups = [[tokenize(c) for c in group] for group in data.references("test").values()]
hypotheses_by_hand = [group[0] for group in test_groups]  # the first annotator "plays the model"
references_by_hand = [group[1:] for group in test_groups]  # the other four are its references
caption = hypotheses_by_hand[0]
print(" ".join(caption))
print("its bigrams:", [" ".join(gram) for gram in ngrams(caption, 2)])

# %% [markdown]
# **Clipped precision.** The share of the caption's n-grams found in a reference, where an n-gram counts
# at most as often as it occurs in any one reference. Without the clip, a caption that repeats a common
# word would score perfectly: "a a a a a a" has six unigrams, and every one of them is "a".

# %%
def clipped_matches(hypothesis: list[str], references: list[list[str]], n: int) -> tuple[int, int]:
    """(matching n-grams, each clipped to its largest count in one reference; n-grams in the hypothesis)."""
    most: Counter = Counter()
    for reference in references:
        for gram, count in ngrams(reference, n).items():
            most[gram] = max(most[gram], count)
    counts = ngrams(hypothesis, n)
    return sum(min(count, most[gram]) for gram, count in counts.items()), sum(counts.values())


silly = "a a a a a a".split()
matched, total = clipped_matches(silly, references_by_hand[0], 1)
unclipped = sum(any(word in reference for reference in references_by_hand[0]) for word in silly)
print(f"'a a a a a a': unclipped {unclipped}/{total}, clipped {matched}/{total}")
print("the real caption, n = 1..4:", [clipped_matches(caption, references_by_hand[0], n) for n in range(1, 5)])

# %% [markdown]
# **The brevity penalty.** Precision alone rewards saying little: a caption of three safe words can match
# every one of them. So BLEU multiplies by `exp(1 − r/c)` when the caption's length `c` is shorter than
# the reference length `r`, and by 1 otherwise. Which reference? The one closest in length to the caption.
# One annotator of our first image wrote just "a yellow circle", so a three-word caption escapes the
# penalty here, and a two-word one pays it:

# %%
def closest_length(hypothesis: list[str], references: list[list[str]]) -> int:
    """The length of the reference closest in length to the hypothesis (the shorter one on a tie)."""
    return min((len(r) for r in references), key=lambda length: (abs(length - len(hypothesis)), length))


def brevity_penalty(hypothesis_length: int, reference_length: int) -> float:
    if hypothesis_length > reference_length:
        return 1.0
    return math.exp(1 - reference_length / hypothesis_length) if hypothesis_length else 0.0


print("reference lengths:", [len(r) for r in references_by_hand[0]])
for short in (caption, caption[:3], caption[:2]):
    r = closest_length(short, references_by_hand[0])
    print(f"{' '.join(short)!r}: {len(short)} words, closest reference {r} → penalty {brevity_penalty(len(short), r):.3f}")

# %% [markdown]
# **Corpus BLEU-4.** The counts are pooled over the whole corpus first: matches and n-grams summed over all
# images for each n, caption lengths and reference lengths summed too. Then the four precisions `p1…p4` are
# combined by their geometric mean (`exp` of the mean of their logs) and multiplied by the brevity penalty.
# BLEU-4 is 0 when any `p_n` is 0.

# %%
def pooled_counts(references: list[list[list[str]]], hypotheses: list[list[str]]):
    """Per n = 1..4 the clipped matches and the n-grams, summed over the corpus; and the summed caption
    lengths and closest reference lengths."""
    matches, totals = [0] * 4, [0] * 4
    hypothesis_length = reference_length = 0
    for refs, hypothesis in zip(references, hypotheses, strict=True):
        for n in range(1, 5):
            matched, total = clipped_matches(hypothesis, refs, n)
            matches[n - 1] += matched
            totals[n - 1] += total
        hypothesis_length += len(hypothesis)
        reference_length += closest_length(hypothesis, refs)
    return matches, totals, hypothesis_length, reference_length


# %% [markdown]
# The corpus score: the geometric mean of the four pooled precisions, times the brevity penalty of the
# pooled lengths.

# %%
def corpus_bleu4(references: list[list[list[str]]], hypotheses: list[list[str]]) -> float:
    """Corpus BLEU-4 (0–1) of tokenised hypotheses, each against its own tokenised references."""
    matches, totals, hypothesis_length, reference_length = pooled_counts(references, hypotheses)
    if min(matches) == 0:
        return 0.0
    log_mean = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    return brevity_penalty(hypothesis_length, reference_length) * math.exp(log_mean)


matches, totals, c, r = pooled_counts(references_by_hand, hypotheses_by_hand)
print("p1..p4:", [round(m / t, 3) for m, t in zip(matches, totals, strict=True)])
print(f"caption words {c}, closest reference words {r}: brevity penalty {brevity_penalty(c, r):.3f}")
ours = corpus_bleu4(references_by_hand, hypotheses_by_hand)
print(f"corpus BLEU-4, first annotator against the other four, {len(hypotheses_by_hand)} test images: {ours:.4f}")

# %% [markdown]
# Pooling matters: the mean of the per-image scores is another number. On its own, an image whose caption
# shares no 4-gram with its references scores 0 (and one with a perfect match scores 1), while in the pool
# every match counts once, whatever image it is in. Papers report the pooled, corpus-level score.

# %%
per_image = [corpus_bleu4([refs], [hyp]) for refs, hyp in zip(references_by_hand, hypotheses_by_hand, strict=True)]
print(f"corpus BLEU-4 {ours:.4f}; mean of per-image BLEU-4 {sum(per_image) / len(per_image):.4f}; "
      f"per-image 0: {sum(score == 0 for score in per_image)} of {len(per_image)}")

# %% [markdown]
# Then the check: our function gives what nltk's `corpus_bleu` gives, on the whole test split, to 1e-9.
# From here on the package's `helpers.metrics.corpus_bleu_scores` (nltk's BLEU-1…4, 0–1) is used.

# %%
from nltk.translate.bleu_score import corpus_bleu

from helpers.metrics import corpus_bleu_scores

nltk_bleu4 = corpus_bleu(references_by_hand, hypotheses_by_hand)
print(f"ours {ours:.10f}   nltk {nltk_bleu4:.10f}")
assert abs(ours - nltk_bleu4) < 1e-9
as_text = [[" ".join(r) for r in refs] for refs in references_by_hand]
assert abs(corpus_bleu_scores(as_text, [" ".join(h) for h in hypotheses_by_hand])["bleu4"] - ours) < 1e-9

# %%
from helpers.evaluation import evaluate_bleu

dev_refs = data.references("dev")
references = [dev_refs[image] for image in dev_images]
scores, hypotheses = evaluate_bleu(model, dev_features, references, vocab, device, config.max_decode)

# %% tags=["nbval-ignore-output"]
from pathlib import Path

print(f"after {HAND_STEPS} steps:", {name: round(value, 3) for name, value in scores.items()})
for image, caption in list(zip(dev_images, hypotheses, strict=True))[:3]:
    print(f"  {Path(image).name}: {caption!r}")
    print(f"  {'':{len(Path(image).name)}}  a reference: {dev_refs[image][0]!r}")
assert all(0 <= value <= 1 for value in scores.values()) and len(hypotheses) == len(dev_images)

# %% [markdown]
# After a few dozen steps the model has learned what a caption looks like, but not yet to look at the
# image: its captions are alike, often the very same sentence for every image. Looking takes epochs.
#
# ## 7. All of this now lives in `helpers.training.fit`
#
# `fit(data_dir, run_dir, config)` is sections 1–6 in a loop: prepare the data, build the model (seeded),
# cache the features, build Adam and the one-cycle schedule (`make_optimizer`), then for every epoch
# shuffle (`batches`), take the steps of section 4 (`train_epoch`), validate with greedy BLEU on the dev
# images (`validate`), and save a checkpoint (weights, optimiser, schedule, vocabulary, configuration) to
# `run_dir`. It starts from a fresh model: the one we trained by hand above is not used again. Its loss is
# `packed_loss` (notebook 04, section 6): the same value and gradients as `sequence_loss`, without scoring
# the padding.
#
# This is the long cell: on a 2-core CPU about 4 minutes (12 epochs, plus computing the cached
# features when section 3 has not). It prints one line per epoch, and its time.

# %% tags=["nbval-ignore-output"]
from helpers.training import fit

start = time.perf_counter()
result = fit(DATA, run_dir=RUN, config=config, device=device, cache_dir=CACHE)
print(f"fit took {(time.perf_counter() - start) / 60:.1f} min")

# %% jupyter={"source_hidden": true} tags=["check"]
# one row per epoch, the loss went down, the run folder is written
assert list(result.history["epoch"]) == list(range(1, config.epochs + 1))
assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
assert (RUN / "checkpoint.pt").is_file() and (RUN / "history.csv").is_file()

# %% [markdown]
# The history has one row per epoch: the mean training loss, validation BLEU-1…4, the learning rate at the
# end of the epoch and the seconds it took. It is also saved as `history.csv` in the run folder.

# %% tags=["nbval-ignore-output"]
history = result.history
history.round(4)

# %%
from helpers.plots import plot_history

figure = plot_history(history)

# %% [markdown]
# The loss keeps falling, and validation BLEU rises with it (not at every epoch, but over the run): the
# model is not just memorising the training captions. If BLEU stalled or fell while the loss kept dropping,
# that would be overfitting.
#
# **Which model do we report?** The run folder holds two checkpoints: `checkpoint.pt`, the last epoch
# (with the optimiser's state, for `--resume`), and `best.pt`, the epoch with the best dev BLEU-4. The
# course has one rule: **every figure of a run comes from `best.pt`**. The dev images choose the epoch; the
# test images are then scored once, by that model. `Run.load`, the command line's `evaluate` and
# `caption`, the README and every later notebook follow the same rule, so `python -m helpers evaluate`
# after this notebook prints the numbers below.
#
# ## 8. The test split: how good is it?
#
# The dev images helped us choose settings; the test images were never used for anything. `evaluate_split`
# decodes every test image greedily and scores the captions against their references. BLEU is printed both
# ways: 0–1, as nltk and our code compute it, and ×100, as papers print it. Do not set these numbers
# beside published Flickr8k or COCO scores: our five annotators write from a few templates with a few
# dozen words, so long n-grams match far more easily than in people's free descriptions of photographs.
# A score means something only next to a floor and a ceiling measured on the same captions (below).

# %%
from helpers.evaluation import evaluate_split
from helpers.runs import Run

run = Run.load(RUN, device)  # best.pt: the course's rule
model = run.model
test_scores, test_table = evaluate_split(
    model, vocab, config, data, "test", device=device, cache_dir=CACHE, log=lambda _: None
)
test_refs = list(test_table["references"])
print(f"test split: {len(test_table)} images, {sum(map(len, test_refs))} reference captions")

# %% tags=["nbval-ignore-output"]
from helpers.metrics import as_percent

best_epoch = int(history.loc[history["dev_bleu4"].idxmax(), "epoch"])
print(f"best.pt holds epoch {best_epoch} of {len(history)} (dev BLEU-4 {history['dev_bleu4'].max():.3f})")

percent = as_percent(test_scores)
for name, value in test_scores.items():
    print(f"{name.upper():6} {value:.3f}   ({percent[name]:.1f} ×100)")
assert test_scores["bleu4"] >= 0.65, test_scores

# %% [markdown]
# Is that good? A score means little on its own. Two more rows, measured on the same test captions, put it
# in its place:
#
# - **the floor**: the best a captioner can do without looking at the image. `best_blind_caption` tries
#   every training caption as *the* answer for every dev image and keeps the one with the highest BLEU-4
#   (chosen on dev, so the test images stay unseen); we then score it on test;
# - **the ceiling**: how well people agree with each other. `human_ceiling` scores each annotator's caption
#   against the other four references, and averages the five. (Our model is scored against all five
#   references, which is a little easier: read the ceiling as a guide, not a hard bound.)

# %%
from helpers.metrics import best_blind_caption, corpus_bleu_scores, human_ceiling

dev_references = [dev_refs[image] for image in data.images("dev")]
blind_caption, _ = best_blind_caption(list(train_table["caption"]), dev_references)
blind_scores = corpus_bleu_scores(test_refs, [blind_caption] * len(test_table))
humans = human_ceiling(test_refs).loc["mean"]
print(f"best image-blind caption (chosen on dev): {blind_caption!r}")
pd.DataFrame({"best image-blind caption": blind_scores, "humans (each against the other four)": humans}).T.round(3)

# %% [markdown]
# A surprise: one well-chosen caption, the same for every image, scores a higher BLEU-4 than the humans do
# against each other. It copies the annotators' most common phrasing ("two shapes : …", "on the top", "on
# the bottom"), and BLEU rewards phrasing; each human writes in one style only, so four of the five
# references rarely share their long n-grams. BLEU alone cannot say whether a caption describes the picture.
# So we ask what a person would check.
#
# ## 9. What the model gets right, attribute by attribute
#
# The shapes set knows the truth of every scene (`scenes.jsonl`, written beside the captions).
# `helpers.attributes` reads a caption in any annotator's style and checks each thing it states against
# it: the **background**, the **count** of shapes, each shape's **colour**, **kind** (circle, square or
# triangle) and **size**, the **relation** (side by side, one above the other, the right way round),
# **object** (colour and kind both right), and **all** (the whole caption right). An accuracy is the share
# of the statements that are right; a shape left out or invented counts as a wrong colour and kind.

# %%
from helpers.attributes import attribute_accuracy, read_scenes, scenes_for

test_scenes = scenes_for(test_table["image"], read_scenes(DATA))
greedy_captions = list(test_table["generated"])
print(f"{len(test_scenes)} test scenes; the first: {test_scenes[0]}")

# %% [markdown]
# One more score goes into the table: **CIDEr-D**, the one the papers after Show and Tell lead with (and
# every COCO leaderboard). It weighs each n-gram by how rare it is in the references of the whole set
# (TF-IDF): "a" and "on the" count for little, "purple triangle" for a lot. It compares a caption with each
# reference by the cosine of those weights (clipped, so repeating a word does not help), penalises a length
# far from the reference's, and averages over n = 1 to 4, ×10. `helpers.metrics.cider_d` computes it as the
# COCO caption evaluation does (a test checks it against `pycocoevalcap`), and returns one score per image
# too. Its floor is chosen by CIDEr-D itself: the best blind caption by BLEU-4 need not be the best by
# CIDEr-D (`best_blind_caption_cider`, on dev again); its ceiling is each human caption against the other
# four (`human_cider_d`).

# %%
from helpers.cider_baselines import best_blind_caption_cider, human_cider_d
from helpers.metrics import cider_d

cider_blind_caption, _ = best_blind_caption_cider(list(train_table["caption"]), dev_references)
print(f"best image-blind caption by CIDEr-D (chosen on dev): {cider_blind_caption!r}")


def scored(captions: list[str]) -> dict[str, float]:
    """BLEU-1…4, CIDEr-D and every attribute's accuracy of one caption per test image."""
    return {**corpus_bleu_scores(test_refs, captions), "cider_d": cider_d(test_refs, captions)[0],
            **attribute_accuracy(captions, test_scenes)}


# %% tags=["nbval-ignore-output"]
rows = {
    "best image-blind caption by BLEU-4": scored([blind_caption] * len(test_scenes)),
    "best image-blind caption by CIDEr-D": scored([cider_blind_caption] * len(test_scenes)),
    "our model (greedy)": scored(greedy_captions),
    "humans (each against the other four)": {
        **human_ceiling(test_refs, test_scenes).loc["mean"].to_dict(), "cider_d": human_cider_d(test_refs)["mean"]
    },
}
floor_and_ceiling = pd.DataFrame(rows).T.drop(columns=["bleu1", "bleu2", "bleu3"])
model_row, floors = floor_and_ceiling.loc["our model (greedy)"], floor_and_ceiling.iloc[:2]
assert model_row["bleu4"] >= floors["bleu4"].max() + 0.2, floor_and_ceiling
assert model_row["cider_d"] >= floors["cider_d"].max() + 1.0, floor_and_ceiling
assert model_row["colour"] >= 0.85 and model_row["count"] >= 0.98 and model_row["background"] >= 0.95, model_row
floor_and_ceiling.round(3)

# %% [markdown]
# CIDEr-D tells the floor from the ceiling where BLEU-4 did not: the humans score above both blind
# captions, because a blind caption's words are common to every image, and TF-IDF gives them little
# weight. The two blind captions differ: each is the best for the score that chose it, which is why a
# floor is chosen by the metric it is the floor of. Our model scores far above the humans by CIDEr-D: it
# writes the annotators' most common phrasings (a consensus of their five styles), which CIDEr-D, a
# consensus measure, rewards against all five references, while each human writes in one style and is
# scored against the other four.
#
# Where does it go wrong? A confusion matrix for the shape kind: each row is a true kind, each column what
# the caption says for it (the last column: the caption left that shape out, or named no kind).

# %%
from helpers.attributes import attribute_confusion
from helpers.plots import plot_confusion

figure = plot_confusion(attribute_confusion(greedy_captions, test_scenes, "kind"))

# %% [markdown]
# Read the model's row against the other two. What it gets right: the **count** of shapes, the
# **background** and the **relation** (which side, which way up) in almost every caption, and the
# **colour** of nearly every shape (a shape left out or invented counts as a wrong colour; the few colours it
# mixes up are neighbours, such as orange with yellow or red). How well depends a little on the random
# start: over seeds 0, 1 and 2 (`TrainConfig(seed=...)`, which also draws the random ResNet50), runs of 12
# epochs on a 2-core CPU measured colour 0.89 to 0.96 and BLEU-4 0.73 to 0.80. With 4 epochs, one seed had
# not learnt colour at all (0.55): that is why the CPU configuration trains 12.
#
# What it guesses, in part: the **kind**. It is right more often than chance (one in three) and than the
# blind caption, but far from always, and the matrix shows where it goes wrong: circles and squares are
# often taken for each other (a quarter to a third of them); triangles are named best. So colour and kind are right
# together for fewer shapes (**object**), and fewer than half of the captions are right in every fact
# (**all**). BLEU-4 hides this: colours, counts and layouts are most of every caption's words, and a square
# called a circle costs one word.
#
# This is notebook 03's finding at work (its section *Pretrained or random weights*). A frozen ResNet50 with
# random weights measures how much of which colour and brightness a picture holds, not outlines: two
# pictures that share a shape kind are hardly more alike in its features than two that do not. The
# projection and the LSTM can only learn what is in the features. Colour is there, so it is learnt; of the
# kind there is only a trace (perhaps how much of its colour a shape covers: a triangle fills half of the
# square around it, a circle more than three quarters), so it stays partly a guess. That is what pretrained
# weights buy: ImageNet's filters respond to edges and corners (`%env COURSE_WEIGHTS=imagenet`, then run
# this notebook again). Training the backbone is the other way, and it needs a GPU: that is what
# `TrainConfig.for_device` (and `python -m helpers train`) does on a GPU without ImageNet weights, and
# `benchmarks/README.md` records what it reached on one. Notebook 08 keeps the frozen backbone and looks
# at its grid of cells instead of the pooled vector: it names the shapes right on this CPU.
#
# Six test images, with the model's caption and two of the five references:

# %%
from helpers.plots import show_captions

figure = show_captions(test_table, n=6, columns=3, references=2, seed=0)

# %% [markdown]
# ## 10. Why your BLEU differs from a paper's
#
# "My BLEU-4 is not the paper's" is the question learners ask most in captioning repositories. Often the
# model is fine and the number is computed another way. Here are the common ways, each measured on the
# same greedy test captions of this run, one change at a time from the course's number (the first row).
# The last row scores other captions: **teacher-forced** ones, the model's most probable word at every
# position *given the first reference's true words before it* (what the training loss sees, notebook
# 04), joined into a caption. A validation loop that scores those by mistake reports a model that never
# has to recover from its own errors.

# %% tags=["nbval-ignore-output"]
from helpers.bleu_variants import bleu_variants, teacher_forced_captions

test_features = cached_features(model, list(test_table["image"]), config.image_size, device, CACHE,
                                log=lambda _: None)
forced = teacher_forced_captions(model, test_features, [refs[0] for refs in test_refs], vocab, device,
                                 config.max_words)
pairs = zip(forced, greedy_captions, strict=True)
differ = next((i for i, (one, other) in enumerate(pairs) if one != other), 0)
print(f"test image {differ}, the first where the two differ")
print("first reference:", test_refs[differ][0])
print("teacher-forced: ", forced[differ])
print("generated:      ", greedy_captions[differ])

# %% tags=["nbval-ignore-output"]
variants = bleu_variants(test_refs, greedy_captions, teacher_forced=forced)
course = variants["BLEU-4"].iloc[0]
assert variants.loc["not lower-cased", "BLEU-4"] == course  # our captions are lower-case already
assert abs(variants.loc["COCO caption evaluation's BLEU (pycocoevalcap)", "BLEU-4"] - course) < 0.01
variants.round(4)

# %% [markdown]
# **Which one do papers report?** Corpus BLEU-4 of *generated* captions against *all* the references, as
# the COCO caption evaluation (`pycocoevalcap`) computes it on lower-cased, tokenised words, printed ×100.
# Here that is the COCO row ×100. Read the rest row by row:
#
# - **×100** is the same number: 0.8 in code is 80 in a paper, never 0.8 %.
# - **The mean of sentence scores** is another number (section 6): an image with no matching 4-gram
#   scores 0 alone. nltk's smoothing (`SmoothingFunction().method1` puts 0.1 in place of a zero match)
#   lifts exactly those images. Smoothing is for scoring one sentence; a corpus score rarely needs it.
# - **Not lower-cased** changes nothing here, and **split on spaces** little: the course's tokenizer gave
#   the model lower-case words without punctuation, and our annotators write lower-case too, so only the
#   full stop two of them put at the end counts: it lengthens those references, and so the brevity
#   penalty. On captions typed by people, with capitals and full stops against the word, both matter; the
#   next cell shows it.
# - **One reference** instead of five leaves far fewer n-grams to match: the score drops a lot. Papers
#   use all of them (five on Flickr8k and COCO).
# - **nltk against COCO**: both take the reference closest in length for the brevity penalty; they differ
#   only where a caption is shorter than n words or an order has no match at all, so here they agree to
#   within 0.01 (the cell checks it). Other tools differ more (some take the *shortest* reference for the
#   brevity penalty, or score per sentence).
# - **Teacher-forced** captions follow the first reference's words and template, and the model never
#   pays for its own earlier mistakes. For this model they score about what the generated captions do:
#   its errors are single words (a kind, a colour) that it gets wrong with the true words before it too,
#   not captions that drift off course. Whatever the gap, it is not the model's BLEU: never report it.
#
# Where case and tokenisation do matter: the same references as people type them, with a capital first
# letter and the full stop against the last word ("A red circle on a black background."):

# %% tags=["nbval-ignore-output"]
from helpers.bleu_variants import bleu4

as_typed = [[r[0].upper() + r[1:].replace(" .", ".") for r in refs] for refs in test_refs]
print("as typed:", as_typed[0][1])
for name, options in {
    "lower-cased and tokenised (the course, COCO)": {},
    "not lower-cased": {"lower": False},
    "split on spaces": {"tokenise": False},
    "neither": {"lower": False, "tokenise": False},
}.items():
    print(f"{name:45} {bleu4(as_typed, greedy_captions, **options):.4f}")
assert bleu4(as_typed, greedy_captions) == course

# %% tags=["nbval-ignore-output"]
from helpers.utils import run_time

print(f"this notebook ran in {run_time()} up to here (the solutions at the end not counted)")

# %% [markdown]
# ## Recap
#
# | Step | Where it lives |
# |---|---|
# | the configuration for the device (small on a CPU, larger on a GPU) | `helpers.config.TrainConfig.for_device` |
# | read, check, build the vocabulary; captions as tensors | `helpers.prepare.prepare_data`; `helpers.batches.encode_captions` |
# | the model from a configuration | `helpers.runs.build_model` (a `helpers.models.Captioner`) |
# | frozen backbone features, computed once and stored | `helpers.features.cached_features` |
# | shuffled batches | `helpers.batches.batches` |
# | one step: the loss, backward, clip, Adam, one-cycle (written in section 4) | `helpers.training.train_epoch` with `TrainStep` (`packed_loss`, equal to `sequence_loss`) |
# | Adam over what trains, the one-cycle schedule | `helpers.training.make_optimizer` |
# | validation: greedy decoding, no teacher forcing, BLEU-1…4 | `helpers.evaluation.evaluate_bleu` (`helpers.training.validate` in `fit`) |
# | the whole loop, with checkpoints in a run folder | `helpers.training.fit` → `FitResult(model, vocab, config, history, data)` |
# | a trained model on a split; a run folder read back | `helpers.evaluation.evaluate_split`; `helpers.runs.Run.load` |
# | the floor and the ceiling: the best image-blind caption, the humans | `helpers.metrics.best_blind_caption`, `human_ceiling` |
# | CIDEr-D, its floor and its ceiling | `helpers.metrics.cider_d`; `helpers.cider_baselines.best_blind_caption_cider`, `human_cider_d` |
# | BLEU-4 each common way; teacher-forced captions | `helpers.bleu_variants.bleu_variants`, `bleu4`, `teacher_forced_captions` |
# | what a caption gets right, fact by fact; where it goes wrong | `helpers.attributes.attribute_accuracy`, `attribute_confusion`; `helpers.plots.plot_confusion` |
# | the figures | `helpers.plots.plot_lr_schedule`, `plot_history`, `show_captions` |
#
# From a terminal: `python -m helpers train --data data/shapes --out runs/shapes` trains the same way, and
# `python -m helpers evaluate --run runs/shapes --data data/shapes --baselines` prints the test scores, every
# attribute's accuracy, the blind caption and the humans.
#
# ## Exercises
#
# 1. Set `HAND_STEPS = 200` and rerun sections 4–6. How far does dev BLEU-4 get from the hand loop alone?
# 2. Train without the schedule: replace `OneCycleLR` by a constant learning rate in the hand loop. Which
#    learning rates still train, and which make the loss jump?
# 3. `fit` with `dataclasses.replace(config, hidden_size=128)` (use another `run_dir`; `replace` keeps every
#    other setting, the weights included). How do the training time and the dev BLEU-4 change?
# 4. Another image-blind baseline: the most common training caption for every test image. Is its BLEU-4
#    higher or lower than the best blind caption's? Why? (Hint: look at its length.)
# 5. With `train_backbone="last"` (`--fine-tune` on the command line) the backbone learns too. Use
#    `dataclasses.replace(config, train_backbone="last")`, which keeps the 64 px images (a bare
#    `TrainConfig(train_backbone="last")` means 224 px: hours per epoch on a laptop CPU). Time a few
#    batches, estimate one epoch, and compare with a cached epoch: is it worth it on these shapes?
# 6. Section 10's teacher-forced row on a model that has barely learnt: train a fresh model for
#    `HAND_STEPS` steps as in section 4, then compare the BLEU-4 of its teacher-forced and its greedy test
#    captions. Is the gap larger than the trained model's? Why?

# %% [markdown]
# ### Solutions
#
# Try each exercise before you open its solution: every solution cell below is collapsed (in JupyterLab,
# click the `…` to show it; on Colab, "Show code"). The first one defines `hand_train`, which the others
# reuse: section 4's loop as a function, on a fresh model.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 1
def hand_train(steps: int, lr_at=None):
    """A fresh model trained ``steps`` steps on the cached features; ``lr_at(step)``: a constant rate
    instead of the one-cycle schedule. Returns the model and its losses."""
    seed_everything(config.seed)
    fresh = build_model(config, len(vocab)).to(device).train()
    params = [p for p in fresh.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.25)
    losses = []
    for step, idx in enumerate(batches(len(captions), config.batch_size, torch.Generator().manual_seed(0))[:steps]):
        if lr_at is not None:
            optimizer.param_groups[0]["lr"] = lr_at(step)
        batch_lengths = lengths[idx]
        batch_captions = captions[idx, : int(batch_lengths.max())].to(device)
        inputs = fresh.encoder.project_features(train_features[image_index[idx]].to(device))
        loss = sequence_loss(fresh.decoder(inputs, batch_captions, batch_lengths), batch_captions, batch_lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        if lr_at is None:
            schedule.step()
        losses.append(loss.item())
    return fresh.eval(), losses


hand_model, _ = hand_train(200)
hand_scores, _ = evaluate_bleu(hand_model, dev_features, references, vocab, device, config.max_decode)
print(f"200 hand steps: dev BLEU-4 {hand_scores['bleu4']:.3f}")
print(f"fit, after epoch 1 ({len(order)} steps): {result.history['dev_bleu4'].iloc[0]:.3f}, "
      f"after the last: {result.history['dev_bleu4'].iloc[-1]:.3f}")
# 200 steps with a schedule of their own reach about what the first epoch of fit reaches (its schedule
# is still warming up then); the rest of the way takes the full schedule over many epochs.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 2
for rate in (1e-4, 1e-3, config.lr, 3e-2, 3e-1):
    _, run_losses = hand_train(HAND_STEPS, lr_at=lambda step, rate=rate: rate)
    jump = max(later - earlier for earlier, later in zip(run_losses, run_losses[1:]))
    print(f"lr {rate:<7g} loss {run_losses[0]:.2f} → {run_losses[-1]:.2f}, largest rise in one step {jump:+.2f}")
# Small rates train, slowly; the schedule's peak trains fast even held constant over so few steps; the
# largest makes the loss jump up between steps and ends worse: the one-cycle schedule reaches a high
# rate only after a warm-up, and leaves it again.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 3
import dataclasses
import tempfile

small = dataclasses.replace(config, hidden_size=128, epochs=4)  # 4 epochs: a sized-down comparison
with tempfile.TemporaryDirectory() as folder:
    small_result = fit(DATA, run_dir=folder, config=small, device=device, cache_dir=CACHE, log=lambda _: None)
both = pd.DataFrame({
    "hidden 256 (fit above)": result.history.set_index("epoch").loc[1:4, ["dev_bleu4", "seconds"]].mean(),
    "hidden 128": small_result.history.set_index("epoch")[["dev_bleu4", "seconds"]].mean(),
}).T.round(3)
print("mean of the first 4 epochs:")
print(both)
# The smaller LSTM's epochs are faster (on cached features the LSTM is most of the work) and its dev
# BLEU-4 over the same epochs is about the same: capacity is not what limits this model (the pooled
# features are, notebook 08).

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 4
from collections import Counter

common, count = Counter(train_table["caption"]).most_common(1)[0]
common_scores = corpus_bleu_scores(test_refs, [common] * len(test_refs))
print(f"most common training caption ({count} times): {common!r}")
print(f"BLEU-4 {common_scores['bleu4']:.3f} ({len(common.split())} words) against the best blind caption's "
      f"{blind_scores['bleu4']:.3f} ({len(blind_caption.split())} words)")
# Frequent captions are the short, simple ones: BLEU's brevity penalty punishes a caption shorter than
# the references, and few of its 4-grams match. The best blind caption was chosen to score on dev.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 5
fine = build_model(dataclasses.replace(config, train_backbone="last"), len(vocab)).to(device).train()
fine_batches = iter(textbook_loader)  # 128 captions with their images at 64 px
start = time.perf_counter()
for _ in range(2):
    batch_images, batch_captions, batch_lengths = next(fine_batches)
    logits = fine(batch_images.to(device), batch_captions.to(device), batch_lengths)
    sequence_loss(logits, batch_captions.to(device), batch_lengths).backward()
per_image = (time.perf_counter() - start) / (2 * config.batch_size)
epoch_minutes = per_image * len(train_images) / 60  # fine-tuning sends each image through once per epoch
print(f"fine-tuning layer4 at {config.image_size} px: about {epoch_minutes:.1f} min per epoch "
      f"(each of {len(train_images)} images once), a cached epoch {result.history['seconds'].mean():.0f} s")
# Several times slower per epoch on a CPU, and a random layer4 still pools away the shapes' outlines: not
# worth it here. With ImageNet weights on a GPU (notebook 07) it is the usual last step.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 6
barely, _ = hand_train(HAND_STEPS)
barely_features = cached_features(barely, list(test_table["image"]), config.image_size, device, CACHE,
                                  log=lambda _: None)
barely_forced = teacher_forced_captions(barely, barely_features, [refs[0] for refs in test_refs], vocab,
                                        device, config.max_words)
_, barely_greedy = evaluate_bleu(barely, barely_features, test_refs, vocab, device, config.max_decode)
print(f"{HAND_STEPS} steps: teacher-forced BLEU-4 {bleu4(test_refs, barely_forced):.3f}, "
      f"generated {bleu4(test_refs, barely_greedy):.3f}")
print(f"trained:  teacher-forced {bleu4(test_refs, forced):.3f}, generated {bleu4(test_refs, greedy_captions):.3f}")
# The barely trained model gains far more from being fed the true words: on its own, one early mistake
# leads the rest of its caption astray. Teacher forcing hides exactly that, which is why validation
# must generate.
