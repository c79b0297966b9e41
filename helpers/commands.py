"""What each command of ``python -m helpers`` does: one function per command, ``args → exit code``.

:mod:`helpers.cli` parses the command line and calls one of them with the parsed ``argparse.Namespace``
(the arguments each takes are listed by ``python -m helpers COMMAND --help``). Each imports what it needs
(torch, pandas, matplotlib) when it runs, so that ``--help`` stays quick.

Exit codes: :data:`EXIT_OK` (0) the command did its job; :data:`EXIT_UNUSABLE` (1) it ran but the result
is not usable; :data:`EXIT_ERROR` (2) it could not run, said in one line by :func:`fail`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

EXIT_OK, EXIT_UNUSABLE, EXIT_ERROR = 0, 1, 2
CAPTION_CHUNK = 64  # images read, then captioned, at a time: full-size photos take memory


def fail(message: str, code: int = EXIT_ERROR) -> int:
    """Print ``error: message`` as one line on stderr and return ``code``, for ``return fail(...)``."""
    print("error: " + " ".join(message.split()), file=sys.stderr)
    return code


def make_shapes(args: argparse.Namespace) -> int:
    """``data make-shapes``: draw the shapes set into ``args.out``, or say that it is already complete."""
    from helpers import scenes

    marker = args.out / scenes.MARKER
    before = marker.stat().st_mtime_ns if marker.exists() else None
    start = time.perf_counter()
    root = scenes.make_shapes(args.out, images=args.images, seed=args.seed, force=args.force)
    seconds = time.perf_counter() - start
    sizes = scenes.split_sizes(args.images)
    per_split = ", ".join(f"{split} {count}" for split, count in sizes.items())
    if before is not None and marker.stat().st_mtime_ns == before:
        print(f"{root}: already complete ({args.images} images, seed {args.seed}); nothing to do")
        return EXIT_OK
    print(f"wrote {root}: {args.images} images ({per_split}), {5 * args.images} captions, seed {args.seed}")
    print(f"  images in {root / scenes.IMAGE_DIR}, captions in {root / scenes.TOKEN_FILE}")
    print(f"  splits in {', '.join(scenes.SPLIT_FILES.values())}")
    print(f"  each scene's truth (background, shapes, layout) in {root / scenes.TRUTH_FILE}")
    print(f"  took {seconds:.1f} s")
    return EXIT_OK


def stats(args: argparse.Namespace) -> int:
    """``data stats``: read the dataset in ``args.data`` and report it; exit 1 when no image is usable."""
    from helpers.caption_files import load_captions, summarize
    from helpers.prepare import default_min_freq
    from helpers.vocabulary import Vocabulary

    data = load_captions(args.data)
    summary = summarize(data)
    min_freq = args.min_freq if args.min_freq is not None else default_min_freq(args.data)
    train = data.table[data.table["split"] == "train"]["caption"]
    summary["vocabulary"] = {"min_freq": min_freq, "words": len(Vocabulary.build(train, min_freq=min_freq))}
    summary["images_decoded"] = args.check_images
    if args.check_images:
        summary["broken_images"] = _broken_images(args.data, data.table["image"])
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


def _broken_images(data_dir, images) -> list[dict[str, str]]:
    """Decode every image of the table's ``image`` column (cached in DATA/.cache) → the broken ones as
    ``[{"item", "reason"}]``; notes on what was decoded go to stderr."""
    from helpers.data import IMAGE_CHECKS_FILE, check_images
    from helpers.prepare import dataset_root
    from helpers.utils import progress_enabled

    notes: list[str] = []
    _, broken = check_images(
        list(dict.fromkeys(images)),
        cache_file=dataset_root(data_dir) / ".cache" / IMAGE_CHECKS_FILE,
        progress=progress_enabled(),
        log=notes.append,
    )
    for note in notes:
        print(note, file=sys.stderr)
    return [{"item": s.item, "reason": s.reason} for s in broken]


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


def download(args: argparse.Namespace) -> int:
    """``data download``: fetch, check and extract a dataset into ``args.out``."""
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
        keep_archives=args.keep_archives,
    )
    # Karpathy's zip holds three split files; the COCO one is chosen by its path
    data = root / "dataset_coco.json" if args.dataset == "coco2014" else root
    print(f"{args.dataset} is in {root}; check it with: python -m helpers data stats --data {data}")
    return EXIT_OK


def diagrams(args: argparse.Namespace) -> int:
    """``diagrams``: draw every course diagram as a PNG into ``args.out`` (default: ``assets/``)."""
    import matplotlib

    matplotlib.use("Agg")
    from helpers.diagrams import ASSETS, DIAGRAMS, save_all

    folder = args.out or ASSETS
    existed = {folder / f"{name}.png" for name in DIAGRAMS if (folder / f"{name}.png").exists()}
    for path in save_all(folder):
        print(f"{'replaced' if path in existed else 'wrote'} {path}")
    return EXIT_OK


def train(args: argparse.Namespace) -> int:
    """``train``: fit a model on ``args.data`` into the run folder ``args.out``; print the dev BLEU-4."""
    import torch

    from helpers import training
    from helpers.config import TrainConfig
    from helpers.runs import existing_run
    from helpers.utils import get_device

    overrides = _train_overrides(args)
    device = get_device(args.device)
    state = existing_run(args.out) if args.resume else None  # read once: fit is given it
    if state is not None:  # the flags given change the saved configuration (fit says what it ignores)
        config = TrainConfig.from_dict({**state["config"], **overrides})
    else:
        config = TrainConfig.for_device(device, **overrides)  # (fit gives min_freq the dataset's default)
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


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``TrainConfig`` fields ``train``'s flags set: those given on the command line only."""
    given = {
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
        "decoder": args.decoder,
        "stage": args.stage,
        "penalty": args.penalty,
    }
    return {key: value for key, value in given.items() if value is not None}


def caption(args: argparse.Namespace) -> int:
    """``caption``: print ``path<TAB>caption`` per image; exit 1 when an image could not be read."""
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
        for path, text in zip(readable, run.caption(images, beam_size=args.beam), strict=True):
            print(f"{path}\t{text}")
    return EXIT_UNUSABLE if failed else EXIT_OK


def _load_run(args: argparse.Namespace):
    """The :class:`~helpers.runs.Run` of ``--run``, ``--checkpoint`` and ``--device``."""
    from helpers.runs import Run
    from helpers.utils import get_device

    return Run.load(args.run, get_device(args.device), checkpoint=args.checkpoint)


def evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: BLEU of a run on a split, attribute accuracy where the dataset has the scenes' truth,
    the blind floor and the human ceiling with ``--baselines``; text, or one JSON object with ``--json``."""
    from helpers.attributes import attribute_accuracy, find_scenes, read_scenes, scenes_for
    from helpers.evaluation import evaluate_split
    from helpers.prepare import dataset_root, prepare_data

    run = _load_run(args)
    quiet = (lambda _: None) if args.json else print
    # the baselines choose their caption from the train captions by dev BLEU: those splits are used too
    splits = tuple(dict.fromkeys((args.split, "train", "dev"))) if args.baselines else (args.split,)
    data = prepare_data(args.data, run.config.min_freq, log=quiet, splits=splits)
    scores, table = evaluate_split(
        run.model,
        run.vocab,
        run.config,
        data,
        args.split,
        args.beam,
        run.device,
        cache_dir=dataset_root(args.data) / ".cache",
        log=quiet,
    )
    truth = find_scenes(args.data)  # the shapes set has it; Flickr8k and COCO do not
    scenes = scenes_for(table["image"], read_scenes(truth)) if truth else None
    result: dict[str, Any] = {"split": args.split, "beam": args.beam, "images": len(table), **scores}
    result["decoder"] = run.config.decoder
    result.update(_paper_scores_and_diagnostics(run, data, table, args))
    if scenes is not None:
        result["attributes"] = attribute_accuracy(table["generated"], scenes)
    if scenes is not None and "maps" in table:
        result.update(_grounding(table, scenes, run.config.image_size))
    if args.baselines:
        result.update(_baselines(data, table, scenes, scores))
    if args.json:
        for part in (result, result.get("blind", {}), result.get("human", {})):
            if "attributes" in part:
                part["attributes"] = _no_nan(part["attributes"])
        print(json.dumps(result))
    else:
        _print_evaluation(result, table, scenes, scores)
    return EXIT_OK


def _grounding(table, scenes, image_size: int) -> dict[str, Any]:
    """``attention_on_object`` and ``attention_mass_on_object`` of an attention run's maps (``table["maps"]``,
    one ``[words + 1, N]`` per caption, from :func:`~helpers.evaluation.evaluate_split`) against the scenes,
    with the uniform map's and the first-word-first-shape prior's scores beside them
    (:func:`helpers.grounding.grounding_report`)."""
    from helpers.grounding import grounding_report

    return grounding_report(list(table["generated"]), list(table["maps"]), scenes, image_size).as_dict()


def _split_features(run, data, split: str, data_dir, quiet):
    """The split's backbone features (``[N, 2048]``, or grids of an attention run), from the feature cache
    (``evaluate_split`` filled it)."""
    from helpers.features import cached_features
    from helpers.prepare import dataset_root

    images = data.images(split)
    cache = dataset_root(data_dir) / ".cache"
    return cached_features(run.model, images, run.config.image_size, run.device, cache, quiet)


def _paper_scores_and_diagnostics(run, data, table, args: argparse.Namespace) -> dict[str, Any]:
    """CIDEr-D and the COCO evaluation's BLEU of the generated captions, and the failure diagnostics."""
    from helpers.diagnostics import diagnose
    from helpers.metrics import cider_d, coco_bleu

    references, generated = table["references"].tolist(), table["generated"].tolist()
    features = _split_features(run, data, args.split, args.data, lambda _: None)
    # decoded as evaluate_split decoded them: its captions are reused
    decoding = dict(beam=args.beam, max_len=run.config.max_decode, captions=generated)
    report = diagnose(run.model, features, run.vocab, references, run.device, **decoding)
    keys = ("distinct_1", "distinct_2", "most_common_caption_share", "image_sensitivity", "flags")
    return {
        "cider_d": cider_d(references, generated)[0],
        "coco_bleu": coco_bleu(references, generated),
        **{key: report[key] for key in keys},
    }


def diagnose(args: argparse.Namespace) -> int:
    """``diagnose``: the failure checks of :mod:`helpers.diagnostics` for a run on a split."""
    from helpers.diagnostics import diagnose as diagnose_split
    from helpers.diagnostics import format_diagnosis
    from helpers.prepare import prepare_data

    run = _load_run(args)
    quiet = (lambda _: None) if args.json else print
    data = prepare_data(args.data, run.config.min_freq, log=quiet, splits=(args.split,))
    features = _split_features(run, data, args.split, args.data, quiet)
    references = data.references(args.split)
    refs = [references[image] for image in data.images(args.split)]
    report = diagnose_split(
        run.model, features, run.vocab, refs, run.device, beam=args.beam, max_len=run.config.max_decode
    )
    if args.json:
        print(json.dumps(report))
    else:
        beam = "greedy" if args.beam == 1 else f"beam {args.beam}"
        print(f"{args.split} split, {report['images']} images, {beam}:")
        print(format_diagnosis(report))
    return EXIT_OK


def _baselines(data, table, scenes, scores: dict[str, float]) -> dict[str, Any]:
    """``{"blind": ..., "human": ...}``: the best image-blind caption (chosen on dev) and the references
    against each other, scored as ``evaluate`` scores the model, attributes too when ``scenes`` is given."""
    from helpers.attributes import attribute_accuracy
    from helpers.metrics import best_blind_caption, corpus_bleu_scores, human_ceiling

    references = table["references"].tolist()
    train_captions = data.split("train")["caption"].tolist()
    blind, _ = best_blind_caption(train_captions, list(data.references("dev").values()))
    result = {"blind": {"caption": blind, **corpus_bleu_scores(references, [blind] * len(table))}}
    human = human_ceiling(references, scenes).loc["mean"].to_dict()
    result["human"] = {name: human.pop(name) for name in scores}  # BLEU; what is left: attributes
    if scenes is not None:
        result["blind"]["attributes"] = attribute_accuracy([blind] * len(table), scenes)
        result["human"]["attributes"] = human
    return result


def _print_evaluation(result: dict[str, Any], table, scenes, scores: dict[str, float]) -> None:
    """``evaluate``'s report as text: BLEU on both scales, attributes, and the baselines if scored."""
    from helpers.attributes import attribute_report
    from helpers.metrics import as_percent

    percent = as_percent(scores)
    beam = "greedy" if result["beam"] == 1 else f"beam {result['beam']}"
    print(f"{result['split']} split, {len(table)} images, {beam}:")
    for name, value in scores.items():
        print(f"  {name.upper():6} {value:.4f}  ({percent[name]:.1f} ×100)")
    coco_bleu4 = result["coco_bleu"]["bleu4"]
    print(f"  CIDEr-D {result['cider_d']:.4f}   (the COCO evaluation's BLEU-4: {coco_bleu4:.4f})")
    print(
        f"  distinct-1 {result['distinct_1']:.4f}, distinct-2 {result['distinct_2']:.4f}; "
        f"most common caption {result['most_common_caption_share']:.1%}; "
        f"image sensitivity {result['image_sensitivity']:.1%}"
        + (f"; FLAGGED: {', '.join(result['flags'])} (run 'diagnose')" if result["flags"] else "")
    )
    if scenes is not None:
        print("  attributes (share right of those the captions state; see helpers.attributes):")
        report = attribute_report(table["generated"], scenes)
        print("\n".join(_format_attributes(result["attributes"], report)))
    if "blind" in result:
        blind, human = result["blind"], result["human"]
        print(f"  best image-blind caption (chosen on dev): {blind['caption']!r}")
        print(f"    BLEU-4 {blind['bleu4']:.4f}")
        if "attributes" in blind:
            print("\n".join(_format_attributes(blind["attributes"])))
        print("  human references, each against the others (mean over the annotators):")
        print(f"    BLEU-4 {human['bleu4']:.4f}")
        if "attributes" in human:
            print("\n".join(_format_attributes(human["attributes"])))


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
