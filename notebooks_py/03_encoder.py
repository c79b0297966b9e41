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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/notebooks/03_encoder.ipynb)
#
# # 03 · The encoder: ResNet50 as a frozen feature extractor
#
# The encoder turns a picture into one vector the LSTM can read like a word. We take it apart: which
# layers ResNet50 has, what its `[2048, 1, 1]` output means, how we cut off the classifier, freeze the
# rest, keep its BatchNorm layers honest, project to the embedding size, and why a frozen encoder lets
# us compute every image's features **once** instead of every epoch.
#
# **You will learn to**
# 1. read ResNet50 layer by layer: output shapes and parameter counts, and why any input size works;
# 2. remove `fc`, freeze the backbone, and explain why its BatchNorm layers must stay in eval mode;
# 3. project the 2048 pooled features to the 300-dimensional embedding space, writing `EncoderCNN` in full
#    and checking it against the course's package;
# 4. say what pretrained weights add over random ones, what random frozen features still carry, and what
#    the course's own addition to Show and Tell (standardising the pooled features) changes;
# 5. cache features and measure how much time that saves.
#
# **Prerequisites:** notebook 02 (the shapes through the whole model); convolutions, pooling and
# BatchNorm at the level of a first deep-learning course.
#
# **Run time:** about 30 seconds on a 2-core laptop CPU. A GPU makes the ResNet50 passes far faster
# (`benchmarks/README.md` measures one), but everything here is sized to run on a CPU.

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
torch.set_grad_enabled(False)  # nothing is trained here
pd.set_option("display.width", 110)


ROOT = course_root()  # the course's folder, found from here upwards (on Colab: the current folder)
DATA = make_shapes(ROOT / "data" / "shapes")  # about 25 s the first time (notebook 01), instant afterwards

# %% [markdown]
# A few training images to look at (their file paths, one per image):

# %%
from pathlib import Path

from helpers.caption_files import load_captions

table = load_captions(DATA).table
train = table[table.split == "train"]
captions_of = train.groupby("image", sort=False).caption.agg(list)  # image path → its five captions
paths = captions_of.index.tolist()
print(len(paths), "training images;", Path(paths[0]).name, "→", captions_of.iloc[0][0])

# %% [markdown]
# ## 1. ResNet50, layer by layer
#
# torchvision's `resnet50` has ten top-level parts. We build it **without** weights here (the weights
# are the topic of section 7; the architecture is the same either way), push one 224 × 224 image through
# the parts one at a time, and record each output shape and parameter count.

# %%
from torchvision.models import resnet50

from helpers.data import image_transform, load_image

resnet = resnet50(weights=None).eval()
image = image_transform(224)(load_image(paths[0])).unsqueeze(0)  # [1, 3, 224, 224]

rows, x = [], image
for name, layer in resnet.named_children():
    if name == "fc":
        x = x.flatten(1)  # torchvision's forward flattens [1, 2048, 1, 1] → [1, 2048] before fc
    x = layer(x)
    params = sum(p.numel() for p in layer.parameters())
    rows.append((name, type(layer).__name__, tuple(x.shape), f"{params:,}"))
pd.DataFrame(rows, columns=["layer", "type", "output shape", "parameters"])

# %%
total = sum(p.numel() for p in resnet.parameters())
fc = sum(p.numel() for p in resnet.fc.parameters())
print(f"ResNet50: {total:,} parameters; fc alone: {fc:,} (2048 × 1000 weights + 1000 biases)")
print(f"without fc: {total - fc:,}")

# %% [markdown]
# Reading the table from the top:
#
# - `conv1` (7 × 7, stride 2) and `maxpool` (stride 2) shrink 224 px to 56 while going from 3 to 64
#   channels.
# - `layer1` … `layer4` are stacks of residual *bottleneck* blocks (3, 4, 6 and 3 of them). Each new
#   stage halves the width and height and doubles the channels: 56 → 28 → 14 → 7 pixels,
#   256 → 512 → 1024 → 2048 channels. Almost all parameters are here, most of them in `layer4`.
# - `avgpool` averages each of the 2048 maps of 7 × 7 into one number.
# - `fc` maps those 2048 numbers to 1000 ImageNet class scores. We do not want classes, we want the
#   description of the picture that comes just before them: so `fc` goes.
#
# ## 2. What `[2048, 1, 1]` means
#
# `layer4` gives 2048 **feature maps** of 7 × 7: each of the 49 cells describes a region of the picture
# with 2048 numbers. The average pool keeps the 2048 "what" numbers and averages away the "where":

# %%
from torch import nn

stem_to_layer4 = nn.Sequential(*list(resnet.children())[:-2])  # conv1 … layer4
maps = stem_to_layer4(image)
pooled = resnet.avgpool(maps)
print("layer4 output  ", tuple(maps.shape), " = [B, channels, height, width]")
print("avgpool output ", tuple(pooled.shape))
print("the same as a mean over height and width:", torch.allclose(pooled.flatten(1), maps.mean(dim=(2, 3))))

# %% [markdown]
# So `[2048, 1, 1]` is "2048 channels, each a 1 × 1 map": one number per channel. `flatten(1)` turns it
# into the `[2048]` vector the projection reads.
#
# ## 3. Adaptive pooling: any input size works
#
# `avgpool` is an `AdaptiveAvgPool2d((1, 1))`: it is told the size of its **output**, and averages over
# whatever grid it receives. So smaller images give a smaller `layer4` grid but the same 2048 features.
# Our shapes images are 128 px on disk; the course trains on a CPU at 64 px (section 8 measures how much
# faster than 224 px that is).

# %%
for size in (224, 128, 64):
    x = torch.zeros(1, 3, size, size)
    print(f"{size:>3} px → layer4 {tuple(stem_to_layer4(x).shape)} → avgpool {tuple(resnet.avgpool(stem_to_layer4(x)).shape)}")

# %% [markdown]
# At 64 px each of the 2 × 2 cells covers a quarter of the picture, so there is less detail to average,
# but the vector has the same length and everything after it is unchanged.
#
# ## 4. Removing `fc` and freezing: `EncoderCNN`
#
# We write the whole encoder now; sections 5 and 6 take its parts one at a time. `EncoderCNN` keeps every
# child of ResNet50 except the last (`nn.Sequential(*children[:-1])`) and adds its own projection. The
# backbone is **frozen**: its parameters get `requires_grad=False`, so the optimiser never changes them
# and no gradients are computed for them.
#
# The projection is Show and Tell's (as the classic tutorials write it): `Linear → BatchNorm1d → ReLU`, with
# one step in front that is **the course's own addition**: `standardize`, which rescales each of the 2048 pooled numbers
# to mean 0 and variance 1 (section 7 runs the Show and Tell encoder beside ours and measures why).
#
# Its weights are the course's explicit choice, `course_weights()`: random unless the environment variable
# `COURSE_WEIGHTS` says `imagenet` (section 7 says what changes then).

# %%
import torch.nn.functional as F
from torchvision.models import ResNet50_Weights

from helpers.utils import course_weights


class EncoderCNN(nn.Module):
    """images [B, 3, S, S] → features [B, embed_size], through a frozen ResNet50 without fc."""

    def __init__(self, embed_size: int = 300, weights: str = "random", standardize: bool = True):
        super().__init__()
        resnet = resnet50(weights=ResNet50_Weights.IMAGENET1K_V2 if weights == "imagenet" else None)
        self.weights = weights
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])  # everything but fc
        for p in self.backbone.parameters():
            p.requires_grad = False  # frozen: the optimiser never changes them
        # The course's addition: each of the 2048 features to mean 0, variance 1 (nothing to learn).
        self.standardize = nn.BatchNorm1d(2048, affine=False) if standardize else nn.Identity()
        self.project = nn.Linear(2048, embed_size)
        self.bn = nn.BatchNorm1d(embed_size, momentum=0.01)  # a slow running average: steadier statistics

    def train(self, mode: bool = True) -> "EncoderCNN":
        super().train(mode)
        self.backbone.eval()  # frozen BatchNorm keeps its statistics (section 5 shows why)
        return self

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] → pooled [B, 2048]"""
        with torch.no_grad():
            return self.backbone(images).flatten(1)

    def project_features(self, pooled: torch.Tensor) -> torch.Tensor:
        """[B, 2048] → [B, embed_size]"""
        return F.relu(self.bn(self.project(self.standardize(pooled))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project_features(self.backbone_features(images))


# %%
encoder = EncoderCNN(embed_size=300, weights=course_weights())
print("weights used:", encoder.weights)
print("backbone parts:", [type(m).__name__ for m in encoder.backbone])

# %%
frozen = sum(p.numel() for p in encoder.backbone.parameters() if not p.requires_grad)
trainable = {name: sum(p.numel() for p in module.parameters() if p.requires_grad)
             for name, module in [("backbone", encoder.backbone), ("standardize", encoder.standardize),
                                  ("project", encoder.project), ("bn", encoder.bn)]}
print(f"frozen:    {frozen:,}")
print("trainable:", {name: f"{n:,}" for name, n in trainable.items()})

# %% [markdown]
# About 23.5 million frozen numbers, and only the 615 300 of the projection (2048 × 300 weights + 300
# biases, and BatchNorm1d's 300 scales and 300 shifts) will learn. Freezing makes training much faster,
# keeps the few thousand captioned images of Flickr8k from overwriting what ImageNet taught the network,
# and, as section 8 shows, lets us compute the backbone's output only once per image.
#
# ## 5. Why a frozen backbone must stay in eval mode
#
# `requires_grad=False` stops **gradients**. It does not stop BatchNorm: in train mode, a BatchNorm layer
# normalises with the statistics of the current batch, and updates its `running_mean` and `running_var`
# with every forward pass, no optimiser needed. Calling `model.train()` on a captioner whose ResNet is only
# "frozen" by `requires_grad=False` (as many tutorials do) quietly changes the encoder every batch.
#
# A plain ResNet50 without `fc`, parameters frozen, put in train mode, fed one batch of 4 images:

# %%
images = torch.stack([image_transform(64)(load_image(path)) for path in paths[:8]])  # [8, 3, 64, 64]
plain = nn.Sequential(*list(resnet50(weights=None).children())[:-1])
for p in plain.parameters():
    p.requires_grad = False
plain.train()


def running_means(model: nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


before = running_means(plain)
plain(images[:4])
changed = sum(not torch.equal(a, b) for a, b in zip(before, running_means(plain)))
print(f"plain frozen ResNet50 in train mode: {changed} of {len(before)} BatchNorm layers changed their running mean")

# %% [markdown]
# Worse, in train mode an image's features depend on which **other** images share its batch, because
# BatchNorm uses the batch's mean and variance. Image 0 in two different batches:

# %%
a = plain(images[[0, 1, 2, 3]]).flatten(1)[0]
b = plain(images[[0, 4, 5, 6]]).flatten(1)[0]
print("plain, train mode: image 0 gets the same features in both batches:", torch.allclose(a, b, atol=1e-4))

# %% [markdown]
# `EncoderCNN.train()` puts only its own projection in train mode: the frozen backbone stays in eval mode,
# where BatchNorm uses its stored statistics and never updates them.

# %%
encoder.train()
print("encoder.training:", encoder.training, "| backbone.training:", encoder.backbone.training,
      "| projection bn.training:", encoder.bn.training)
before = running_means(encoder.backbone)
a = encoder.backbone_features(images[[0, 1, 2, 3]])[0]
b = encoder.backbone_features(images[[0, 4, 5, 6]])[0]
changed = sum(not torch.equal(x, y) for x, y in zip(before, running_means(encoder.backbone)))
print(f"EncoderCNN in train mode: {changed} of {len(before)} BatchNorm layers changed")
print("EncoderCNN: image 0 gets the same features in both batches:", torch.allclose(a, b, atol=1e-4))

# %% [markdown]
# ## 6. The projection to the embedding size
#
# The LSTM reads the image as its first "word", so the image must have the embedding size E = 300:
#
# `pooled [B, 2048] → standardise → Linear(2048, 300) → BatchNorm1d(300) → ReLU → features [B, 300]`
#
# - `standardize` (the course's addition) is a `BatchNorm1d(2048, affine=False)`: it learns nothing, it only rescales each of the 2048
#   pooled numbers to mean 0 and variance 1 over the training data (its running statistics are collected
#   while training). Section 7 shows why this helps: raw features are dominated by a single direction;
# - the `Linear` layer learns which combinations of the 2048 features matter for describing a picture;
# - `BatchNorm1d` keeps those 300 numbers at a steady scale while the projection learns (this one is ours
#   and trainable, so it *should* be in train mode during training);
# - `ReLU` makes them non-negative.

# %%
encoder.eval()
features = encoder(images)
print("images  ", tuple(images.shape))
print("pooled  ", tuple(encoder.backbone_features(images).shape))
print("features", tuple(features.shape), "| all ≥ 0:", bool((features >= 0).all()))

# %% [markdown]
# ### Check, then import
#
# The course's package holds the same encoder as `helpers.models.EncoderCNN` (with more options: which
# backbone layers to fine-tune, ImageNet weights when they can be had). We copy our encoder's weights and
# statistics into it (`load_state_dict`) and compare: the features in eval mode, the features and the
# updated BatchNorm statistics in train mode, and the gradients of the projection's weights.

# %%
import helpers.models

theirs = helpers.models.EncoderCNN(embed_size=300, weights="random")
theirs.load_state_dict(encoder.state_dict())  # every weight and statistic of ours, so the backbone too
for mode in ("eval", "train"):
    encoder.train(mode == "train")
    theirs.train(mode == "train")
    with torch.enable_grad():
        mine_features, their_features = encoder(images), theirs(images)
        encoder.zero_grad()
        theirs.zero_grad()
        mine_features.square().mean().backward()  # any loss will do: the gradients must agree
        their_features.square().mean().backward()
    torch.testing.assert_close(mine_features, their_features)
    for (name, mine_p), their_p in zip(encoder.named_parameters(), theirs.parameters()):
        if mine_p.requires_grad:
            torch.testing.assert_close(mine_p.grad, their_p.grad, msg=name)
    print(f"{mode} mode: same features {tuple(mine_features.shape)} and same gradients")
for (name, mine_t), their_t in zip(encoder.state_dict().items(), theirs.state_dict().values()):
    torch.testing.assert_close(mine_t, their_t, msg=name)
print("same weights and BatchNorm statistics afterwards:", len(encoder.state_dict()), "tensors")

# %% [markdown]
# They agree, so from here on we use the package's version, with the same weights:

# %%
from helpers.models import EncoderCNN

encoder = theirs.eval()

# %% [markdown]
# BatchNorm1d needs at least two images in train mode (one value has no spread), and the package's
# `EncoderCNN` says so instead of failing with a cryptic message:

# %%
encoder.train()
try:
    encoder(images[:1])
except ValueError as error:
    print("ValueError:", error)
finally:
    encoder.eval()

# %% [markdown]
# ## 7. Pretrained or random weights
#
# **What changes** with ImageNet weights: only the numbers inside the filters and the BatchNorm statistics.
# The layers, the shapes and everything after the backbone are identical. Trained on 1.3 million photos,
# the filters respond to edges, textures, parts of objects, and the 2048 pooled features say things like
# "fur", "wheel", "water": that is what makes captions of real photographs possible, and why you should
# train with them: `%env COURSE_WEIGHTS=imagenet` before running a notebook, `--weights imagenet` on the
# command line. They download once (about 100 MB), so they need the internet the first time.
#
# **What random frozen features still carry.** A random convolution is still a fixed function of the
# pixels: `conv1`'s random filters mix the colour channels, ReLUs keep how strongly each random pattern
# fires, and the final average says how much of it there is in the picture. So the 2048 numbers are a
# random but consistent fingerprint of **how much of which colour and brightness** the picture holds. We
# check it on 128 training images at 64 px, with `weights="random"` so that the numbers are the same on
# every machine: are the features of two images more alike when their captions share a background, a
# colour or a shape?
#
# First we compute the features once, and keep them (this is the cache of section 8):

# %%
import time

from torch.utils.data import DataLoader

from helpers.data import ImageFolderDataset

random_encoder = EncoderCNN(embed_size=300, weights="random").eval()
sample = paths[:128]
loader = DataLoader(ImageFolderDataset(sample, image_transform(64)), batch_size=32)

start = time.perf_counter()
cached = torch.cat([random_encoder.backbone_features(batch) for batch in loader])  # [128, 2048]
compute_seconds = time.perf_counter() - start
print("cached features", tuple(cached.shape))

# %% [markdown]
# The labels come from the captions: annotator 4 always names the background, annotator 0 the first
# shape's colour and kind.

# %%
from helpers.scenes import COLOURS, SHAPES

def label(caption: str, words) -> str:
    return next(w for w in caption.split() if w in words)


labels = pd.DataFrame({
    "background": [captions_of[p][4].split(" on a ")[1].split()[0] for p in sample],
    "colour": [label(captions_of[p][0], COLOURS) for p in sample],
    "shape": [label(captions_of[p][0], SHAPES) for p in sample],
})
labels.head(3)

# %% [markdown]
# We compare features by cosine similarity (1: pointing the same way, 0: unrelated), after subtracting the
# average feature vector, which all pictures share. The background covers most of the pixels, so it
# dominates: to see anything else we then compare only images **with the same background**, after
# subtracting that background's own average.

# %%
def similarities(features: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(features - features.mean(0), dim=1)
    return unit @ unit.T  # [N, N]


def mean_similarity(similarity, labels, among) -> tuple[float, float]:
    """Mean similarity of the pairs in ``among`` whose labels are equal, and of those whose labels differ."""
    same = torch.tensor(labels[:, None] == labels[None, :])
    return round(similarity[among & same].mean().item(), 2), round(similarity[among & ~same].mean().item(), 2)


background = labels.background.to_numpy()
pairs = ~torch.eye(len(sample), dtype=torch.bool)  # every pair of two different images
same_background = pairs & torch.tensor(background[:, None] == background[None, :])
within = cached.clone()
for name in set(background):
    within[background == name] -= within[background == name].mean(0)

rows = [("background", "all pairs", *mean_similarity(similarities(cached), background, pairs))]
for column in ("colour", "shape"):
    rows.append((column, "same background",
                 *mean_similarity(similarities(within), labels[column].to_numpy(), same_background)))
pd.DataFrame(rows, columns=["do they share the", "among", "similarity if same", "if different"])

# %% [markdown]
# With random weights:
#
# - the **background** decides almost everything (compare the first row's two numbers);
# - among pictures on the same background, sharing the first shape's **colour** makes them noticeably
#   more alike;
# - the **shape** kind (circle or triangle) shows even less: random filters mostly measure how much of which
#   colour and brightness there is, not outlines.
#
# A trained projection and LSTM can build on the first two, and get some of the rest from the layout, which
# is why the course can train on the shapes dataset offline. Telling a circle from a triangle, or a dog
# from a sofa, is exactly what the pretrained filters add.
#
# ### The Show and Tell encoder beside ours
#
# Show and Tell projects the pooled features as they come; this course standardises them first (section 6).
# Why? The random backbone's 2048 features move together: most of their spread lies along **one
# direction**, largely the background's brightness. The share of the variance along the first principal
# direction, for the raw features the Show and Tell projection reads, and for the standardised ones ours reads:

# %%
def first_direction_share(features: torch.Tensor) -> float:
    """Share of the total variance along the first principal direction of [N, D] features."""
    variances = torch.linalg.svdvals(features - features.mean(0)) ** 2
    return (variances[0] / variances.sum()).item()


standardised = (cached - cached.mean(0)) / cached.std(0).clamp_min(1e-5)  # what `standardize` computes
raw_share, standardised_share = first_direction_share(cached), first_direction_share(standardised)
print(f"raw features (Show and Tell):   {raw_share:.0%} of the variance along one direction")
print(f"standardised (the course's step): {standardised_share:.0%}")
assert standardised_share < raw_share

# %% [markdown]
# Standardising does not remove that direction, but it lowers its share, and it puts each feature on the
# same scale, so a gradient step on the projection moves all of them alike. What that changes for learning:
# we train the Show and Tell projection (`EncoderCNN(standardize=False)`) and ours, from the same starting
# weights, together with a small linear readout, to name the first shape's colour from the cached
# features of 96 of the images, for 30 steps of the same optimiser.

# %%
colours = sorted(set(labels.colour))
colour_ids = torch.tensor([colours.index(c) for c in labels.colour])


def colour_fit(standardize: bool, steps: int = 30) -> float:
    """Training loss after `steps` full-batch Adam steps on 96 cached features."""
    torch.manual_seed(0)  # the same starting weights for both encoders
    head = EncoderCNN(embed_size=300, weights="random", standardize=standardize).train()
    readout = nn.Linear(300, len(colours))
    trained = [*head.project.parameters(), *head.bn.parameters(), *readout.parameters()]
    optimiser = torch.optim.Adam(trained, lr=1e-3)
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.cross_entropy(readout(head.project_features(cached[:96])), colour_ids[:96])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return loss.item()


# %% tags=["nbval-ignore-output"]
show_tell_loss, ours_loss = colour_fit(standardize=False), colour_fit(standardize=True)
print(f"colour loss after 30 steps, Show and Tell's encoder: {show_tell_loss:.3f}")
print(f"colour loss after 30 steps, ours (standardised):      {ours_loss:.3f}  ({show_tell_loss / ours_loss:.1f}× lower)")
assert ours_loss < show_tell_loss

# %% [markdown]
# The same data, the same steps, and the standardised features are learnt from much faster (the printed
# ratio). Standardising is still our choice, not Show and Tell's, and can be switched off:
# `EncoderCNN(standardize=False)` builds the Show and Tell encoder, and for training,
# `TrainConfig(standardize=False)` or `python -m helpers train --no-standardize`.
#
# %% [markdown]
# ## 8. Caching: compute once, reuse every epoch
#
# With a frozen backbone (in eval mode!), an image gives exactly the same 2048 numbers in every epoch. An
# epoch over the shapes training set shows each of its 6 000 images five times (once per caption): 30 000
# backbone passes per epoch, all of them repeating work. Caching computes the 6 000 once, stores
# `[6000, 2048]` floats (48 MB), and every epoch after that runs only the projection and the decoder.
#
# We measure it: the backbone on a few batches (at 64 px, as the CPU course trains, and at Show and Tell's
# 224 px), against reading the same features back from a file.

# %%
import tempfile

cache_dir = tempfile.TemporaryDirectory()
cache_file = Path(cache_dir.name) / "features.pt"
torch.save(cached, cache_file)

start = time.perf_counter()
from_disk = torch.load(cache_file)
read_batches = [from_disk[i:i + 32] for i in range(0, len(from_disk), 32)]
read_seconds = time.perf_counter() - start

big = DataLoader(ImageFolderDataset(sample[:16], image_transform(224)), batch_size=8)
start = time.perf_counter()
for batch in big:
    random_encoder.backbone_features(batch)
compute_224_seconds = time.perf_counter() - start

# %% tags=["nbval-ignore-output"]
per_image_64 = compute_seconds / len(sample)
per_image_224 = compute_224_seconds / 16
per_image_cached = read_seconds / len(sample)
print(f"backbone at  64 px: {1 / per_image_64:8.1f} images/s")
print(f"backbone at 224 px: {1 / per_image_224:8.1f} images/s  ({per_image_224 / per_image_64:.1f}× slower than 64 px)")
print(f"cached features:    {1 / per_image_cached:8.0f} images/s  ({per_image_64 / per_image_cached:,.0f}× faster than 64 px)")
print(f"one epoch of 30 000 captions: {30_000 * per_image_64 / 60:.1f} min at 64 px, "
      f"{30_000 * per_image_224 / 60:.1f} min at 224 px, {30_000 * per_image_cached:.2f} s from the cache")
assert torch.equal(from_disk, cached) and len(read_batches) == 4

# %% [markdown]
# The exact numbers depend on your machine, but the order of magnitude does not: reading a row of 2048
# floats is hundreds to thousands of times cheaper (the printed ratio) than running 23 million parameters'
# worth of convolutions. The cache costs one pass over the images, which one epoch without a cache costs
# five times over.
#
# Caching is only correct while the backbone does not change: it needs the frozen backbone in eval mode
# (section 5), and the same weights and image size (a cache made at 64 px is wrong at 224 px). Fine-tuning
# `layer4` means running the backbone every batch again.

# %%
cache_dir.cleanup()

# %% tags=["nbval-ignore-output"]
from helpers.utils import run_time

print(f"this notebook ran in {run_time()} up to here (the solutions at the end not counted)")

# %% [markdown]
# ## Recap
#
# - ResNet50 = `conv1`, `bn1`, `relu`, `maxpool`, `layer1`–`layer4` (bottleneck stages: 56 → 7 px,
#   256 → 2048 channels), `avgpool`, `fc`: 25.6 M parameters, 23.5 M without `fc`.
# - `AdaptiveAvgPool2d` turns the `[2048, h, w]` maps of any input size into `[2048, 1, 1]`, so 224, 128
#   and 64 px inputs all give 2048 features.
# - `EncoderCNN` = ResNet50 without `fc` + standardise (the course's addition) + Linear(2048, 300),
#   BatchNorm1d, ReLU (Show and Tell's projection). We wrote it in full and checked that it gives the same
#   features, statistics and gradients as `helpers.models.EncoderCNN`, which the later notebooks import.
#   `EncoderCNN(standardize=False)` is the Show and Tell encoder; from the same start, ours learnt the colours
#   faster in section 7.
#   Its backbone is frozen **and** kept in eval mode by its `train()`, so BatchNorm statistics never drift
#   and an image's features never depend on its batch-mates. Only 615 300 parameters learn.
# - Pretrained weights change what the 2048 numbers mean, not their shape; random frozen features still
#   carry the background and, more faintly, the colours; shape kinds hardly show without pretraining.
# - A frozen backbone's features can be computed once and cached: training then reads `[N, 2048]` rows
#   instead of running ResNet50 again every epoch. The course's training code does exactly this
#   (`TrainConfig(train_backbone="none")`, the default; `helpers.features.cached_features`).
#
# ## Exercises
#
# 1. Which `layer` row of the table holds the most parameters? Compute what fraction of ResNet50's
#    parameters it holds, and explain why fine-tuning "only the last block" is still a big change.
# 2. Feed 32 × 32, 16 × 16 and 8 × 8 images through the stages of `stem_to_layer4` one by one. From which
#    size on is every stage's grid a single cell, why does nothing fail, and what can `layer4` still see
#    of where the shapes are?
# 3. Build `EncoderCNN(train_backbone="last")`. Count its trainable parameters and check which BatchNorm
#    layers are in train mode after `.train()`.
# 4. On Colab (with internet), rerun section 7 with `EncoderCNN(weights="imagenet")`. How do the
#    similarities for background, colour and shape change?
# 5. The cache in section 8 was made at 64 px. Write a check that refuses to use it for 224 px images
#    (hint: store the image size next to the features).
# 6. Run `colour_fit` of section 7 for 100 and 300 steps. Does the Show and Tell encoder catch up with ours?
#    Then train two captioners that differ only in `standardize` (notebook 05, or
#    `python -m helpers train --no-standardize`) and compare their colour accuracy.

# %% [markdown]
# ### Solutions
#
# Try each exercise before you open its solution: every solution cell below is collapsed (in JupyterLab,
# click the `…` to show it; on Colab, "Show code").

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 1
per_layer = {name: sum(p.numel() for p in layer.parameters()) for name, layer in resnet.named_children()}
biggest = max(per_layer, key=per_layer.get)
print(f"{biggest}: {per_layer[biggest]:,} parameters, {per_layer[biggest] / total:.0%} of ResNet50, "
      f"{per_layer[biggest] / (total - fc):.0%} of the backbone without fc")
# layer4 holds the most: fine-tuning "only the last block" trains most of the backbone's parameters,
# so it costs memory and needs data like training the whole network would.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 2
names = [name for name, _ in resnet.named_children()]  # stem_to_layer4 holds the first eight
for size in (32, 16, 8):
    x, grids = torch.zeros(1, 3, size, size), []
    for name, stage in zip(names, stem_to_layer4):
        x = stage(x)
        grids.append(f"{name} {x.shape[-1]}×{x.shape[-2]}")
    print(f"{size:>2} px: " + ", ".join(grids[4:]))
# At 32 px layer4's grid is one cell, at 16 px layer3's already is, at 8 px layer2's: padding keeps every
# convolution's output at least 1 × 1, so nothing fails. But one cell has no "where": the whole picture
# is squeezed into it before layer4, so position is lost, not only averaged away by the pool.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 3
last = EncoderCNN(embed_size=300, weights="random", train_backbone="last").train()
learns = sum(p.numel() for p in last.backbone.parameters() if p.requires_grad)
in_train = {name.split(".")[0] for name, module in last.backbone.named_modules()
            if isinstance(module, nn.BatchNorm2d) and module.training}
print(f"backbone parameters that learn: {learns:,} (layer4 has {per_layer['layer4']:,})")
print("children of the backbone with BatchNorm in train mode after .train():", sorted(in_train))
# Only layer4 (child 7 of the backbone) learns and has its BatchNorm layers in train mode; the frozen
# stages keep their running statistics (section 5 shows why).

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 4
if course_weights() == "imagenet":
    pretrained = EncoderCNN(embed_size=300, weights="imagenet").eval()
    features_in = torch.cat([pretrained.backbone_features(batch) for batch in loader])
    within_in = features_in.clone()
    for name in set(background):
        within_in[background == name] -= within_in[background == name].mean(0)
    for column in ("colour", "shape"):
        print(column, mean_similarity(similarities(within_in), labels[column].to_numpy(), same_background))
else:
    print("No ImageNet weights here (no internet): run this cell on Colab to compare.")
# With ImageNet filters, sharing a shape makes two pictures clearly more alike: outlines are what the
# pretrained filters detect, and what the random ones miss.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 5
def save_cache(features: torch.Tensor, image_size: int, path: Path) -> None:
    torch.save({"image_size": image_size, "features": features}, path)


def load_cache(path: Path, image_size: int) -> torch.Tensor:
    stored = torch.load(path)
    if stored["image_size"] != image_size:
        raise ValueError(f"{path}: features of {stored['image_size']} px images, asked for {image_size} px")
    return stored["features"]


with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "features.pt"
    save_cache(cached, 64, path)
    print("64 px:", tuple(load_cache(path, 64).shape))
    try:
        load_cache(path, 224)
    except ValueError as error:
        print("224 px:", str(error).replace(folder, "TMPDIR"))
# helpers.features does the same with a fingerprint of everything that changes the numbers.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# @title Solution to exercise 6
for steps in (30, 100, 300):
    show_tell_loss, ours_loss = colour_fit(standardize=False, steps=steps), colour_fit(standardize=True, steps=steps)
    print(f"{steps:>3} steps: Show and Tell {show_tell_loss:.3f}, ours {ours_loss:.3f}")
# With more steps the Show and Tell encoder catches up on these 96 images, so standardising mostly makes
# learning faster. The captioner comparison (python -m helpers train --no-standardize, then evaluate)
# takes two full trainings, a few minutes each: not run here.
