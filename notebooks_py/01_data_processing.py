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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/notebooks/01_data_processing.ipynb)
#
# # 01 · Data processing: from caption files to tensor batches
#
# A captioning model never sees files: it sees a batch of image tensors and a batch of padded word
# indices. This notebook walks every step between the two, on real files, printing what comes out.
#
# **You will learn to**
# - read a caption dataset in the Flickr8k layout with `load_captions`, and see what it keeps and what
#   it skips (and why);
# - look at images with their captions, and measure the captions with pandas: lengths, frequent words,
#   vocabulary size against a frequency threshold;
# - write the tokenizer, the vocabulary and the padding yourself, run them on every caption, and check
#   that they agree with the course's `helpers` versions;
# - turn one caption into tokens, indices and a padded batch;
# - turn one image into a normalised tensor `[3, 224, 224]`, and back into a picture;
# - name the `helpers` function behind each step of the data flow.
#
# **Prerequisites:** Python, pandas basics, what a PyTorch tensor is.
#
# **Run time:** about 5 s on a 2-core laptop CPU (its last cell before the exercises prints it), plus
# the very first time the drawing of the 8 000-image dataset. **GPU:** not needed, nothing here trains.

# %% tags=["colab-setup"]
import sys
if "google.colab" in sys.modules:  # on Colab only: install the course (locally it is installed already)
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/captioning-course/image-captioning-cnn-lstm@v0.1.0")  # noqa: F821

# %%
import pandas as pd

from helpers.utils import seed_everything

seed_everything(0)
pd.set_option("display.width", 110)
pd.set_option("display.max_colwidth", 80)

# %% [markdown]
# ## 1. The dataset on disk
#
# The course runs offline, so it draws its own dataset: 8 000 scenes of coloured shapes, each described
# by five "annotators" with their own habits, like the five captions per image of
# [Flickr8k](https://hockenmaier.cs.illinois.edu/8k-pictures.html). It is written in exactly the
# Flickr8k layout, so everything below works unchanged on the real thing (`data/README.md` says how to
# get it).
#
# `make_shapes` does nothing if the dataset is already there, so this cell is cheap after the first run.
# Paths are printed relative to the repository, so they read the same on every machine.

# %%
from helpers.scenes import make_shapes
from helpers.utils import course_root

ROOT = course_root()  # the course's folder, found from here upwards (on Colab: the current folder)
DATA = ROOT / "data" / "shapes"
make_shapes(DATA)
print("dataset:", DATA.relative_to(ROOT))

# %%
for entry in sorted(DATA.iterdir()):
    if entry.name.startswith("."):  # .complete.json: the settings it was made with
        continue
    if entry.is_dir():
        print(f"{entry.name + '/':<28}{len(list(entry.iterdir())):>7} image files")
    else:
        print(f"{entry.name:<28}{len(entry.read_text().splitlines()):>7} lines")

# %% [markdown]
# The captions sit in one text file, one caption per line: `image name#k`, a tab, the caption. Each image
# has five lines, `#0` to `#4`. (The image folder really is spelled `Flicker8k_Dataset` in the official
# archive.)

# %%
token_lines = (DATA / "Flickr8k.token.txt").read_text().splitlines()
for line in token_lines[:7]:
    print(line.replace("\t", "  <TAB>  "))

# %% [markdown]
# Three more files say which images belong to which split: one image name per line. We train on `train`,
# choose settings on `dev` and report results on `test`, so the test images are never seen in training.

# %%
for split in ("train", "dev", "test"):
    names = (DATA / f"Flickr_8k.{split}Images.txt").read_text().split()
    print(f"Flickr_8k.{split}Images.txt: {len(names):>5} images, first: {', '.join(names[:3])}")

# %% [markdown]
# ## 2. Reading it with `load_captions`
#
# `helpers.caption_files.load_captions(root)` looks at the file names to detect the format (Flickr8k, Kaggle's
# Flickr8k, COCO or Karpathy's splits), reads it, and returns three things: the format's name, one table
# with a row per caption, and the list of what it skipped. Reading 40 000 captions takes well under a
# second.

# %% tags=["nbval-ignore-output"]
import time

from helpers.caption_files import load_captions

start = time.perf_counter()
data = load_captions(DATA)
print(f"read {len(data.table)} captions in {time.perf_counter() - start:.2f} s")
assert data.format == "flickr8k" and len(data.table) == 40_000 and data.skipped == []

# %% [markdown]
# The table has exactly three columns. `image` holds the full path of the file; to keep the printout
# short we show only the file name.

# %%
from pathlib import Path

table = data.table
print("format: ", data.format)
print("columns:", list(table.columns))
print("skipped:", len(data.skipped))
table.assign(image=table["image"].map(lambda path: Path(path).name)).head(7)

# %% [markdown]
# `summarize` counts what was kept: images per split, captions per image, words per caption.

# %%
from helpers.caption_files import summarize

summary = summarize(data)
{key: summary[key] for key in ("images", "captions", "splits", "captions_per_image", "caption_words")}

# %% [markdown]
# ### What gets skipped, and why
#
# Real files have quirks: the official Flickr8k token file contains rows for `name.jpg.1` (duplicates of
# real images), downloads lose images, lines get mangled. A reader must neither crash on them nor drop
# them silently. Here is a tiny copy of our dataset with four such faults: one image file missing, one
# line repeated, one stray `.jpg.1` row and a line without a tab.

# %%
import shutil
import tempfile

names = (DATA / "Flickr_8k.trainImages.txt").read_text().split()[:3]
with tempfile.TemporaryDirectory() as folder:
    broken = Path(folder)
    (broken / "Flicker8k_Dataset").mkdir()
    for name in names[:2]:  # the third image file is "lost"
        shutil.copy(DATA / "Flicker8k_Dataset" / name, broken / "Flicker8k_Dataset")
    lines = [line for line in token_lines if line.split("#")[0] in names]
    lines += [lines[0], f"{names[0]}.1#0\ta stray duplicate row", "a line without any tab"]
    (broken / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    (broken / "Flickr_8k.trainImages.txt").write_text("\n".join(names) + "\n")
    small = load_captions(broken)

print(f"{len(small.table)} captions kept, from {small.table['image'].nunique()} images")
pd.DataFrame(small.skipped)

# %% [markdown]
# Every dropped row or image is listed with its reason. The same report is one command away for any
# dataset folder (section 8 runs it).

# %% [markdown]
# ## 3. Looking at the data
#
# Six images picked at random (with a fixed seed, so always the same six), each with two of its five
# captions. The annotators describe the same scene in different words: that variety is what the model
# has to learn to cope with.

# %%
from helpers.plots import show_examples

figure = show_examples(table, n=6, columns=3, captions_per_image=2, seed=0)

# %% [markdown]
# ## 4. Caption statistics with pandas
#
# How long are the captions, in words? To count words we need the tokenizer the model will use, so we
# write it now. It is one regular expression: a word is a run of letters or digits, and an apostrophe
# inside a word (`dog's`) stays part of it; everything else (spaces, punctuation) separates words. Text
# is lower-cased first, so `A` and `a` are the same word. It needs no downloaded data (nltk's tokenizers
# do).

# %%
import re

WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # letters/digits, optionally joined by inner apostrophes


def tokenize(text: str) -> list[str]:
    """A caption → its lower-case words, punctuation dropped."""
    return WORD.findall(text.lower())


print(tokenize("A dog's ball, (red)!"))
print(tokenize(table["caption"].iloc[0]))

# %% [markdown]
# `summarize` above split on spaces, so there a trailing ` .` or a `:` counted as a word; that is why
# its numbers are a little higher than these.

# %%
lengths = table["caption"].map(tokenize).str.len()
lengths.describe().round(2)

# %%
from helpers.plots import caption_length_histogram

figure = caption_length_histogram(lengths, title="Words per caption (all 40 000 captions)")

# %% [markdown]
# The peaks come from the annotators' habits: a lone shape gets short captions, two shapes long ones.
# The longest caption has 15 words, so with `<start>` and `<end>` no caption needs more than 17 steps.
#
# Which words are most frequent? We count on the **training** captions only: the vocabulary must not
# know words that only appear in dev or test, just as a deployed model cannot know tomorrow's words.

# %%
from collections import Counter

train = table[table["split"] == "train"]
counts = pd.Series(Counter(word for caption in train["caption"] for word in tokenize(caption)))
counts = counts.sort_index().sort_values(ascending=False, kind="stable")  # ties in alphabetical order
print(len(counts), "different words in", len(train), "training captions")
counts.head(12)

# %% [markdown]
# A vocabulary usually keeps only the words seen at least `min_freq` times; rarer words become `<unk>`.
# How big is the vocabulary (the 4 special tokens included) for each threshold, and which share of all
# word occurrences in the training captions does it still cover?

# %%
thresholds = [1, 5, 100, 1500, 2500, 5000, 10000]
pd.DataFrame(
    {
        "min_freq": thresholds,
        "vocabulary size": [4 + int((counts >= t).sum()) for t in thresholds],
        "words covered": [f"{counts[counts >= t].sum() / counts.sum():.1%}" for t in thresholds],
    }
)

# %% [markdown]
# On our shapes every word is frequent (the rarest appears over a thousand times), so any threshold up
# to 1 000 keeps them all. Real captions are different: many words appear only once or twice (names,
# typos, rare objects), so there the threshold shrinks the vocabulary a lot while covering almost the
# same share of the text — try it in the exercises.

# %% [markdown]
# ## 5. One caption → tokens → indices → a padded batch
#
# A `Vocabulary` is a two-way map between words and indices. We write it in full:
#
# - four **special tokens** come first: `<pad>` (0) fills the end of short captions in a batch,
#   `<start>` (1) and `<end>` (2) mark where a caption begins and ends, `<unk>` (3) stands for any word
#   the vocabulary does not hold;
# - `build` counts the words of the training captions and keeps those seen at least `min_freq` times,
#   most frequent first (ties alphabetically, so the same captions always give the same indices);
# - `encode` turns a caption into indices between `<start>` and `<end>`; `decode` turns indices back into
#   words, stopping at `<end>`.

# %%
from collections.abc import Iterable

SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")


class Vocabulary:
    def __init__(self, words: list[str]):
        self.itos = list(SPECIALS) + list(words)  # index → word
        self.stoi = {word: i for i, word in enumerate(self.itos)}  # word → index

    pad_id, start_id, end_id, unk_id = 0, 1, 2, 3

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 1) -> "Vocabulary":
        counts = Counter(word for caption in captions for word in tokenize(caption))
        kept = [word for word, count in counts.items() if count >= min_freq]
        return cls(sorted(kept, key=lambda word: (-counts[word], word)))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, caption: str) -> list[int]:
        words = [self.stoi.get(word, self.unk_id) for word in tokenize(caption)]
        return [self.start_id] + words + [self.end_id]

    def decode(self, ids: Iterable[int], strip_special: bool = True) -> list[str]:
        words = []
        for i in ids:
            word = self.itos[int(i)]
            if strip_special and word == "<end>":
                break
            if strip_special and word in ("<start>", "<pad>"):
                continue
            words.append(word)
        return words


# %%
vocab = Vocabulary.build(train["caption"], min_freq=1)
print("size:", len(vocab), "| first indices:", vocab.itos[:10])
assert len(vocab) == 4 + len(counts)

# %%
caption = table["caption"].iloc[1]
tokens = tokenize(caption)
ids = vocab.encode(caption)
print("caption:", repr(caption))
print("tokens: ", tokens)
print("indices:", ids)
print("back:   ", vocab.decode(ids))

# %% [markdown]
# `encode` adds `<start>` (1) and `<end>` (2): the decoder starts from `<start>` and learns to say when
# the caption is over with `<end>`. A word the vocabulary never saw becomes `<unk>` (3):

# %%
print(vocab.encode("a pink circle above a red square"))
print(vocab.decode(vocab.encode("a pink circle above a red square")))

# %% [markdown]
# Captions have different lengths, but a batch is one rectangular tensor. Padding fills the shorter
# ones with `<pad>` (0) and keeps the true lengths, so the model can ignore the padding later.

# %%
encoded = [vocab.encode(caption) for caption in table["caption"].iloc[:3]]
for row in encoded:
    print(len(row), row)

# %%
import torch


def pad_captions(captions: list[torch.Tensor], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tensors of different lengths → (padded [B, longest], lengths [B]), in the batch's order."""
    lengths = torch.tensor([len(caption) for caption in captions])
    padded = torch.full((len(captions), int(lengths.max())), pad_id, dtype=torch.long)
    for row, caption in enumerate(captions):
        padded[row, : len(caption)] = caption
    return padded, lengths


padded, lengths_batch = pad_captions([torch.tensor(row) for row in encoded])
print("padded:", tuple(padded.shape), padded.dtype)
print(padded)
print("lengths:", lengths_batch)

# %% [markdown]
# ### Check, then import
#
# The course's package holds the same three pieces: `helpers.vocabulary.tokenize`,
# `helpers.vocabulary.Vocabulary` and `helpers.data.pad_captions` (its `Vocabulary` can also be saved as
# JSON and loaded back, which a checkpoint needs). Ours must agree with them on the real data: the same
# words for every one of the 40 000 captions, the same vocabulary, the same indices, the same padded
# batch.

# %%
import helpers.data
import helpers.vocabulary

all_captions = table["caption"].tolist()
same_tokens = all(tokenize(c) == helpers.vocabulary.tokenize(c) for c in all_captions)
theirs = helpers.vocabulary.Vocabulary.build(train["caption"], min_freq=1)
same_vocabulary = vocab.itos == theirs.itos
for min_freq in (1500, 5000):  # a threshold that drops words, so <unk> appears
    mine_small = Vocabulary.build(train["caption"], min_freq=min_freq)
    theirs_small = helpers.vocabulary.Vocabulary.build(train["caption"], min_freq=min_freq)
    same_vocabulary &= mine_small.itos == theirs_small.itos
    same_vocabulary &= all(mine_small.encode(c) == theirs_small.encode(c) for c in all_captions[:2000])
same_codes = all(vocab.encode(c) == theirs.encode(c) for c in all_captions)
same_words = all(vocab.decode(padded[i]) == theirs.decode(padded[i]) for i in range(len(padded)))
rows_to_pad = [torch.tensor(vocab.encode(c)) for c in all_captions[:64]]
same_padding = all(torch.equal(a, b) for a, b in zip(pad_captions(rows_to_pad),
                                                       helpers.data.pad_captions(rows_to_pad)))
print("tokenize:     same words for all", len(all_captions), "captions:", same_tokens)
print("Vocabulary:   same words and indices (min_freq 1, 1500, 5000):", same_vocabulary)
print("encode/decode: same indices for every caption, same words back:", same_codes and same_words)
print("pad_captions: same padded batch and lengths for 64 captions:", same_padding)
assert same_tokens and same_vocabulary and same_codes and same_words and same_padding

# %% [markdown]
# From here on we use the package's versions, as every later notebook does:

# %%
from helpers.data import pad_captions
from helpers.vocabulary import Vocabulary, tokenize

vocab = Vocabulary.build(train["caption"], min_freq=1)
print(vocab)

# %% [markdown]
# ## 6. One image → a tensor
#
# `load_image` reads any image file as upright RGB (it also handles greyscale, transparent and CMYK
# files, and raises a clear `ImageLoadError` for a broken one). Our scenes are 128×128 pixels.

# %%
from helpers.data import load_image

path = table["image"].iloc[0]
image = load_image(path)
print(Path(path).name, "→ PIL image", image.size, image.mode)

# %% [markdown]
# `image_transform()` resizes to 224×224 (the size ResNet50 was trained on), turns pixels 0–255 into
# floats 0–1 with channels first, then normalises each channel with ImageNet's mean and standard
# deviation, the statistics the pretrained encoder expects. The values are no longer in [0, 1]:

# %%
from helpers.data import image_transform

transform = image_transform()
x = transform(image)
print("shape:", tuple(x.shape), x.dtype)
print(f"min {x.min().item():.3f}, max {x.max().item():.3f}")
print("mean per channel (R, G, B):", [round(v, 3) for v in x.mean(dim=(1, 2)).tolist()])

# %% [markdown]
# Shown directly, the normalised tensor looks wrong (negative values are clipped to black). `denormalize`
# undoes the normalisation: we use it whenever we want to look at what the model was given.

# %%
from helpers.plots import show_image_pipeline

figure = show_image_pipeline(image, x)

# %%
from helpers.data import denormalize

back = denormalize(x)
print(f"de-normalised: min {back.min().item():.3f}, max {back.max().item():.3f}")

# %% [markdown]
# ## 7. A batch from a `DataLoader`
#
# `CaptionDataset` pairs each caption row with its image; `collate_captions` stacks the images and pads
# the captions. Here are the first four training rows: the same image, described by four annotators.

# %%
from torch.utils.data import DataLoader

from helpers.data import CaptionDataset, collate_captions

rows = train.head(4)
dataset = CaptionDataset(rows["image"].tolist(), rows["caption"].tolist(), vocab, transform)
loader = DataLoader(dataset, batch_size=4, shuffle=False, collate_fn=collate_captions)
images, captions, caption_lengths = next(iter(loader))
print("images:  ", tuple(images.shape), images.dtype)
print("captions:", tuple(captions.shape), captions.dtype)
print("lengths: ", caption_lengths.tolist())

# %%
for row in captions:
    print(" ".join(vocab.decode(row, strip_special=False)))

# %% [markdown]
# That is what the encoder (notebook 03) and the decoder (notebook 04) receive.
#
# ## 8. The whole flow in one picture
#
# Every box names the helper that does the step. The diagram is drawn by `helpers.diagrams`, so it
# always matches the code; `python -m helpers diagrams` regenerates `assets/data_flow.png`.

# %%
from helpers.diagrams import data_flow_figure

figure = data_flow_figure()

# %% [markdown]
# The same check as section 2, from a terminal: `python -m helpers data stats --data DIR` reports any dataset
# folder (add `--json` for a machine-readable report). It exits with an error when nothing usable is
# left.

# %%
import subprocess
import sys

result = subprocess.run(
    [sys.executable, "-m", "helpers", "data", "stats", "data/shapes"], cwd=ROOT, capture_output=True, text=True
)
print(result.stdout)
print("exit code:", result.returncode)

# %% tags=["nbval-ignore-output"]
from helpers.utils import run_time

print(f"this notebook ran in {run_time()} up to here (the solutions at the end not counted)")

# %% [markdown]
# ## Recap
#
# | Step | Where it lives |
# |---|---|
# | draw the offline dataset in the Flickr8k layout | `helpers.scenes.make_shapes` |
# | detect the format, read captions into one table, report what is skipped | `helpers.caption_files.load_captions`, `summarize` |
# | caption → tokens → indices, and back (written here, checked equal) | `helpers.vocabulary.tokenize`, `Vocabulary.build / encode / decode` |
# | pad captions into a batch (written here, checked equal) | `helpers.data.pad_captions`, `collate_captions` |
# | image file → upright RGB → `[3, 224, 224]` normalised tensor, and back | `helpers.data.load_image`, `image_transform`, `denormalize` |
# | (image, caption) pairs for a `DataLoader` | `helpers.data.CaptionDataset` |
# | the figures of this notebook | `helpers.plots`, `helpers.diagrams.data_flow_figure` |
# | the same from a terminal | `python -m helpers data make-shapes --out DIR`, `data stats --data DIR` |
#
# We wrote the tokenizer, the vocabulary and the padding in full, checked that they give exactly what the
# package gives on all 40 000 captions, and then imported the package's versions. The vocabulary is built
# from the training split only; `<pad>` is 0, `<start>` 1, `<end>` 2, `<unk>` 3.
# A batch is `images [B, 3, 224, 224]`, `captions [B, T]` padded with 0, and `lengths [B]`.
#
# ## Exercises
#
# 1. Change `seed` in `show_examples` and read a few more captions. Which annotator habits can you spot
#    (sizes, "big"/"little", the background)?
# 2. Plot the caption lengths per split (`table.groupby("split")`). Are the splits alike? Why does that
#    matter for the test score?
# 3. Build the vocabulary with `min_freq=5000`. Encode a caption and decode it again: what became
#    `<unk>`? Would a model trained with this vocabulary still be useful?
# 4. If you have Flickr8k (see `data/README.md`), run `python -m helpers data stats --data data/flickr8k` and
#    redo the vocabulary-threshold table on it. How much smaller is the vocabulary at `min_freq=5`, and
#    how much of the text does it still cover?
# 5. `image_transform(112)` gives smaller tensors. What shape comes out, and how much less memory does a
#    batch of 64 images take?

# %% [markdown]
# ### Solutions
#
# Try each exercise before you open its solution: every solution cell below is collapsed (in JupyterLab,
# click the `…` to show it; on Colab, "Show code").

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 1
figure = show_examples(table, n=6, columns=3, captions_per_image=2, seed=1)
words = table["caption"].map(tokenize)
for habit in (["big", "large"], ["little", "small"], ["background"], ["picture"]):
    share = words.map(lambda caption, habit=habit: any(word in caption for word in habit)).mean()
    print(f"{' or '.join(habit):>14}: in {share:.0%} of the captions")
# Annotators say the same thing in different words ("big"/"large", "little"/"small") and some name the
# background while others do not: a model is scored against all five ways, never one.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 2
per_split = table.assign(words=lengths).groupby("split")["words"]
print(per_split.describe()[["count", "mean", "std", "min", "max"]].round(2))
axes = table.assign(words=lengths).boxplot(column="words", by="split", figsize=(5, 3))
_ = axes.set_ylabel("words per caption")
# The splits are alike (the same mean and spread): the test score measures the same kind of captions the
# model was trained on, so it says how well the model generalises to new images, not to a new style.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 3
rare = Vocabulary.build(train["caption"], min_freq=5000)
caption = train["caption"].iloc[0]
print(len(rare), "words:", rare.itos)
print(caption)
print(" ".join(rare.decode(rare.encode(caption))))
# Colours, shapes and sizes are frequent enough to stay; the rarer place words ("to", "left", "top")
# become <unk>. A model trained on it could still name the shapes but never say where they are.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 4
flickr8k = ROOT / "data" / "flickr8k"
if flickr8k.exists():
    command = [sys.executable, "-m", "helpers", "data", "stats", "--data", str(flickr8k)]
    print(subprocess.run(command, capture_output=True, text=True, check=False).stdout)
else:
    print("data/flickr8k is not here: this exercise needs Flickr8k (data/README.md says how to get it).")
# On real captions most words are rare, so min_freq=5 removes most of the vocabulary while the words
# it keeps still cover nearly all of the running text (run the table of section 4 on it to see).

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 5
small = image_transform(112)(image)
print("one image:", tuple(small.shape))
full_batch, small_batch = 64 * x.numel() * 4, 64 * small.numel() * 4  # float32: 4 bytes a number
print(f"a batch of 64: {full_batch / 2**20:.1f} MiB at 224 px, {small_batch / 2**20:.1f} MiB at 112 px")
# Halving the side quarters the pixels, so the batch takes a quarter of the memory.
