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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/notebooks/08_attention.ipynb)
#
# # 08 · Attention: a map for every word
#
# Show and Tell (notebooks 02–06) reads the image once, as one pooled vector of 2048 numbers, and on our
# CPU default it names colours and counts almost perfectly but calls a circle a square one time in three.
# Show, Attend and Tell (Xu et al., 2015) keeps the CNN's *grid* of features and lets the LSTM choose, before
# every word, which cells to look at. We build it here step by step, check every piece against
# `helpers.attention`, train it, and measure what no caption score can: whether it looks at the object it
# names.
#
# **You will learn to**
# - measure why the pooled vector loses the shape, with a probe on the grid;
# - follow every tensor of the attention decoder: the grid `[B, 256, 16, 16]`, the adapter's cells
#   `[B, 16, 128]`, the scores, the map `α [B, 16]`, the context and the gate β;
# - write the attention module, one decoding step and the teacher-forced pass with its loss mask and the
#   doubly stochastic regulariser, and check each against `helpers.attention`;
# - train the attention model with `fit`, compare it with Show and Tell on the test split, and prove the maps
#   are used (replace them by uniform maps);
# - measure attention on the right object, against a uniform map and a left-then-right habit.
#
# **Prerequisites:** notebooks 02–05 (the shapes through the model, the decoder and its loss, training with
# `fit`); notebook 05 must have been run, since its Show and Tell run (`runs/shapes`) is our baseline.
#
# **Run time:** on a 2-core CPU, `fit` takes about 2.5 minutes (the grid cache, then 8 epochs; its cell
# prints how long it took), the rest under a minute. **GPU:** helps, but is not needed.

# %% tags=["colab-setup"]
import sys
if "google.colab" in sys.modules:  # on Colab only: install the course (locally it is installed already)
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/captioning-course/image-captioning-cnn-lstm@v0.1.0")  # noqa: F821

# %%
from helpers.utils import get_device, seed_everything

seed_everything(0)
device = get_device()  # CUDA if there is a GPU, then Apple's MPS, else the CPU

# %% [markdown]
# ## 1. Why: the pooled vector averages the shape away
#
# Notebook 05 found the kind of shape to be the weak fact: in its attribute table, colour and count are
# nearly always right, the kind far less often. A *probe* asks what a frozen set of features holds: train only a small classifier on them
# to read one fact (here the kind of a scene's first shape; chance is 1/3) and score it on held-out scenes.
# Measured earlier on 3,000 scenes at 64 px, a random frozen ResNet50, an 80/20 split:
#
# | features | pooled, linear | flattened grid, linear | attention pooling (1×1 conv scores, softmax over cells) | two 3×3 convs + attention pooling (trained) |
# |---|---|---|---|---|
# | layer4, 2×2×2048 | 0.590 | 0.540 | 0.593 | — |
# | layer3, 4×4×1024 | 0.518 | 0.477 | 0.677 | 0.697 |
# | layer2, 8×8×512 | 0.523 | 0.773 | 0.818 | 0.938 |
# | layer1, 16×16×256 | — | — | — | 0.993 (first conv with stride 2) |
# | pixels, a 4-layer CNN trained from scratch | | | | 0.937 |
#
# (Each trained head: 600 steps of 128 with one-cycle AdamW, a few minutes on one core; these are the
# figures of the course's issue #26, measured before this notebook existed.) The shape is
# there in the early grids, and the pooling averages it away. We redo the cheapest comparison live: the
# `layer1` grid of 1,500 scenes, read by a linear classifier once pooled to one vector and once kept as a
# 4×4 grid of cells.

# %%
from helpers.attention import frozen_stage
from helpers.prepare import prepare_data
from helpers.scenes import make_shapes
from helpers.utils import course_root, course_weights

ROOT = course_root()
DATA = ROOT / "data" / "shapes"
CACHE = DATA / ".cache"
make_shapes(DATA)
data = prepare_data(DATA)
stage, weights = frozen_stage("layer1", course_weights())  # ResNet50 up to layer1, frozen, eval mode
print("stage weights:", weights)

# %%
import torch

from helpers.attributes import read_scenes, scenes_for
from helpers.data import image_transform, load_image

probe_images = data.images("train")[:1500]
transform = image_transform(64)
with torch.no_grad():
    probe_grids = torch.cat([
        stage(torch.stack([transform(load_image(path)) for path in probe_images[i : i + 250]]))
        for i in range(0, len(probe_images), 250)
    ])
kinds = ("circle", "square", "triangle")
probe_labels = torch.tensor([kinds.index(s.shapes[0].kind) for s in scenes_for(probe_images, read_scenes(DATA))])
print("probe_grids:", tuple(probe_grids.shape), "| probe_labels:", tuple(probe_labels.shape))

# %% [markdown]
# `probe_grids` is `[1500, 256, 16, 16]`: for each scene, 256 channels on a 16×16 grid of cells, each cell
# seeing a 4×4-pixel patch of the 64-pixel image (plus what its receptive field reaches around it).
# Pooled, a scene is `[256]` numbers; kept as a coarse 4×4 grid, `[256 · 16] = [4096]`.

# %%
import torch.nn.functional as F


def linear_probe(x: torch.Tensor, y: torch.Tensor, steps: int = 300) -> float:
    """Accuracy on the last 20 % of a linear classifier trained on the first 80 % (standardised inputs)."""
    split = int(0.8 * len(x))
    mean, std = x[:split].mean(0), x[:split].std(0) + 1e-6
    x = (x - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], 3)
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-3)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            F.cross_entropy(linear(x[:split]), y[:split]).backward()
            optimizer.step()
    return (linear(x[split:]).argmax(1) == y[split:]).float().mean().item()


pooled = probe_grids.mean(dim=(2, 3))  # [1500, 256]
cells_4x4 = F.adaptive_avg_pool2d(probe_grids, 4).flatten(1)  # [1500, 4096]

# %% tags=["nbval-ignore-output"]
accuracy = {"pooled [256]": linear_probe(pooled, probe_labels),
            "4×4 grid [4096]": linear_probe(cells_4x4, probe_labels)}
print({name: round(value, 3) for name, value in accuracy.items()}, "(chance 0.333)")

# %% [markdown]
# Keeping *where* the features are helps even a linear reader. The decoder below goes further: a small
# trained adapter turns the grid into 16 cells, and the LSTM chooses, word by word, which cells to read.
#
# ## 2. The grid, and the adapter
#
# Four images through the frozen stage, then through `GridAdapter`: standardise each channel (a random
# network's channels differ in scale by orders of magnitude), a 3×3 convolution with stride 2 to `D = 128`
# channels, BatchNorm, ReLU, a second one with stride 2, and the cells as a sequence, row by row.

# %%
from helpers.attention import GridAdapter

images = torch.stack([transform(load_image(path)) for path in probe_images[:4]])
with torch.no_grad():
    grid = stage(images)
torch.manual_seed(0)
adapter = GridAdapter(in_channels=256, feature_size=128, strides=(2, 2))
features = adapter(grid)
print("images:  ", tuple(images.shape), "  [B, 3, S, S]")
print("grid:    ", tuple(grid.shape), "  [B, C, h, w]: layer1 keeps 1/4 of the side")
print("features:", tuple(features.shape), "     [B, N, D]: 16 = (16/2/2)² cells of D = 128")
assert grid.shape == (4, 256, 16, 16) and features.shape == (4, 16, 128)

# %% [markdown]
# Cell `i` of `features` is row `i // 4`, column `i % 4` of the adapter's 4×4 output: it covers a 16×16-pixel
# square of the 64-pixel image. The grid is what a cache stores (computed once per image); the adapter
# trains with the decoder.
#
# ## 3. The attention module
#
# At every step the LSTM's hidden state `h [B, H]` scores every cell, additively (Bahdanau):
# `score_i = w · tanh(key_i + W·h)`, with `key_i = K·features_i [A]` computed once per image. A softmax over
# the cells gives the map `α [B, N]` (it sums to 1); the context is `Σ_i α_i · features_i [B, D]`; and a gate
# `β = σ(f_β(h)) [B, D]` says how much of it to let through. We build the decoder of `helpers.attention` and
# write the module with its layers.

# %%
from helpers.attention import AttentionDecoder

vocab = data.vocab
torch.manual_seed(0)
decoder = AttentionDecoder(feature_size=128, embed_size=128, hidden_size=256, vocab_size=len(vocab),
                           attention_size=128)


def attend(decoder, h, features, keys):
    """h [B, H], features [B, N, D], keys [B, N, A] → (β ⊙ context [B, D], α [B, N], β [B, D])."""
    query = decoder.query(h)  # [B, A]
    energy = torch.tanh(keys + query.unsqueeze(1))  # [B, N, A]: every cell against the query
    scores = decoder.score(energy).squeeze(2)  # [B, N]
    alpha = scores.softmax(dim=1)  # [B, N], sums to 1 over the cells
    context = (alpha.unsqueeze(2) * features).sum(dim=1)  # [B, D]
    beta = torch.sigmoid(decoder.f_beta(h))  # [B, D], each in 0…1
    return beta * context, alpha, beta

# %% [markdown]
# The LSTM's state starts from the mean of the cells (there is no image step, unlike Show and Tell):
# `h₀ = tanh(W_h · mean)`, `c₀ = tanh(W_c · mean)`. Then we attend once and compare with the package.

# %%
with torch.no_grad():
    mean = features.mean(dim=1)  # [B, D]
    h0, c0 = torch.tanh(decoder.init_h(mean)), torch.tanh(decoder.init_c(mean))  # [B, H] each
    keys = decoder.key(features)  # [B, N, A]: once per image
    context, alpha, beta = attend(decoder, h0, features, keys)
    state = decoder.initial_state(features)
    their_context, their_alpha, their_beta = decoder.attend(state)
print("keys:", tuple(keys.shape), "| α:", tuple(alpha.shape), "| context:", tuple(context.shape),
      "| β:", tuple(beta.shape))
print("α of image 0 (4×4):\n", alpha[0].reshape(4, 4).numpy().round(3))
for mine, theirs in [(h0, state.h), (c0, state.c), (keys, state.keys), (context, their_context),
                     (alpha, their_alpha), (beta, their_beta)]:
    torch.testing.assert_close(mine, theirs)
torch.testing.assert_close(alpha.sum(dim=1), torch.ones(4))

# %% [markdown]
# Untrained, the map is nearly uniform (every weight near 1/16 = 0.0625): the scores are small and alike.
# Training will sharpen it.
#
# ## 4. One decoding step
#
# A step reads the previous word's embedding `[B, E]` and the gated context `[B, D]`, concatenated, into an
# `LSTMCell` (`E + D → H`), and scores the vocabulary from the new `h` (`Linear H → V`). The first step reads
# `<start>`; `decoder.start` does exactly this.

# %%
with torch.no_grad():
    start = torch.full((4,), vocab.start_id)
    inputs = torch.cat([decoder.embed(start), context], dim=1)  # [B, E + D]
    h1, c1 = decoder.cell(inputs, (h0, c0))  # [B, H] each
    logits = decoder.linear(h1)  # [B, V]
    their_logits, their_state = decoder.start(features, vocab.start_id)
print("inputs:", tuple(inputs.shape), "| h1:", tuple(h1.shape), "| logits:", tuple(logits.shape))
torch.testing.assert_close(logits, their_logits)
torch.testing.assert_close(alpha, their_state.alpha)  # the map this step looked with

# %% [markdown]
# **Which map goes with which word.** Step `t` reads token `t` of `<start> w₀ w₁ …` and emits token `t + 1`,
# i.e. word `t`: the map of step `t` is the one the model looked with *to choose* word `t`. That is the map we
# draw under a word, and the one `helpers.grounding` scores.
#
# ## 5. The teacher-forced pass, its loss mask and the doubly stochastic regulariser
#
# For training we feed the true caption: position `t` reads token `t` and predicts token `t + 1`, so a
# caption of `n` tokens has `n − 1` real steps; the rest of the padded block is masked out of the loss. The
# four images' 20 captions (five each) have different lengths:

# %%
from helpers.batches import encode_captions

train_table = data.split("train")
four = train_table[train_table["image"].isin(probe_images[:4])]  # their 20 caption rows
image_index, captions, lengths = encode_captions(four, probe_images[:4], vocab, 30)
captions = captions[:, : int(lengths.max())]
print("image_index:", tuple(image_index.shape), "| captions:", tuple(captions.shape),
      "| lengths:", lengths.tolist())


def teacher_forced(decoder, features, captions):
    """features [B, N, D], captions [B, T] → (logits [B, T-1, V], alphas [B, T-1, N]), every position."""
    mean = features.mean(dim=1)
    h, c = torch.tanh(decoder.init_h(mean)), torch.tanh(decoder.init_c(mean))
    keys, logits, alphas = decoder.key(features), [], []
    for t in range(captions.shape[1] - 1):
        context, alpha, _ = attend(decoder, h, features, keys)
        h, c = decoder.cell(torch.cat([decoder.embed(captions[:, t]), context], dim=1), (h, c))
        logits.append(decoder.linear(h))
        alphas.append(alpha)
    return torch.stack(logits, dim=1), torch.stack(alphas, dim=1)

# %% [markdown]
# The loss is the cross-entropy over every real next word. The regulariser
# `λ · Σ_i (1 − Σ_t α_ti)²` asks that, over a caption, every cell be looked at about once in total; the sum
# over `t` must cover only the caption's real steps, or the padding would count as looking.

# %%
from helpers.attention import attention_loss, attention_penalty
from helpers.models import target_mask

LAMBDA = 1.0
with torch.enable_grad():
    caption_features = adapter(grid)[image_index]  # [20, N, D]: each caption's image
    logits, alphas = teacher_forced(decoder, caption_features, captions)
    mask = target_mask(lengths - 1, captions.shape[1] - 1)  # [B, T-1]: True on the real steps
    looked = (alphas * mask.unsqueeze(2)).sum(dim=1)  # [B, N]: Σ over the real steps
    penalty = ((1 - looked) ** 2).sum(dim=1).mean()
    loss = F.cross_entropy(logits[mask], captions[:, 1:][mask]) + LAMBDA * penalty
    their_logits, their_alphas = decoder(adapter(grid), captions, lengths, image_index=image_index)
    their_loss = attention_loss(their_logits, their_alphas, captions, lengths, penalty=LAMBDA)
print("logits:", tuple(logits.shape), "| alphas:", tuple(alphas.shape), "| mask:", tuple(mask.shape))
print(f"loss {loss.item():.4f} (helpers {their_loss.item():.4f}); penalty {penalty.item():.3f}, "
      f"without the mask {((1 - alphas.sum(dim=1)) ** 2).sum(dim=1).mean().item():.3f}")

# %% [markdown]
# Now the check: the same logits and maps on the real steps (the package leaves positions past a caption's
# end at 0 and never runs the LSTM on them), the same penalty and loss, and the same gradients.

# %%
torch.testing.assert_close(logits[mask], their_logits[mask])
torch.testing.assert_close(alphas[mask], their_alphas[mask])
torch.testing.assert_close(penalty, attention_penalty(their_alphas, lengths))
torch.testing.assert_close(loss, their_loss)
parameters = [p for p in [*decoder.parameters(), *adapter.parameters()] if p.requires_grad]
with torch.enable_grad():
    mine_grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    their_grads = torch.autograd.grad(their_loss, parameters, allow_unused=True)
for mine, theirs in zip(mine_grads, their_grads, strict=True):
    if mine is not None:
        torch.testing.assert_close(mine, theirs)
print(f"equal: logits, maps, penalty, loss, and the gradients of {len(parameters)} parameter tensors")

# %% [markdown]
# From here on all of this is `helpers.attention`: `GridEncoder` (the frozen stage and `GridAdapter`),
# `AttentionDecoder` (`attend`, `start`, `step`, and the teacher-forced `forward`, which runs only the
# captions still going and computes the keys once per image) and `attention_loss` with `attention_penalty`.
#
# ## 6. Training it with `fit`
#
# `TrainConfig.for_device(device, decoder="attention")` gives the attention preset: layer1 grids at 64 px,
# cached in fp16 (8,000 scenes at 16×16×256 are about 1 GB), the adapter of strides (2, 2), 8 epochs.
# `fit` is the loop of notebook 05, with the attention loss; the first run computes the grid cache.

# %%
from dataclasses import asdict

import pandas as pd

from helpers.config import TrainConfig

config = TrainConfig.for_device(device, decoder="attention", weights=course_weights())
ATTENTION_RUN = ROOT / "runs" / "shapes-attention"
pd.Series(asdict(config), name="value").to_frame().T

# %% tags=["nbval-ignore-output"]
import time

from helpers.training import fit

start = time.perf_counter()
result = fit(DATA, run_dir=ATTENTION_RUN, config=config, device=device, cache_dir=CACHE)
print(f"fit took {(time.perf_counter() - start) / 60:.1f} min")
grid_files = sorted(CACHE.glob("grids-*.pt"))
print(f"grid cache: {sum(p.stat().st_size for p in grid_files) / 1e6:.0f} MB on disk in {len(grid_files)} files")

# %% jupyter={"source_hidden": true} tags=["check"]
assert list(result.history["epoch"]) == list(range(1, config.epochs + 1))
assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
assert (ATTENTION_RUN / "best.pt").is_file()

# %% [markdown]
# ## 7. Side by side on the test split
#
# Three models, each read back with `Run.load` (best.pt, the course's rule), greedy, the whole test split:
# **Show and Tell** (notebook 05's run), **attention**, and the **attention model with every α replaced by
# the uniform map 1/N** at inference (`decoder.uniform_attention = True`). If the maps carry the shape, that
# control must lose it.

# %%
from helpers.attributes import attribute_accuracy
from helpers.evaluation import evaluate_split
from helpers.grounding import grounding_report
from helpers.runs import Run

SHOW_TELL_RUN = ROOT / "runs" / "shapes"
if not (SHOW_TELL_RUN / "best.pt").is_file():
    raise SystemExit(f"{SHOW_TELL_RUN} holds no trained run: run notebook 05 first")
show_tell, attention = Run.load(SHOW_TELL_RUN, device), Run.load(ATTENTION_RUN, device)
test_images = data.images("test")
test_scenes = scenes_for(test_images, read_scenes(DATA))


def score_on_test(run):
    """BLEU-4, every attribute's accuracy, and (for an attention run) the grounding report on test."""
    scores, table = evaluate_split(run.model, run.vocab, run.config, data, "test", device=device,
                                   cache_dir=CACHE, log=lambda _: None)
    row = {"bleu4": scores["bleu4"], **attribute_accuracy(list(table["generated"]), test_scenes)}
    if "maps" not in table:
        return row, table, None
    report = grounding_report(list(table["generated"]), list(table["maps"]), test_scenes,
                              image_size=run.config.image_size)
    return {**row, "attention_on_object": report.attention_on_object,
            "attention_mass_on_object": report.attention_mass_on_object}, table, report

# %% tags=["nbval-ignore-output"]
rows, tables = {}, {}
rows["(a) Show and Tell"], tables["show-tell"], _ = score_on_test(show_tell)
rows["(c) attention"], tables["attention"], report = score_on_test(attention)
attention.model.decoder.uniform_attention = True
rows["(d) attention, α uniform at inference"], _, _ = score_on_test(attention)
attention.model.decoder.uniform_attention = False
rows["uniform map (same words)"] = {"attention_on_object": report.uniform_on_object,
                                    "attention_mass_on_object": report.uniform_mass_on_object}
rows["first word → first shape (same words)"] = {"attention_on_object": report.prior_on_object,
                                                 "attention_mass_on_object": report.prior_mass_on_object}
side_by_side = pd.DataFrame(rows).T[["bleu4", "colour", "count", "kind", "object", "all",
                                     "attention_on_object", "attention_mass_on_object"]]
side_by_side.round(3)

# %% jupyter={"source_hidden": true} tags=["check"]
a, c, d = (side_by_side.loc[name] for name in side_by_side.index[:3])
assert c["kind"] >= a["kind"] + 0.15 and c["all"] >= a["all"] + 0.15, side_by_side
assert d["kind"] <= c["kind"] - 0.2, side_by_side  # without its maps the model loses the shapes
assert c["attention_on_object"] >= report.uniform_on_object + 0.3, side_by_side
print(f"{report.grounded_words} words scored ({report.reordered_words} reordered), {report.excluded_words} "
      f"left out (no matched shape), {report.single_shape_captions} single-shape scenes")

# %% [markdown]
# **Reading the table.** The attention model names the kind where Show and Tell guessed, and gets the
# colours right too; count was already right. The control (d) is the same weights with every map replaced by the uniform one: what
# it loses is what the maps carried.
#
# **Attention on the right object** (`helpers.grounding`): for every colour or shape word that the attribute
# scorer matches to a shape of a two-shape scene, we take the map of the step that emitted it and ask (1) is
# its weighted centre nearer that shape's true centre than the other shape's (`attention_on_object`), and
# (2) how much of its weight falls in the shape's disc (`attention_mass_on_object`). The same words are
# scored for two maps that do not look: the uniform map, and "first word → first shape", which looks at the
# left (or top) place for the first shape named and the right (or bottom) one for the second. The shapes sit
# at fixed quarter positions, and most captions name the left or top shape first: the model's own captions
# may always do so, and then the habit "look left, then right" passes measure 1 as often as looking does.
#
# **Looking, or a habit?** To tell them apart we make the model read captions in the other order. Annotator
# 1 names the right (or bottom) shape first: "a blue square to the right of a red circle". We feed those
# reference captions with teacher forcing and score the map of the step that reads each colour or shape
# word (position `t` reads token `t` and predicts token `t + 1`, so row `k` of the maps goes with word `k`,
# as in greedy decoding). On these words the left-then-right prior scores 0, the uniform map about 0.5; a
# model that looks at the shape it names should score near 1.

# %%
from helpers.data import pad_captions
from helpers.features import cached_features

two_shapes = [i for i, scene in enumerate(test_scenes) if len(scene.shapes) == 2]
references = data.references("test")
backwards = [references[test_images[i]][1] for i in two_shapes]  # annotator 1: the other shape first
model = attention.model
with torch.no_grad():
    grids = cached_features(model, test_images, attention.config.image_size, device, CACHE,
                            log=lambda _: None)[two_shapes]
    ids, ids_lengths = pad_captions([torch.tensor(attention.vocab.encode(text)) for text in backwards])
    _, forced_maps = model.decoder(model.encoder.project_features(grids.to(device)), ids.to(device),
                                   ids_lengths)
forced = grounding_report(backwards, list(forced_maps.cpu()), [test_scenes[i] for i in two_shapes],
                          image_size=attention.config.image_size)
print(f"{backwards[0]!r}: maps {tuple(forced_maps.shape)} (captions, steps, cells)")
assert forced.reordered_words == forced.grounded_words > 0  # every scored word is reordered

# %% tags=["nbval-ignore-output"]
pd.DataFrame({"attention": [forced.attention_on_object, forced.attention_mass_on_object],
              "uniform map": [forced.uniform_on_object, forced.uniform_mass_on_object],
              "first word → first shape": [forced.prior_on_object, forced.prior_mass_on_object]},
             index=["attention_on_object", "attention_mass_on_object"]).round(3)

# %% [markdown]
# Read the first row against the uniform map's. Near 1, the maps follow the named shape whatever the order.
# Near 0.5, they do not: they keep the order the model was trained to speak in, and it can still name every
# shape right, because it has learnt *when* to look where rather than *what* each word is about (exercise 4
# asks where it looks instead).
#
# ## 8. The maps, word by word
#
# One two-shape test image, its caption, and for every word the map the model looked with to choose it,
# upsampled over the 64-pixel image it read; then the gate β of each step (its mean over the `D` features).

# %%
from helpers.attention_plots import plot_gate, show_attention
from helpers.decoding import greedy
from helpers.vocabulary import tokenize

pick = next(i for i, scene in enumerate(test_scenes) if len(scene.shapes) == 2)
model = attention.model
with torch.no_grad():
    grids = model.encoder.backbone_features(attention.pixels([test_images[pick]]))
    decoded, looked = greedy(model.decoder, model.encoder.project_features(grids), attention.vocab,
                             return_attention=True)
words = tokenize(decoded.captions[0]) + ["<end>"]
print("caption:", decoded.captions[0], "| maps:", tuple(looked.alphas.shape), "| β:", tuple(looked.betas.shape))
figure = show_attention(load_image(test_images[pick]).resize((64, 64)), words, looked.alphas[0])

# %%
figure = plot_gate(words, looked.betas[0])

# %% tags=["nbval-ignore-output"]
from helpers.utils import run_time

print(f"this notebook ran in {run_time()} up to here (the solutions at the end not counted)")

# %% [markdown]
# ## Recap
#
# | Step | Where it lives |
# |---|---|
# | a frozen ResNet50 stage and its grid `[B, C, h, w]` | `helpers.attention.frozen_stage`, `GridEncoder.backbone_features` |
# | the trained adapter, grid → cells `[B, N, D]` | `helpers.attention.GridAdapter` |
# | scores, α, context, β (section 3); one step (section 4) | `helpers.attention.AttentionDecoder.attend`, `start`, `step` |
# | the teacher-forced pass, the loss mask, the doubly stochastic regulariser | `AttentionDecoder.forward`, `attention_loss`, `attention_penalty` |
# | the configuration and training | `TrainConfig.for_device(device, decoder="attention")`, `helpers.training.fit` |
# | maps and gates from decoding | `helpers.decoding.greedy(..., return_attention=True)` |
# | attention on the right object, with its two baselines | `helpers.grounding.grounding_report` |
# | a heat map per word; β per word; the architecture (`assets/attention_architecture.png`) | `helpers.attention_plots.show_attention`, `plot_gate`; `helpers.diagrams.attention_figure` |
#
# From a terminal: `python -m helpers train --decoder attention --data data/shapes --out runs/shapes-attention`,
# then `python -m helpers evaluate --run runs/shapes-attention --data data/shapes --json`.
#
# ## Exercises
#
# 1. Redo the live probe of section 1 with the grid kept at 16×16 (`probe_grids.flatten(1)`) and pooled to
#    2×2. Where does the linear reader do best, and why might the finest grid not win with 1,200 examples?
# 2. Train with `TrainConfig.for_device(device, decoder="attention", penalty=1.0)` (another `run_dir`). What
#    happens to `attention_on_object` and `attention_mass_on_object`? With 16 cells and about 10 steps a
#    caption, what does "every cell looked at once" ask of the model?
# 3. Set `attention.model.decoder.uniform_attention = True` and caption the image of section 8. Which words
#    change, and which stay right? Explain with the β plot.
# 4. In section 7's teacher-forced captions, score the map of the step *before* each word instead
#    (`torch.roll(forced_maps, 1, dims=1)`). Does the model look at a shape one step before it names it?
#    Find a caption where a colour word's map lies on the other shape (`helpers.grounding.grounded_words` and
#    `score_map` give each word's verdict).
# 5. Change `strides=(2, 1)` (64 cells). Predict the shapes of `features`, `keys` and `α`, then check them
#    with section 2's cell; how does the training time change?

# %% [markdown]
# ### Solutions
#
# Try each exercise before you open its solution: every solution cell below is collapsed (in JupyterLab,
# click the `…` to show it; on Colab, "Show code").

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 1
for name, cells in {"pooled [256]": pooled,
                    "2×2 grid [1024]": F.adaptive_avg_pool2d(probe_grids, 2).flatten(1),
                    "4×4 grid [4096]": cells_4x4,
                    "16×16 grid [65536]": probe_grids.flatten(1)}.items():
    print(f"{name:>20}: {linear_probe(cells, probe_labels):.3f}")
# Keeping some of the where helps; the finest grid gives the linear reader 65,536 numbers per scene and
# only 1,200 scenes to fit them on: it overfits the training scenes (and a shape that moves lands in
# other cells), so a coarser grid, or a small trained adapter as the decoder uses, reads the kind better.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 2
import dataclasses
import tempfile

one_epoch = {}  # a sized-down comparison: one epoch each of λ = 0 and λ = 1 (the full runs take minutes)
for penalty in (0.0, 1.0):
    with tempfile.TemporaryDirectory() as folder:
        fit(DATA, run_dir=folder, config=dataclasses.replace(config, penalty=penalty, epochs=1), device=device,
            cache_dir=CACHE, log=lambda _: None)
        one_epoch[f"λ = {penalty}"] = score_on_test(Run.load(folder, device))[0]
print(pd.DataFrame(one_epoch).T[["bleu4", "kind", "attention_on_object", "attention_mass_on_object"]].round(3))
# "Every cell looked at once" asks the 16 cells' weights to add up to 1 each over the caption's steps:
# with about 10 steps for 16 cells, the maps must spread out, some of it onto the background. Compare
# the mass on the object: the regulariser pulls it down rather than up on these small scenes, and after
# one epoch it has cost the captions too.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 3
with torch.no_grad():
    attention.model.decoder.uniform_attention = True
    blind, _ = greedy(model.decoder, model.encoder.project_features(grids), attention.vocab, return_attention=True)
    attention.model.decoder.uniform_attention = False
print("with its maps:   ", decoded.captions[0])
print("maps set uniform:", blind.captions[0])
# With uniform maps nearly every fact goes: the kinds, the colours, even the count and the background.
# The model reads them through its maps, word by word, and without them falls back on frequent words;
# only the template survives, which is what the LSTM's own state carries (and where β is low).

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 4
from helpers.grounding import grounded_words, score_map
from helpers.scenes import COLOURS

scenes_two = [test_scenes[i] for i in two_shapes]
early = grounding_report(backwards, list(torch.roll(forced_maps, 1, dims=1).cpu()), scenes_two,
                         image_size=attention.config.image_size)
print(f"map of the word's own step: {forced.attention_on_object:.3f} | of the step before: "
      f"{early.attention_on_object:.3f} | uniform {forced.uniform_on_object:.3f}")
for caption, scene, maps in zip(backwards, scenes_two, forced_maps, strict=True):
    words = grounded_words(caption, scene)[0]
    wrong = [w for w in words if w.word in COLOURS and not score_map(maps[w.position], scene, w.shape, 64)[0]]
    if wrong:
        print(f"{caption!r}: the map of {wrong[0].word!r} lies nearer the other shape")
        break
# The map of the step before a word is more often on the named shape: the model decides where to look one
# step ahead, while it says the word before ("a", "small"), and names the shape from what it read then.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 5
import time

torch.manual_seed(0)
fine = GridAdapter(in_channels=256, feature_size=128, strides=(2, 1))
fine_features = fine(grid)
print("features:", tuple(fine_features.shape), "(64 cells: 16/2 × 16/2)")
for name, cells in (("16 cells", features), ("64 cells", fine_features)):
    h = torch.zeros(len(cells), decoder.cell.hidden_size)
    keys = decoder.key(cells)
    start = time.perf_counter()
    for _ in range(200):
        attend(decoder, h, cells, keys)
    print(f"{name}: keys {tuple(keys.shape)}, α {tuple(attend(decoder, h, cells, keys)[1].shape)}, "
          f"{(time.perf_counter() - start) * 5:.2f} ms a step")
# Four times the cells: keys [B, 64, A] and α [B, 64]. The attention's own work grows with the cells,
# but at these sizes it is a small part of a step (the timing above), so training slows down far less
# than four times; the grid cache and the adapter's convolutions grow instead.
