"""The command line: ``python -m helpers COMMAND ...``, its parser and :func:`main`.

:func:`build_parser` is plain argparse: one subparser per command (``data make-shapes``, ``data stats``,
``data download``, ``diagrams``, ``train``, ``caption``, ``evaluate``), each with its arguments and the
function of :mod:`helpers.commands` that runs it, ``args → exit code``. Folders are named the same way in
every command: ``--data`` the dataset it reads, ``--run`` the run it reads, ``--out`` the folder it writes.

Exit codes: 0 the command did its job; 1 it ran but the result is not usable (e.g. a dataset with no
images left); 2 it could not run: bad arguments, or a ``ValueError``/``OSError`` from the helpers, which
:func:`run_command` turns into one line ``error: ...`` on stderr instead of a traceback.

This module imports neither torch nor pandas (the commands import them when they run), so ``--help`` is
quick.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from helpers import commands
from helpers.commands import fail
from helpers.presets import DEVICE_PRESETS

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit code."""
    args = build_parser().parse_args(argv)
    return run_command(args.handler, args)


def run_command(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call ``run(args)``; a ``ValueError`` or ``OSError`` becomes ``error: ...`` on stderr and exit 2.

    These are the errors the helpers raise for bad input (``DatasetFormatError``, ``ImageLoadError``, a
    missing file), so the message is meant for the user; anything else is a bug and keeps its traceback.
    """
    try:
        return run(args)
    except (ValueError, OSError) as error:
        return fail(str(error))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m helpers`` parser: a subparser per command, its handler in ``args.handler``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers",
        description="Command line of the course 'Image Captioning with CNN & LSTM'.",
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(subparsers, name: str, help: str, handler) -> argparse.ArgumentParser:
        command = subparsers.add_parser(name, help=help, description=help)
        command.set_defaults(handler=handler)
        return command

    _caption_arguments(add(top, "caption", "caption image files with a trained run", commands.caption))
    _data_commands(top, add)
    _diagrams_arguments(add(top, "diagrams", "regenerate every course diagram as a PNG", commands.diagrams))
    _evaluate_arguments(
        add(
            top,
            "evaluate",
            "BLEU-1…4 of a trained run on a split, and each attribute's accuracy where the dataset has truth",
            commands.evaluate,
        )
    )
    _diagnose_arguments(
        add(
            top,
            "diagnose",
            "failure checks of a trained run on a split: one caption for every image? the image ignored?",
            commands.diagnose,
        )
    )
    train = add(top, "train", "train the captioning model on a dataset", commands.train)
    _train_arguments(train)
    _train_model_arguments(train)
    return parser


def _data_commands(top, add) -> None:
    """``data download``, ``data make-shapes`` and ``data stats``, under ``top``'s ``data`` command."""
    data = top.add_parser("data", help="make, inspect and check caption datasets").add_subparsers(
        dest="subcommand", metavar="COMMAND", required=True
    )
    _download_arguments(
        add(
            data,
            "download",
            "download and extract Flickr8k, COCO 2017 or COCO 2014 with Karpathy's split",
            commands.download,
        )
    )
    _make_shapes_arguments(
        add(
            data,
            "make-shapes",
            "draw the offline shapes dataset in the Flickr8k layout (reused if already complete)",
            commands.make_shapes,
        )
    )
    _stats_arguments(
        add(
            data,
            "stats",
            "read a caption dataset, report what is usable and what was skipped and why",
            commands.stats,
        )
    )


def device_name(value: str) -> str:
    """``--device``'s check, as argparse ``type``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    A typo (``gpu``) is a usage error (exit 2) before anything is imported; a device this machine lacks
    is one ``error:`` line (exit 2) when the command starts (:func:`helpers.utils.get_device`).
    """
    if value in DEVICES or re.fullmatch(r"cuda:\d+", value):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(DEVICES)})")


def _make_shapes_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="where to write the dataset, e.g. data/shapes"
    )
    parser.add_argument(
        "--images", type=int, default=8000, help="number of scenes, 3 or more (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if a complete set is there, or write into a non-empty folder next to what is "
        "there; it never deletes or overwrites a file it did not write",
    )


def _stats_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="DIR",
        help="dataset root (Flickr8k, Kaggle Flickr8k, COCO or Karpathy)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--examples", type=int, default=3, help="skipped items shown per reason (default: %(default)s)"
    )
    parser.add_argument(
        "--check-images",
        action="store_true",
        help="decode every image (in parallel) and name the broken ones; remembered in DATA/.cache",
    )
    parser.add_argument(
        "--min-freq",
        type=int,
        help="vocabulary threshold to report the size for (default: train's, 5 on real data, 1 on shapes)",
    )


def _download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        choices=["flickr8k", "coco2017", "coco2014"],
        help="which dataset (coco2014: the images Karpathy's split names, with his caption files)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder to download and extract into, e.g. data/flickr8k",
    )
    parser.add_argument(
        "--base-url", help="a mirror holding the same file names, instead of the official one"
    )
    parser.add_argument(
        "--no-checksum", action="store_true", help="skip MD5, SHA-256 and size checks (for private mirrors)"
    )
    parser.add_argument(
        "--annotations-only", action="store_true", help="COCO: only the captions (about 250 MB)"
    )
    parser.add_argument(
        "--val-only", action="store_true", help="COCO: captions and val images (val2017/val2014), no train"
    )
    from helpers.download import KEEP_ARCHIVES_HELP

    parser.add_argument("--keep-archives", action="store_true", help=KEEP_ARCHIVES_HELP)


def _diagrams_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the PNGs (default: assets/ in the repository); a file of the same name that "
        "this command did not write is never replaced",
    )


def _default(key: str) -> str:
    """The defaults of a ``train`` option, per device, as its help says them (:mod:`helpers.presets`)."""
    cpu, gpu, random = (DEVICE_PRESETS[name][key] for name in ("cpu", "gpu", "gpu-random"))
    without = "" if random == gpu else f" ({random} without ImageNet weights)"
    return f"default: {cpu} on a CPU, {gpu} on a GPU{without}"


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    """``train``'s folders, length, device and what happens to a run already in ``--out``."""
    parser.add_argument("--data", type=Path, required=True, help="dataset root (any supported format)")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run folder: checkpoint, vocabulary, history. One that holds a run is refused, "
        "unless --resume or --overwrite",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"number of epochs ({_default('epochs')}). With --resume, more epochs continue the run: "
        "the learning rate then follows the one-cycle schedule of a run of that many epochs from where "
        "it stopped",
    )
    parser.add_argument(
        "--device",
        default="auto",
        type=device_name,
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps",
    )
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last completed epoch, with its saved configuration: of the "
        "other flags only --epochs and --workers are taken, the others are named as ignored",
    )
    existing.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (its checkpoint.pt, best.pt, vocab.json, config.json and history.csv; "
        "nothing else)",
    )
    parser.add_argument(
        "--fine-tune",
        nargs="?",
        const="last",
        choices=["last", "all", "none"],
        help="train the backbone too: its last block (default) or all of it, instead of cached features; "
        "none: cached features of the frozen backbone. The default on a GPU without ImageNet weights "
        "(frozen random features do not tell shapes apart): all; otherwise none",
    )


def _train_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``train``'s settings of the model and the optimisation (:class:`helpers.config.TrainConfig`)."""
    attention = DEVICE_PRESETS["cpu-attention"]
    parser.add_argument(
        "--decoder",
        choices=["show-tell", "attention"],
        help="show-tell (default): the pooled features start the LSTM; attention: a cached grid of a "
        "frozen ResNet50 stage, a trained adapter, and a map over the grid for every word, with its own "
        f"preset ({attention['epochs']} epochs, {attention['image_size']} px, {attention['stage']}, batches "
        f"of {attention['batch_size']} captions, lr {attention['lr']}; the flags below change it)",
    )
    parser.add_argument(
        "--stage",
        choices=["layer1", "layer2", "layer3", "layer4"],
        help=f"attention: the ResNet50 stage whose grid is cached (default: {attention['stage']})",
    )
    parser.add_argument(
        "--penalty",
        type=float,
        help=f"attention: λ of the doubly stochastic regulariser (default: {attention['penalty']})",
    )
    parser.add_argument("--image-size", type=int, help=f"input size in pixels ({_default('image_size')})")
    parser.add_argument("--batch-size", type=int, help=f"captions per batch ({_default('batch_size')})")
    parser.add_argument(
        "--lr", type=float, help=f"peak learning rate of the one-cycle schedule ({_default('lr')})"
    )
    parser.add_argument("--hidden-size", type=int, help=f"LSTM hidden size ({_default('hidden_size')})")
    parser.add_argument("--weights", choices=["auto", "imagenet", "random"], help="encoder weights")
    parser.add_argument("--workers", type=int, help="DataLoader worker processes")
    parser.add_argument(
        "--min-freq",
        type=int,
        help="keep words seen at least this often in the train captions (default: 5, or 1 on the shapes set)",
    )
    parser.add_argument("--dropout", type=float, help="dropout in the decoder, 0 to <1 (default: 0)")
    parser.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        default=None,
        help="feed the pooled backbone features to the projection as they are, without standardising "
        "each of them first (the default standardises: see helpers.models.EncoderCNN)",
    )
    parser.add_argument(
        "--dist-timeout",
        type=float,
        default=60.0,
        help="torchrun: minutes a process waits for the others, e.g. for rank 0's features (default: 60)",
    )
    parser.add_argument("--seed", type=int, help="random seed of the weights and the shuffles (default: 0)")


def _caption_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="run folder written by 'train'")
    parser.add_argument("images", nargs="+", type=Path, help="image files to caption")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy, the default)")
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda, cuda:N or mps")
    _checkpoint_argument(parser)


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="run folder written by 'train'")
    parser.add_argument("--data", type=Path, required=True, help="dataset root")
    parser.add_argument(
        "--split", default="test", choices=["train", "dev", "test"], help="default: %(default)s"
    )
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy, the default)")
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="also score the best image-blind caption (chosen on dev) and the human references",
    )
    _checkpoint_argument(parser)


def _diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="run folder written by 'train'")
    parser.add_argument("--data", type=Path, required=True, help="dataset root")
    parser.add_argument(
        "--split", default="test", choices=["train", "dev", "test"], help="default: %(default)s"
    )
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy, the default)")
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    _checkpoint_argument(parser)


def _checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        choices=["best", "last"],
        default="best",
        help="best: the epoch with the best dev BLEU-4 (default); last: the last epoch",
    )
