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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/captioning-course/image-captioning-cnn-lstm/blob/v0.1.0/notebooks/07_scaling_up.ipynb)
#
# # 07 · Scaling up: Flickr8k, COCO, ImageNet weights and several GPUs
#
# Everything so far ran offline, on drawn shapes. The same code trains on real photographs: this notebook
# shows what changes when the pictures are photographs and the captions are written by people, what to
# download, and the exact command lines for one GPU and for several. The parts that need the internet or
# a GPU are marked and switched off by two flags; everything else runs here, offline, in seconds.
#
# **You will learn to**
# - see what real captions change: many more words, longer and more varied sentences, a bigger output
#   layer, more training time;
# - download Flickr8k and COCO with `python -m helpers data download` (checksums, resuming and safe
#   unpacking are built in; the README's "Checksums and resuming" says how);
# - choose the encoder's weights (`--weights imagenet`; `COURSE_WEIGHTS=imagenet` for the notebooks), and
#   say why real photographs need ImageNet's;
# - train on one GPU or several with `torchrun`, resume, fine-tune, and evaluate on Flickr8k's test split;
# - read published BLEU-4 scores against ours (papers print ×100, our code prints 0–1).
#
# **Prerequisites:** notebooks 01–06 (the data, the model, training and decoding), and a terminal.
#
# **Run time:** about 15 s on a 2-core machine, all offline (most of it timing ResNet50 in section 4; on
# a busy machine the wall-clock time is longer). **GPU:** not needed for this notebook;
# the training it describes needs one (Colab's free GPU is enough for Flickr8k). The commands below were
# not run on Flickr8k or COCO (the datasets cannot be downloaded where this course is built), so this
# notebook shows no timings or scores of ours on them; the README's "How fast, and how well" has the
# course's GPU figures on the offline dataset (one H200).

# %% tags=["colab-setup"]
import sys
if "google.colab" in sys.modules:  # on Colab only: install the course (locally it is installed already)
    get_ipython().run_line_magic("pip", "install -q git+https://github.com/captioning-course/image-captioning-cnn-lstm@v0.1.0")  # noqa: F821

# %%
import pandas as pd

from helpers.scenes import make_shapes
from helpers.utils import course_root, seed_everything

seed_everything(0)
pd.set_option("display.width", 110)
pd.set_option("display.max_colwidth", 70)


ROOT = course_root()  # the course's folder, found from here upwards (on Colab: the current folder)
DATA = ROOT / "data" / "shapes"
make_shapes(DATA)
print("offline dataset:", DATA.relative_to(ROOT))

# %% [markdown]
# Two switches decide what really happens. Both are off, so the notebook runs anywhere in seconds, offline;
# the cells they guard print the command they would run instead.
# On Colab with a GPU runtime, set both to `True` and run the notebook from the top.

# %%
import shlex
import subprocess
import sys

import torch

from helpers.utils import stream_command

RUN_DOWNLOADS = False  # True: really download Flickr8k (about 1 GB) into data/flickr8k; needs the internet
RUN_TRAINING = False  # True: really train and evaluate on Flickr8k; needs a CUDA GPU and the download

# %% [markdown]
# Every command below goes through `shell`, which prints it and runs it only when its switch says so:

# %%
def shell(command: str, run: bool, why_not: str) -> None:
    """Print ``command``; run it from the repository root only when ``run`` is True.

    ``python`` and ``torchrun`` are replaced by this kernel's interpreter, so the command uses the
    environment the notebook runs in. Its output is copied into the notebook line by line as it comes
    (``helpers.utils.stream_command``): a child process's output would otherwise go to the terminal that
    started Jupyter, not to the cell.
    """
    print("$ " + command)
    if not run:
        print(f"  (not run: {why_not})")
        return
    program, *args = shlex.split(command)
    prefix = {"python": [sys.executable], "torchrun": [sys.executable, "-m", "torch.distributed.run"]}
    code = stream_command([*prefix[program], *args], cwd=ROOT)
    if code != 0:
        raise subprocess.CalledProcessError(code, command)


# %% [markdown]
# ## 1. The real datasets and where they come from
#
# `helpers.download.DATASETS` lists every file the course knows how to fetch: its official address, its
# checksum (an MD5 digest, a fingerprint of the exact bytes; for Karpathy's zip a SHA-256, the only one
# published for it) and, where a trusted source records it, its size.
# Flickr8k is two zips, about 8 000 photographs from Flickr with five captions each, written by paid
# annotators, and the official train/dev/test split (6 000/1 000/1 000 images). COCO 2017 is three zips:
# the captions (and other annotations), the 5 000 validation images, and the 118 287 training images.
# COCO 2014 (the same photographs, split differently) is what Karpathy's split names, with his
# `caption_datasets.zip` (section 3 says when to use which).

# %%
from helpers.download import DATASETS

rows = []
for dataset, archives in DATASETS.items():
    for archive in archives:
        rows.append({
            "dataset": dataset,
            "archive": archive.name,
            "size": f"{archive.size / 2**30:.2f} GiB" if archive.size else "not recorded",
            "checksum": f"MD5 {archive.md5[:12]}…" if archive.md5 else f"SHA-256 {archive.sha256[:12]}…",
            "unpacked into": archive.extract_to,
        })
print(pd.DataFrame(rows).to_string(index=False))

# %% [markdown]
# COCO's training images are 18 GiB, more than you want to fetch just to look around, so the COCO
# download takes two flags: `--annotations-only` (the captions alone) and `--val-only` (the captions and
# the 5 000 validation images). They map to `coco_selection`:

# %%
from helpers.download import coco_selection

for flags in ({"annotations_only": True}, {"val_only": True}, {}):
    print(f"{str(flags):30} → {sorted(coco_selection(**flags))}")

# %% [markdown]
# ## 2. Downloading
#
# One command per dataset, from the repository root (on Colab: the folder the notebook runs in). It
# downloads into `OUT/downloads/`, checks, unpacks into `OUT`, and prints the `data stats` command
# that checks the result:

# %%
why = "RUN_DOWNLOADS is False"
shell("python -m helpers data download flickr8k --out data/flickr8k", RUN_DOWNLOADS, why)
shell("python -m helpers data stats --data data/flickr8k --check-images", RUN_DOWNLOADS, why)

# %%
shell("python -m helpers data download coco2017 --out data/coco --annotations-only", False, "optional")
shell("python -m helpers data download coco2017 --out data/coco --val-only", False, "optional")
shell("python -m helpers data download coco2017 --out data/coco", False, "optional: 19 GiB")
shell("python -m helpers data download coco2014 --out data/coco2014 --val-only", False, "optional: 6.2 GiB")

# %% [markdown]
# The command resumes a download that broke off (run it again: it asks the server for the missing bytes
# only), checks each archive's checksum against `DATASETS` (a mismatch deletes the file and says so),
# refuses archive members that would land outside `OUT` or are links, and remembers what it has unpacked,
# so a second run costs nothing. Once an archive is unpacked it deletes it, if it downloaded it: COCO would
# otherwise take about twice its size on disk. The README's "Checksums and resuming" has the details and
# the flags (`--base-url` for a mirror, `--no-checksum`, `--keep-archives`); `tests/test_download.py`,
# `tests/test_transfer.py` and `tests/test_extract.py` show each behaviour against a web server on
# `127.0.0.1`.
#
# ## 3. What changes with real captions
#
# People describe photographs with far more words than our drawn annotators use. Here are real captions
# of three Flickr8k images and three COCO images, exactly as the files hold them (note the missing full
# stops, the trailing space, the lower-case start: real files are like that; the tokenizer of notebook 01
# copes with all of it).

# %%
FLICKR8K_CAPTIONS = [  # Flickr8k.token.txt, images 1000268201_693b08cb0e, 1001773457_577c3a7d70, 1002674143_1b742ab4b8
    "A child in a pink dress is climbing up a set of stairs in an entry way .",
    "A girl going into a wooden building .",
    "A little girl climbing into a wooden playhouse .",
    "A little girl climbing the stairs to her playhouse .",
    "A little girl in a pink dress going into a wooden cabin .",
    "A black dog and a spotted dog are fighting",
    "A black dog and a tri-colored dog playing with each other on the road .",
    "A black dog and a white dog with brown spots are staring at each other in the street .",
    "Two dogs of different breeds looking at each other on the road .",
    "Two dogs on pavement moving toward each other .",
    "A little girl covered in paint sits in front of a painted rainbow with her hands in a bowl .",
    "A little girl is sitting in front of a large painted rainbow .",
    "A small girl in the grass plays with fingerpaints in front of a white canvas with a rainbow on it .",
    "There is a girl with pigtails sitting in front of a rainbow painting .",
    "Young girl with pigtails painting outside in the grass .",
]

# %%
COCO_CAPTIONS = [  # captions_train2017.json (images 9 and 25) and captions_val2017.json (image 139)
    "Closeup of bins of food that include broccoli and bread.",
    "A meal is presented in brightly colored plastic trays.",
    "there are containers filled with different kinds of foods",
    "Colorful dishes holding meat, vegetables, fruit, and bread.",
    "A bunch of trays that have different food.",
    "A giraffe eating food from the top of the tree.",
    "A giraffe standing up nearby a tree ",
    "A giraffe mother with its baby in the forest.",
    "Two giraffes standing in a tree filled area.",
    "A giraffe standing next to a forest filled with trees.",
    "A woman stands in the dining area at the table.",
    "A room with chairs, a table, and a woman in it.",
    "A woman standing in a kitchen by a window",
    "A person standing at a table in a room.",
    "A living room with hard wood floors and wood furniture.",
]

# %% [markdown]
# We compare them with the shapes captions. The shapes dataset is complete (40 000 captions); the real
# samples have 15 captions each, so their own totals mean little. What does mean something is how fast
# new words appear: the **distinct words in the first 15 captions** of each, and the length of the
# sentences.

# %%
from helpers.caption_files import load_captions
from helpers.vocabulary import tokenize

shapes = load_captions(DATA)


def caption_stats(name: str, captions: list[str]) -> dict:
    """Caption counts, words per caption and distinct words (lower-cased, as tokenised)."""
    words = [tokenize(caption) for caption in captions]
    lengths = pd.Series([len(w) for w in words])
    return {
        "dataset": name,
        "captions": len(captions),
        "words/caption (mean)": round(lengths.mean(), 1),
        "longest": int(lengths.max()),
        "distinct words, all": len({w for ws in words for w in ws}),
        "distinct words, first 15": len({w for ws in words[:15] for w in ws}),
    }


comparison = pd.DataFrame([caption_stats("shapes (complete)", list(shapes.table["caption"])),
                           caption_stats("Flickr8k (3 images)", FLICKR8K_CAPTIONS),
                           caption_stats("COCO (3 images)", COCO_CAPTIONS)]).set_index("dataset")
print(comparison.to_string())

# %% [markdown]
# Fifteen real captions already use more distinct words than all 40 000 shapes captions together
# (compare the columns above): the shapes annotators know a few dozen words, people know thousands. On the real Flickr8k
# (run `python -m helpers data stats --data data/flickr8k` after downloading) you will find thousands of distinct
# words, most of them seen only a handful of times. Three things follow:
#
# - **The vocabulary is a choice.** With `min_freq` (notebook 01) rare words become `<unk>`; on real data
#   `min_freq=5` is common and keeps the output layer, the biggest layer of the decoder, to a few thousand
#   words. Its size is `hidden_size × V + V`:

# %%
from helpers.config import TrainConfig
from helpers.vocabulary import Vocabulary

shapes_vocab = Vocabulary.build(shapes.table.loc[shapes.table["split"] == "train", "caption"])
hidden = TrainConfig().hidden_size
for label, size in [("shapes (measured)", len(shapes_vocab)), ("a real vocabulary of 5 000 words", 5000)]:
    print(f"{label:34} V = {size:>5}: output layer {hidden} × V + V = {hidden * size + size:>9,} parameters")

# %% [markdown]
# - **Captions are longer and vary more.** `TrainConfig.max_words` (30) cuts the rare very long caption;
#   the decoder needs more epochs, and BLEU, which rewards matching word sequences, is far lower than on
#   shapes (section 8).
# - **Pictures are bigger and richer.** Training reads 224 px photographs instead of 64 px drawings, and
#   the encoder needs ImageNet's weights to tell a dog from a bench (section 5).
#
# **Where the captions come from.** COCO's captions come as JSON: a list of `images` (id, file name,
# size) and a list of `annotations` (image id, caption), about five per image, in
# `annotations/captions_{train,val}2017.json`; the pictures sit in `train2017/` and `val2017/`.
# `load_captions` reads it into the same table as Flickr8k. COCO publishes no captions for its test
# images, so the reader maps `train2017` → train and `val2017` → dev, and there is no test split. Papers
# report COCO scores on "Karpathy's split" (5 000 test images taken from val), which `load_captions`
# reads too (`dataset_coco.json`).
#
# Karpathy's split names COCO **2014** files (`val2014/COCO_val2014_….jpg`). COCO 2017 re-split the
# same photographs: `train2017` is `train2014` plus most of `val2014`, and Karpathy's val and test come
# from `val2014`. So a model trained on `train2017` has seen most of Karpathy's test images, and its
# "test" score measures memory, not captioning. Use one or the other: COCO 2014 with
# `dataset_coco.json` to compare with papers (`data download coco2014`, then
# `--data data/coco2014/dataset_coco.json`), or COCO 2017 with `--split dev` for learning.
#
# ## 4. Training time: where it goes
#
# With the frozen backbone (the default, `train_backbone="none"`), every image goes through ResNet50 **once**, and
# the epochs train the decoder on the stored features. That one pass is the expensive part. Here it is,
# measured on this machine's CPU (the fastest of three batches of 4 images), at the course's CPU size
# (64 px) and at the photograph size (224 px):

# %% tags=["nbval-ignore-output"]
import time

from helpers.models import EncoderCNN

backbone = EncoderCNN(weights="random").backbone.eval()
batches = {size: torch.randn(4, 3, size, size) for size in (64, 224)}
timings = {size: [] for size in batches}
with torch.no_grad():
    for size, batch in batches.items():
        backbone(batch)  # a first call allocates; time the next ones
    for _ in range(3):  # alternate the sizes, keep the fastest: other programs only ever slow a run down
        for size, batch in batches.items():
            start = time.perf_counter()
            backbone(batch)
            timings[size].append(time.perf_counter() - start)
seconds_per_image = {size: min(times) / 4 for size, times in timings.items()}
for size, seconds in seconds_per_image.items():
    print(f"{size:>3} px: {1000 * seconds:6.1f} ms per image on this CPU → "
          f"Flickr8k's 8 000 images once: {8000 * seconds / 60:5.1f} min, "
          f"COCO's 123 000: {123_000 * seconds / 3600:4.1f} h")

# %% [markdown]
# (Those numbers vary from machine to machine: the stored ones come from a shared 2-core machine that
# was busy with other work, so yours may well be smaller.)
# A GPU does this pass in a small fraction of the time, and then the decoder epochs are quick as well.
# `TrainConfig.for_device` picks the settings accordingly; on a GPU they depend on the encoder's weights
# (we name them here: left to `"auto"`, they would depend on this machine's network):

# %%
for device, weights in (("cpu", "auto"), ("cuda", "imagenet"), ("cuda", "random")):
    config = TrainConfig.for_device(device, **({} if device == "cpu" else {"weights": weights}))
    print(f"{device:>4} {'(' + weights + ' weights)' if device != 'cpu' else '':20}: image_size "
          f"{config.image_size:>3}, epochs {config.epochs}, batch_size {config.batch_size:>3}, mode {config.mode}")

# %% [markdown]
# The number of captions matters less than you might think: Flickr8k's training split has 6 000 images ×
# 5 captions, exactly as many captions per epoch as shapes. COCO's has about 118 000 × 5, twenty times
# more: that is where several GPUs pay off. `--fine-tune` (below) is the other big cost: images go
# through the backbone in every batch of every epoch, instead of once.
#
# ## 5. ImageNet weights
#
# There are two ways to pick the encoder's weights:
#
# - `weights="auto"`, the default of `EncoderCNN` and of `python -m helpers train`, takes ResNet50's
#   ImageNet weights when it can have them (already in torch's cache, or the download server answers
#   within seconds), and random weights otherwise, with one sentence saying so. Handy in a terminal, but
#   what it picks depends on the machine and its network.
# - The notebooks choose explicitly, with `course_weights()`: `"random"` unless the environment variable
#   `COURSE_WEIGHTS` says `"imagenet"`. So what they show is the same on every machine, and you switch
#   with one line, `%env COURSE_WEIGHTS=imagenet`, before running a notebook.
#
# What the notebooks use, and whether this machine already has the ImageNet file (so that `"auto"`
# would pick it without a download):

# %% tags=["nbval-ignore-output"]
from helpers.models import imagenet_weights_cached
from helpers.utils import course_weights

print("the notebooks use:", course_weights(), "weights")
print("ImageNet weights in torch's cache:", imagenet_weights_cached() or "no (auto would try to download them)")

# %% [markdown]
# Random frozen features were enough for coloured shapes (notebook 03). They are not for photographs:
# telling a dog from a bench is exactly what the ImageNet weights learned. On Colab the weights download
# by themselves (about 100 MB, once). To make sure a long run never starts without them, pass
# `--weights imagenet`: it then stops with an error instead of falling back to random weights. The run
# folder records which weights were used (`Encoder weights: ...` in the log, `weights` in the checkpoint).
#
# ## 6. Training: one GPU, several GPUs, resuming, fine-tuning
#
# **One GPU** (Colab: *Runtime → Change runtime type → GPU*): the same `train` command as in notebook 05,
# pointed at the real data. On a GPU with ImageNet weights it picks the settings printed in section 4
# (cached features at 224 px); without them it trains the whole backbone at 128 px, since frozen random
# filters cannot tell a dog from a bench. It also picks the precision the GPU runs fastest: bf16 from compute capability 8.0 (A100, L4, H100), fp16 with gradient scaling below
# that (Colab's T4); its first line says which. It keeps the last epoch (`checkpoint.pt`, for
# `--resume`) and the epoch with the best dev BLEU-4 (`best.pt`, which `caption` and `evaluate` use
# unless `--checkpoint last`). `--dropout 0.3` adds dropout to the decoder, and on real data the
# vocabulary keeps words seen at least 5 times (`--min-freq`; `data stats` prints the size it gives).
#
# On Colab the disk is wiped when a session ends: mount Google Drive first and keep the runs there, so
# that `--resume` works after a disconnect. The next cell does it on Colab when `RUN_TRAINING` is on
# (Colab then asks you to allow access to your Drive).

# %%
ON_DRIVE = "google.colab" in sys.modules and RUN_TRAINING  # Colab, and really training: keep runs on Drive
if ON_DRIVE:
    from google.colab import drive

    drive.mount("/content/drive")
RUNS = "/content/drive/MyDrive/runs" if ON_DRIVE else "runs"
print("runs go to", RUNS)

# %% tags=["nbval-ignore-output"]
print("CUDA GPUs here:", torch.cuda.device_count())

# %%
HAS_GPU = torch.cuda.is_available()
why = "RUN_TRAINING is False" if not RUN_TRAINING else "no CUDA GPU here"
train_now = RUN_TRAINING and HAS_GPU
# --resume: a rerun of this cell (say after a disconnect) continues the run instead of being refused
shell(f"python -m helpers train --data data/flickr8k --out {RUNS}/flickr8k --resume", train_now, why)

# %% [markdown]
# The checkpoint is written at the end of every epoch, atomically, so a run that is interrupted loses at
# most one epoch. A folder that already holds a run is refused unless you say `--resume` (continue it)
# or `--overwrite` (replace it). **Resume** reloads the configuration,
# vocabulary, weights, optimiser and schedule, and continues with the next epoch, with the same shuffles
# an uninterrupted run would have had. **Fine-tune** trains the backbone's last block (`--fine-tune`) or
# all of it (`--fine-tune all`), at a tenth of the learning rate; start it in a new run folder.

# %%
shell(f"python -m helpers train --data data/flickr8k --out {RUNS}/flickr8k --resume --epochs 20", False,
      "optional: five more epochs for a finished run")
shell(f"python -m helpers train --data data/flickr8k --out {RUNS}/flickr8k-ft --fine-tune --epochs 5",
      False, "optional, slower: the backbone runs in every batch (batches of 256 captions on a GPU; if memory "
      "runs out, the message names --batch-size)")

# %% [markdown]
# **Several GPUs** on one machine: start the same module with `torchrun`, one process per GPU. Each
# process takes its share of every epoch (every N-th caption of the same shuffle), and
# `DistributedDataParallel` averages their gradients after each batch, so with N GPUs an epoch has N times
# fewer steps of `batch_size` captions each (the effective batch is N × `batch_size`). Only **rank 0**
# computes the feature cache (the others wait, then read it), validates on the dev split, prints, and
# writes the checkpoint, `history.csv` and the rest of the run folder; so the output is the same run
# folder as with one GPU, and `--resume` works the same way. `tests/test_cli_model.py` checks this with
# two CPU processes.

# %%
why = "needs several CUDA GPUs"
shell("torchrun --nproc_per_node 4 -m helpers train --data data/flickr8k --out runs/flickr8k", False, why)
shell("torchrun --nproc_per_node 4 -m helpers train --data data/coco --out runs/coco", False, why)
shell("torchrun --nproc_per_node 4 -m helpers train --data data/coco --out runs/coco --resume", False, why)

# %% [markdown]
# Use as many processes as you have GPUs (`--nproc_per_node $(nvidia-smi -L | wc -l)`). COCO with
# `--val-only` has no training images: train on the full download, or on Karpathy's split. While rank 0
# computes COCO's features the others wait, up to `--dist-timeout` minutes (60 by default).
#
# ## 7. Evaluating on the official test split
#
# Flickr8k's 1 000 test images were never seen in training or used to choose settings. Score the run on
# them, without teacher forcing, with beam search (notebook 06):

# %%
shell("python -m helpers evaluate --run runs/flickr8k --data data/flickr8k --split test --beam 3",
      train_now, "RUN_TRAINING is False" if not RUN_TRAINING else "no CUDA GPU here")

# %% [markdown]
# It prints BLEU-1 to BLEU-4 on our 0–1 scale and, in brackets, ×100, the scale papers print.
# `as_percent` does the conversion; forgetting it is the most common way to "beat" a paper by a factor of
# a hundred, or to despair over a score of 0.2:

# %%
from helpers.metrics import as_percent

print(as_percent({"bleu1": 0.62, "bleu4": 0.195}))

# %% [markdown]
# ## 8. What good looks like
#
# Published BLEU-4 scores (×100) of the two classic models, as the papers print them. Show and Tell is the
# architecture this course builds (a CNN's features start an LSTM); Show, Attend and Tell adds attention
# over image regions. Sources: O. Vinyals, A. Toshev, S. Bengio, D. Erhan, *Show and Tell: A Neural Image
# Caption Generator*, CVPR 2015 ([arXiv:1411.4555](https://arxiv.org/abs/1411.4555)), its COCO table;
# K. Xu et al., *Show, Attend and Tell: Neural Image Caption Generation with Visual Attention*, ICML 2015
# ([arXiv:1502.03044](https://arxiv.org/abs/1502.03044)), Table 1.
#
# | Model | Flickr8k BLEU-4 | COCO BLEU-4 |
# |---|---|---|
# | Show and Tell (Vinyals et al., 2015) | — (the paper reports BLEU-1 on Flickr8k) | 27.7 |
# | Show, Attend and Tell, soft attention (Xu et al., 2015) | 19.5 | 24.3 |
# | Show, Attend and Tell, hard attention (Xu et al., 2015) | 21.3 | 25.0 |
#
# Read them as landmarks, not targets: the papers used other CNNs (GoogLeNet, VGG), their own COCO test
# images, tokenisation and BLEU scripts, and tuned them at length. Our model has no attention, so expect
# it below the attention rows; a Flickr8k test BLEU-4 within a few points of them means it does what
# these models do, and a score near zero means something is wrong (often: random encoder weights). We
# have not run it: the datasets cannot be downloaded where this course is built, so there is no score of
# ours in this table.

# %%
reference = pd.DataFrame(
    {"Flickr8k": [None, 19.5, 21.3], "COCO": [27.7, 24.3, 25.0]},
    index=["Show and Tell", "Show, Attend and Tell (soft)", "Show, Attend and Tell (hard)"],
)
print("BLEU-4 ×100 as published:\n" + reference.to_string(na_rep="—"))
print("\nthe same on our 0–1 scale:\n" + (reference / 100).to_string(na_rep="—"))

# %% tags=["nbval-ignore-output"]
from helpers.utils import run_time

print(f"this notebook ran in {run_time()} up to here (the solutions at the end not counted)")

# %% [markdown]
# ## Recap
#
# | Step | Where it lives |
# |---|---|
# | the files of Flickr8k and COCO 2017, with checksums and sizes | `helpers.download.DATASETS`, `coco_selection` |
# | download with resume and checksums, unpack safely, skip what is done | `helpers.download.fetch_dataset` (`helpers.transfer.download`, `helpers.extract.safe_extract`); README "Checksums and resuming" |
# | the same from a terminal | `python -m helpers data download flickr8k / coco2017 / coco2014 --out ... [--annotations-only / --val-only]` |
# | read Flickr8k, COCO (and Kaggle's and Karpathy's) files into one table | `helpers.caption_files.load_captions`; `python -m helpers data stats` |
# | what real captions change: words, lengths, the output layer's size | `helpers.vocabulary.tokenize`, `Vocabulary`; `--min-freq` |
# | ImageNet or random weights, chosen and reported | `COURSE_WEIGHTS` (`helpers.utils.course_weights`) in the notebooks; `train --weights` |
# | settings for CPU or GPU | `helpers.config.TrainConfig.for_device` |
# | train on one GPU or several, resume, fine-tune | `python -m helpers train` (`--resume`, `--fine-tune`); `torchrun --nproc_per_node N -m helpers train` |
# | BLEU on the test split, ×100 as papers print it | `python -m helpers evaluate --split test --beam 3`; `helpers.metrics.as_percent` |
# | precision by GPU, best and last checkpoints, vocabulary threshold | `helpers.precision.training_precision`; `best.pt`, `--checkpoint`; `--min-freq` |
# | a child's output, line by line as it comes | `helpers.utils.stream_command` |
#
# Nothing in the model or the training loop changed between shapes and photographs: only the data, the
# image size, the weights and the number of processes.
#
# ## Exercises
#
# 1. Extend `caption_stats` with the share of words seen only once. Compare shapes and the two real
#    samples; on the real Flickr8k, which `min_freq` keeps 95 % of the running text?
# 2. Add the five captions of another photograph you know (in your own words) to `FLICKR8K_CAPTIONS`.
#    How many of your words are new to the table's "distinct words"?
# 3. With a vocabulary of 8 000 words instead of 5 000, how many parameters does the output layer have,
#    and what share of the decoder is that (embedding `V × 300`, LSTM `4 × 512 × (300 + 512 + 2)`)?
# 4. On Colab with a GPU: set both switches to `True`, run the notebook, and compare your test BLEU-4 ×100
#    with the table. Then interrupt a run and continue it with `--resume`: is `history.csv` seamless?
# 5. With COCO's annotations only (`--annotations-only`), count the captions per image and the words per
#    caption with `python -m helpers data stats --data data/coco`. Why does it report no usable images?

# %% [markdown]
# ### Solutions
#
# Try each exercise before you open its solution: every solution cell below is collapsed (in JupyterLab,
# click the `…` to show it; on Colab, "Show code").

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 1
from collections import Counter


def seen_once(captions: list[str]) -> float:
    """The share of distinct words that occur exactly once."""
    counts = Counter(word for caption in captions for word in tokenize(caption))
    return sum(count == 1 for count in counts.values()) / len(counts)


for name, captions in (("shapes (complete)", list(shapes.table["caption"])),
                       ("Flickr8k (3 images)", FLICKR8K_CAPTIONS), ("COCO (3 images)", COCO_CAPTIONS)):
    print(f"{name:>20}: {seen_once(captions):.0%} of the distinct words are seen once")
# No shapes word is rare, while most words of the real samples occur once. The min_freq that keeps 95 %
# of Flickr8k's running text needs the full set: the table of notebook 01's section 4 on data/flickr8k.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 2
mine = [  # one example: a photograph of a harbour, described five ways
    "A red fishing boat is tied up in a small harbour .",
    "Boats float in calm water beside a stone wall .",
    "A fishing boat with nets on its deck in a harbour .",
    "Seagulls sit on the wall of a harbour full of boats .",
    "A small red boat floats near the quay .",
]
known = {word for caption in FLICKR8K_CAPTIONS for word in tokenize(caption)}
new = sorted({word for caption in mine for word in tokenize(caption)} - known)
print(f"{len(new)} new words:", new)
# Most content words of a new photograph are new: real vocabularies keep growing with every image.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 3
V_big, E_size, H_size = 8_000, 300, 512
output_layer = H_size * V_big + V_big
embedding = V_big * E_size
lstm = 4 * H_size * (E_size + H_size + 2)
print(f"output layer {output_layer:,}, embedding {embedding:,}, LSTM {lstm:,}")
print(f"the output layer is {output_layer / (output_layer + embedding + lstm):.0%} of the decoder")
# The output layer alone is about half of the decoder; with the embedding, the parts that grow with V are
# most of it, while the LSTM does not depend on V at all.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 4
if RUN_TRAINING and HAS_GPU:
    print("Compare the test BLEU-4 ×100 printed in section 7 with the table of section 8.")
else:
    reason = "RUN_TRAINING is False" if not RUN_TRAINING else "no CUDA GPU here"
    print(f"Not run here ({reason}): this exercise needs Colab with a GPU and the Flickr8k download.")
# A resumed run appends to history.csv: its epochs continue from the last saved one, with no gap and no
# repeat, because checkpoint.pt holds the epoch, the optimizer, the schedule and the random state.

# %% cellView="form" jupyter={"source_hidden": true} tags=["solution"]
# @title Solution to exercise 5
import json
import tempfile
from pathlib import Path

with tempfile.TemporaryDirectory() as folder:  # COCO's layout, with the three images' captions above
    (Path(folder) / "annotations").mkdir()
    images = [{"id": i, "file_name": f"{i:012d}.jpg"} for i in (9, 25, 139)]
    notes = [{"id": n, "image_id": (9, 25, 139)[n // 5], "caption": c} for n, c in enumerate(COCO_CAPTIONS)]
    text = json.dumps({"images": images, "annotations": notes})
    (Path(folder) / "annotations" / "captions_val2017.json").write_text(text, encoding="utf-8")
    command = [sys.executable, "-m", "helpers", "data", "stats", "--data", folder]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    print((result.stdout + result.stderr).replace(folder, "data/coco"))
per_image = Counter(note["image_id"] for note in notes)
print("from the JSON itself: captions per image", dict(per_image), "| words per caption (mean)",
      round(sum(len(tokenize(note["caption"])) for note in notes) / len(notes), 1))
# The annotations name every image, but none was downloaded, so each one is skipped as missing and its
# captions with it: `stats` describes what can be trained on. The captions themselves are in the JSON.
