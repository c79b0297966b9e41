"""The command line: ``python -m helpers GROUP COMMAND ...``.

Every command is a function ``args → exit code`` registered with :func:`command`, which also says how to
add its arguments. Commands with a space in their name (``"data stats"``) live in a group (``data``); a
new command is one decorated function, nothing else to wire up::

    def _train_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("data_dir", type=Path)

    @command("train", help="train the captioning model", arguments=_train_arguments)
    def train_command(args: argparse.Namespace) -> int:
        ...
        return 0

Exit codes: 0 the command did its job; 1 it ran but the result is not usable (e.g. a dataset with no
images left); 2 it could not run: bad arguments, or a ``ValueError``/``OSError`` from the helpers, which
:func:`run_command` turns into one line ``error: ...`` on stderr instead of a traceback.

Imports of the heavy modules (torch, matplotlib) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], None]

EXIT_OK, EXIT_UNUSABLE, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Command:
    """One registered command: its full name (``"data stats"``), help line, arguments and handler."""

    name: str
    help: str
    arguments: Arguments | None
    run: Handler


COMMANDS: dict[str, Command] = {}
GROUPS: dict[str, str] = {"data": "make, inspect and check caption datasets"}


def command(name: str, *, help: str, arguments: Arguments | None = None) -> Callable[[Handler], Handler]:
    """Register the decorated ``args → exit code`` function as the command ``name``.

    ``name`` is one word (``"train"``) or a group and a word (``"data stats"``); a group that is not in
    :data:`GROUPS` yet is created with an empty help line. ``arguments(parser)`` adds the command's
    arguments to its own subparser.
    """
    if name in COMMANDS:
        raise ValueError(f"command {name!r} is registered twice")
    if len(name.split()) not in (1, 2):
        raise ValueError(f"command name {name!r} must be 'command' or 'group command'")

    def register(run: Handler) -> Handler:
        COMMANDS[name] = Command(name, help, arguments, run)
        return run

    return register


def run_command(run: Handler, args: argparse.Namespace) -> int:
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


def fail(message: str, code: int = EXIT_ERROR) -> int:
    """Print ``error: message`` as one line on stderr and return ``code``, for ``return fail(...)``."""
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return code


class CommandParser(argparse.ArgumentParser):
    """A command's parser that also accepts old spellings of its folder options (:func:`folder_option`).

    Each option may be typed under its name or an old spelling, hidden from ``--help``; after parsing,
    the one value given lands under the option's name, two different ones are a usage error, and a
    required option given under neither is one too (exit 2).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # option's dest → (its flag, required, [(an old spelling's dest, its flag or "" for a positional)])
        self.spellings: dict[str, tuple[str, bool, list[tuple[str, str]]]] = {}

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        for dest, (flag, required, old) in self.spellings.items():
            given = [(flag, getattr(namespace, dest))] if getattr(namespace, dest) is not None else []
            for old_dest, typed in old:
                value = getattr(namespace, old_dest)
                delattr(namespace, old_dest)
                if value is not None:
                    given.append((typed, value))
            if len({value for _, value in given}) > 1:
                named = " and ".join(f"{typed} {value}".strip() for typed, value in given)
                self.error(f"{named} name different folders: give one, with {flag}")
            if given:
                setattr(namespace, dest, given[0][1])
            elif required:
                self.error(f"the following arguments are required: {flag}")
        return namespace, extras


def folder_option(
    parser: argparse.ArgumentParser, flag: str, *old: str, help: str, required: bool = True
) -> None:
    """Add the folder option ``flag`` (``--data``, ``--out``) and its ``old`` spellings, still accepted.

    An old spelling is a flag (``--dest``) or, written without dashes (``DIR``), the positional argument
    the option used to be; neither shows in ``--help``. ``parser`` must be a :class:`CommandParser`.
    """
    dest = flag.lstrip("-").replace("-", "_")
    parser.add_argument(flag, type=Path, metavar="DIR", help=help + ("; required" if required else ""))
    spellings = []
    for number, spelling in enumerate(old):
        old_dest = f"_{dest}_old_spelling_{number}"
        if spelling.startswith("-"):
            parser.add_argument(spelling, dest=old_dest, type=Path, help=argparse.SUPPRESS)
        else:
            parser.add_argument(old_dest, nargs="?", type=Path, help=argparse.SUPPRESS)
            spelling = ""  # a bare folder name
        spellings.append((old_dest, spelling))
    parser.spellings[dest] = (flag, required, spellings)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m helpers`` parser, with one subparser per registered command and group."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers",
        description="Command line of the course 'Image Captioning with CNN & LSTM'.",
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=CommandParser)
    groups: dict[str, Any] = {}
    for name in sorted(COMMANDS):
        entry = COMMANDS[name]
        *group, word = name.split()
        if group:
            if group[0] not in groups:
                group_parser = top.add_parser(group[0], help=GROUPS.get(group[0], ""))
                groups[group[0]] = group_parser.add_subparsers(
                    dest="subcommand", metavar="COMMAND", required=True, parser_class=CommandParser
                )
            subparsers = groups[group[0]]
        else:
            subparsers = top
        sub = subparsers.add_parser(word, help=entry.help, description=entry.help)
        if entry.arguments is not None:
            entry.arguments(sub)
        sub.set_defaults(handler=entry.run)
    return parser


DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def device_name(value: str) -> str:
    """``--device``'s check, as argparse ``type``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    A typo (``gpu``) is a usage error (exit 2) before anything is imported; a device this machine lacks
    is one ``error:`` line (exit 2) when the command starts (:func:`helpers.utils.get_device`).
    """
    if value in DEVICES or re.fullmatch(r"cuda:\d+", value):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(DEVICES)})")


def device_presets() -> dict[str, dict[str, Any]]:
    """``helpers.config.DEVICE_PRESETS`` (what ``TrainConfig.for_device`` uses), for help texts.

    Read from the module's source as literals: importing it (torch) takes seconds, and ``--help`` should not.
    """
    source = Path(importlib.util.find_spec("helpers.config").origin).read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "DEVICE_PRESETS" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError("helpers/config.py defines no DEVICE_PRESETS")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command, return its exit code."""
    args = build_parser().parse_args(argv)
    return run_command(args.handler, args)


# ---------------------------------------------------------------------------------------------------------
# data make-shapes
# ---------------------------------------------------------------------------------------------------------


def _make_shapes_arguments(parser: argparse.ArgumentParser) -> None:
    folder_option(parser, "--out", "DIR", help="where to write the dataset, e.g. data/shapes")
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


@command(
    "data make-shapes",
    help="draw the offline shapes dataset in the Flickr8k layout (reused if already complete)",
    arguments=_make_shapes_arguments,
)
def make_shapes_command(args: argparse.Namespace) -> int:
    from helpers.scenes import (
        IMAGE_DIR,
        MARKER,
        SPLIT_FILES,
        TOKEN_FILE,
        TRUTH_FILE,
        make_shapes,
        split_sizes,
    )

    marker = args.out / MARKER
    before = marker.stat().st_mtime_ns if marker.exists() else None
    start = time.perf_counter()
    root = make_shapes(args.out, images=args.images, seed=args.seed, force=args.force)
    seconds = time.perf_counter() - start
    sizes = split_sizes(args.images)
    per_split = ", ".join(f"{split} {count}" for split, count in sizes.items())
    if before is not None and marker.stat().st_mtime_ns == before:
        print(f"{root}: already complete ({args.images} images, seed {args.seed}); nothing to do")
        return EXIT_OK
    print(f"wrote {root}: {args.images} images ({per_split}), {5 * args.images} captions, seed {args.seed}")
    print(f"  images in {root / IMAGE_DIR}, captions in {root / TOKEN_FILE}")
    print(f"  splits in {', '.join(SPLIT_FILES.values())}")
    print(f"  each scene's truth (background, shapes, layout) in {root / TRUTH_FILE}")
    print(f"  took {seconds:.1f} s")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# data stats
# ---------------------------------------------------------------------------------------------------------


def _stats_arguments(parser: argparse.ArgumentParser) -> None:
    folder_option(parser, "--data", "DIR", help="dataset root (Flickr8k, Kaggle Flickr8k, COCO or Karpathy)")
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


def format_summary(summary: dict[str, Any], examples: int = 3) -> str:
    """A :func:`helpers.caption_files.summarize` dict → the human-readable report ``data stats`` prints."""
    splits = summary["splits"]
    per_image, words = summary["captions_per_image"], summary["caption_words"]
    lines = [
        f"{summary['root']}: {summary['format']} format",
        f"  images    {summary['images']:>7}  "
        f"(train {splits['train']}, dev {splits['dev']}, test {splits['test']})",
        f"  captions  {summary['captions']:>7}  "
        f"(per image: min {per_image['min']}, mean {per_image['mean']}, max {per_image['max']})",
        f"  words per caption: min {words['min']}, mean {words['mean']}, max {words['max']}",
        f"  skipped   {len(summary['skipped']):>7}",
    ]
    if "vocabulary" in summary:
        vocab = summary["vocabulary"]
        lines.insert(
            4,
            f"  vocabulary {vocab['words']:>6}  words at min_freq {vocab['min_freq']} "
            "(from train captions, 4 special tokens included)",
        )
    for reason, count in summary["skipped_by_reason"].items():
        items = [s["item"] for s in summary["skipped"] if s["reason"] == reason]
        shown = ", ".join(items[:examples]) + (", ..." if len(items) > examples else "")
        lines.append(f"    {count:>5} × {reason}")
        if examples > 0:
            lines.append(f"            e.g. {shown}")
    return "\n".join(lines)


@command(
    "data stats",
    help="read a caption dataset, report what is usable and what was skipped and why",
    arguments=_stats_arguments,
)
def stats_command(args: argparse.Namespace) -> int:
    from helpers.caption_files import load_captions, summarize
    from helpers.data import IMAGE_CHECKS_FILE, check_images
    from helpers.features import dataset_root, default_min_freq
    from helpers.utils import progress_enabled
    from helpers.vocabulary import Vocabulary

    data = load_captions(args.data)
    summary = summarize(data)
    min_freq = args.min_freq if args.min_freq is not None else default_min_freq(args.data)
    train = data.table[data.table["split"] == "train"]["caption"]
    summary["vocabulary"] = {"min_freq": min_freq, "words": len(Vocabulary.build(train, min_freq=min_freq))}
    summary["images_decoded"] = args.check_images
    if args.check_images:
        notes: list[str] = []
        _, broken = check_images(
            list(dict.fromkeys(data.table["image"])),
            cache_file=dataset_root(args.data) / ".cache" / IMAGE_CHECKS_FILE,
            progress=progress_enabled(),
            log=notes.append,
        )
        summary["broken_images"] = [{"item": s.item, "reason": s.reason} for s in broken]
        for note in notes:
            print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(format_summary(summary, examples=args.examples))
        if not args.check_images:
            print("  images not decoded (add --check-images to decode every one and name the broken ones)")
        else:
            broken = summary["broken_images"]
            print(f"  broken images {len(broken)} (every image decoded)" + (":" if broken else ""))
            for item in broken:
                print(f"    {item['item']}: {item['reason']}")
    if summary["images"] == 0:
        reasons = summary["skipped_by_reason"]
        why = f"; most often: {next(iter(reasons))}" if reasons else ""
        return fail(
            f"{args.data}: no usable images left ({len(summary['skipped'])} items skipped{why})",
            code=EXIT_UNUSABLE,
        )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# diagrams
# ---------------------------------------------------------------------------------------------------------


def _diagrams_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the PNGs (default: assets/ in the repository); a file of the same name that "
        "this command did not write is never replaced",
    )


@command("diagrams", help="regenerate every course diagram as a PNG", arguments=_diagrams_arguments)
def diagrams_command(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from helpers.diagrams import ASSETS, DIAGRAMS, save_all

    folder = args.out or ASSETS
    existed = {folder / f"{name}.png" for name in DIAGRAMS if (folder / f"{name}.png").exists()}
    for path in save_all(folder):
        print(f"{'replaced' if path in existed else 'wrote'} {path}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------
# train, caption, evaluate
# ---------------------------------------------------------------------------------------------------------


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    presets = device_presets()

    def default(key: str) -> str:
        cpu, gpu, random = (presets[name][key] for name in ("cpu", "gpu", "gpu-random"))
        without = "" if random == gpu else f" ({random} without ImageNet weights)"
        return f"default: {cpu} on a CPU, {gpu} on a GPU{without}"

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
        help=f"number of epochs ({default('epochs')}). With --resume, more epochs continue the run: "
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
    parser.add_argument("--image-size", type=int, help=f"input size in pixels ({default('image_size')})")
    parser.add_argument("--batch-size", type=int, help=f"captions per batch ({default('batch_size')})")
    parser.add_argument(
        "--lr", type=float, help=f"peak learning rate of the one-cycle schedule ({default('lr')})"
    )
    parser.add_argument("--hidden-size", type=int, help=f"LSTM hidden size ({default('hidden_size')})")
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


@command("train", help="train the captioning model on a dataset", arguments=_train_arguments)
def train_command(args: argparse.Namespace) -> int:
    import torch

    from helpers import training
    from helpers.config import TrainConfig
    from helpers.features import default_min_freq
    from helpers.runs import existing_run
    from helpers.utils import get_device

    overrides = {
        key: value
        for key, value in {
            "epochs": args.epochs,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "hidden_size": args.hidden_size,
            "weights": args.weights,
            "num_workers": args.workers,
            "dropout": args.dropout,
            "min_freq": args.min_freq,
            "seed": args.seed,
            "standardize": args.standardize,
            "train_backbone": args.fine_tune,
        }.items()
        if value is not None
    }
    device = get_device(args.device)
    state = existing_run(args.out) if args.resume else None  # read once: fit is given it
    if state is not None:  # the flags given change the saved configuration (fit says what it ignores)
        config = TrainConfig.from_dict({**state["config"], **overrides})
    else:
        config = TrainConfig.for_device(device, **{"min_freq": default_min_freq(args.data), **overrides})
    try:
        result = training.fit(
            args.data,
            args.out,
            config,
            device=device,
            resume=args.resume,
            overwrite=args.overwrite,
            dist_timeout=args.dist_timeout,
            checkpoint=state,
        )
    except torch.cuda.OutOfMemoryError:
        # the one error a learner fixes with a flag; the traceback would bury it
        smaller = max(1, config.batch_size // 2)
        return fail(
            f"the GPU ran out of memory with batches of {config.batch_size} captions at "
            f"{config.image_size} px; train again with a smaller --batch-size (e.g. {smaller}), into a "
            "new --out or with --overwrite"
        )
    if not result.history.empty:  # under torchrun, only rank 0 keeps the history
        last = result.history.iloc[-1]
        best = result.history.loc[result.history["dev_bleu4"].idxmax()]
        print(
            f"done: dev BLEU-4 {last['dev_bleu4']:.3f} after epoch {int(last['epoch'])} "
            f"(best {best['dev_bleu4']:.3f} after epoch {int(best['epoch'])}, kept as best.pt); "
            f"run in {args.out}"
        )
    return EXIT_OK


def _caption_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="run folder written by 'train'")
    parser.add_argument("images", nargs="+", type=Path, help="image files to caption")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy, the default)")
    parser.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda, cuda:N or mps")
    _checkpoint_argument(parser)


def _checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        choices=["best", "last"],
        default="best",
        help="best: the epoch with the best dev BLEU-4 (default); last: the last epoch",
    )


def _load_run(args: argparse.Namespace):
    """The :class:`~helpers.runs.Run` of ``--run``, ``--checkpoint`` and ``--device``; a run written before
    ``best.pt`` existed has only its last epoch, which is then used, with a note on stderr."""
    from helpers.runs import BEST_CHECKPOINT, CHECKPOINT, Run
    from helpers.utils import get_device

    device = get_device(args.device)
    which = args.checkpoint
    if which == "best" and not (args.run / BEST_CHECKPOINT).exists() and (args.run / CHECKPOINT).exists():
        print(f"note: {args.run} has no {BEST_CHECKPOINT}; using its last epoch", file=sys.stderr)
        which = "last"
    return Run.load(args.run, device, checkpoint=which)


CAPTION_CHUNK = 64  # images read, then captioned, at a time: full-size photos take memory


@command("caption", help="caption image files with a trained run", arguments=_caption_arguments)
def caption_command(args: argparse.Namespace) -> int:
    from helpers.data import ImageLoadError, load_image

    if args.beam < 1:
        return fail(f"--beam must be 1 or more, got {args.beam}")
    run = _load_run(args)
    failed = 0
    for start in range(0, len(args.images), CAPTION_CHUNK):  # a chunk of decoded images in memory at a time
        readable, images = [], []
        for path in args.images[start : start + CAPTION_CHUNK]:
            try:
                images.append(load_image(path))
                readable.append(path)
            except ImageLoadError as error:
                print(f"error: {error}", file=sys.stderr)
                failed += 1
        for path, caption in zip(readable, run.caption(images, beam_size=args.beam), strict=True):
            print(f"{path}\t{caption}")
    return EXIT_UNUSABLE if failed else EXIT_OK


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


def _no_nan(values: dict[str, float]) -> dict[str, float | None]:
    """NaN (an attribute no caption stated) → None, which JSON can hold."""
    return {name: None if value != value else value for name, value in values.items()}


def _format_attributes(accuracy: dict[str, float], report=None) -> list[str]:
    """Lines "name  accuracy" ("—" if never stated), with "(correct of judged)" from ``report``."""
    lines = []
    for name, value in accuracy.items():
        shown = "   —  " if value != value else f"{value:.4f}"
        counted = ""
        if report is not None and report.loc[name, "judged"]:
            counted = f"  ({report.loc[name, 'correct']} of {report.loc[name, 'judged']})"
        lines.append(f"    {name:10} {shown}{counted}")
    return lines


@command(
    "evaluate",
    help="BLEU-1…4 of a trained run on a split, and each attribute's accuracy where the dataset has truth",
    arguments=_evaluate_arguments,
)
def evaluate_command(args: argparse.Namespace) -> int:
    from helpers.attributes import attribute_accuracy, attribute_report, find_scenes, read_scenes, scenes_for
    from helpers.decoding import evaluate_split
    from helpers.features import dataset_root, prepare_data
    from helpers.metrics import as_percent, best_blind_caption, corpus_bleu_scores, human_ceiling

    run = _load_run(args)
    config = run.config
    quiet = (lambda _: None) if args.json else print
    # the baselines choose their caption from the train captions by dev BLEU: those splits are used too
    splits = tuple(dict.fromkeys((args.split, "train", "dev"))) if args.baselines else (args.split,)
    data = prepare_data(args.data, config.min_freq, log=quiet, splits=splits)
    cache_dir = dataset_root(args.data) / ".cache"
    scores, table = evaluate_split(
        run.model, run.vocab, config, data, args.split, args.beam, run.device, cache_dir=cache_dir, log=quiet
    )
    truth = find_scenes(args.data)  # the shapes set has it; Flickr8k and COCO do not
    scenes = scenes_for(table["image"], read_scenes(truth)) if truth else None
    result: dict[str, Any] = {"split": args.split, "beam": args.beam, "images": len(table), **scores}
    if scenes is not None:
        result["attributes"] = attribute_accuracy(table["generated"], scenes)
    if args.baselines:
        references = table["references"].tolist()
        blind, _ = best_blind_caption(
            data.split("train")["caption"].tolist(), list(data.references("dev").values())
        )
        result["blind"] = {"caption": blind, **corpus_bleu_scores(references, [blind] * len(table))}
        human = human_ceiling(references, scenes).loc["mean"].to_dict()
        result["human"] = {name: human.pop(name) for name in scores}  # BLEU; what is left: attributes
        if scenes is not None:
            result["blind"]["attributes"] = attribute_accuracy([blind] * len(table), scenes)
            result["human"]["attributes"] = human
    if args.json:
        for part in (result, result.get("blind", {}), result.get("human", {})):
            if "attributes" in part:
                part["attributes"] = _no_nan(part["attributes"])
        print(json.dumps(result))
        return EXIT_OK
    percent = as_percent(scores)
    print(f"{args.split} split, {len(table)} images, {'greedy' if args.beam == 1 else f'beam {args.beam}'}:")
    for name, value in scores.items():
        print(f"  {name.upper():6} {value:.4f}  ({percent[name]:.1f} ×100)")
    if scenes is not None:
        print("  attributes (share right of those the captions state; see helpers.attributes):")
        report = attribute_report(table["generated"], scenes)
        print("\n".join(_format_attributes(result["attributes"], report)))
    if args.baselines:
        blind, human = result["blind"], result["human"]
        print(f"  best image-blind caption (chosen on dev): {blind['caption']!r}")
        print(f"    BLEU-4 {blind['bleu4']:.4f}")
        if "attributes" in blind:
            print("\n".join(_format_attributes(blind["attributes"])))
        print("  human references, each against the others (mean over the annotators):")
        print(f"    BLEU-4 {human['bleu4']:.4f}")
        if "attributes" in human:
            print("\n".join(_format_attributes(human["attributes"])))
    return EXIT_OK


def _download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        choices=["flickr8k", "coco2017", "coco2014"],
        help="which dataset (coco2014: the images Karpathy's split names, with his caption files)",
    )
    folder_option(parser, "--out", "--dest", help="folder to download and extract into, e.g. data/flickr8k")
    parser.add_argument(
        "--base-url", help="a mirror holding the same file names, instead of the official one"
    )
    parser.add_argument("--no-checksum", action="store_true", help="skip MD5 checks (for private mirrors)")
    parser.add_argument(
        "--annotations-only", action="store_true", help="COCO: only the captions (about 250 MB)"
    )
    parser.add_argument(
        "--val-only", action="store_true", help="COCO: captions and val images (val2017/val2014), no train"
    )


@command(
    "data download",
    help="download and extract Flickr8k, COCO 2017 or COCO 2014 with Karpathy's split",
    arguments=_download_arguments,
)
def download_command(args: argparse.Namespace) -> int:
    from helpers.download import coco_selection, fetch_dataset
    from helpers.utils import progress_enabled

    only = None
    if args.dataset.startswith("coco") and (args.annotations_only or args.val_only):
        only = coco_selection(args.annotations_only, args.val_only, dataset=args.dataset)
    elif args.annotations_only or args.val_only:
        return fail("--annotations-only and --val-only apply to coco2017 and coco2014 only")
    root = fetch_dataset(
        args.dataset,
        args.out,
        base_url=args.base_url,
        checksum=not args.no_checksum,
        only=only,
        progress=progress_enabled(),
    )
    # Karpathy's zip holds three split files; the COCO one is chosen by its path
    data = root / "dataset_coco.json" if args.dataset == "coco2014" else root
    print(f"{args.dataset} is in {root}; check it with: python -m helpers data stats --data {data}")
    return EXIT_OK
