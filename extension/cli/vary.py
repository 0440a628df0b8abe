"""``vary`` and ``interpolate``: Stable unCLIP variations of images, mixes and strips, written as PNGs."""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ReimagineError
from ..params import FRAMES, NOISE_PRESETS, REIMAGINE, TEXT_DIFF
from .common import (
    Job,
    add_param,
    input_images,
    load_images,
    model_options,
    nothing_to_do,
    plan_requests,
    progress_bar,
    wanted,
)
from .files import prepare_out, report_skipped, short_stem, unique_stems


def add_parsers(commands: Any) -> None:
    """Add the ``vary`` and ``interpolate`` subcommands."""
    vary = commands.add_parser("vary", help="variations of one image, of each image in a folder, or of a mix")
    vary.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image file(s) or folder(s)")
    _generation_options(vary)
    vary.add_argument("--n", type=int, default=4, help="variations per input (default: %(default)s)")
    add_param(vary, REIMAGINE["batch_size"])
    vary.add_argument(
        "--weights",
        default=None,
        help="mix all IMAGEs into one embedding with these weights, e.g. 0.7,0.3 (without it each image is varied "
        "on its own)",
    )
    add_param(vary, REIMAGINE["mix"], help="how a mix combines embeddings: average, or slerp for two images")
    _text_diff_options(vary)
    vary.add_argument(
        "--with-text",
        dest="text_ingredient",
        metavar="CAPTION",
        help="text as an ingredient: the caption's CLIP embedding joins the mix of the input images as one more "
        "weighted entry (unCLIP single files); not together with --to-text",
    )
    vary.add_argument(
        "--with-text-weight",
        dest="text_ingredient_weight",
        type=float,
        default=1.0,
        metavar="W",
        help="its weight next to the images' (which count 1 together); default 1",
    )
    add_param(vary, TEXT_DIFF["text_diff_amount"], "--amount")
    vary.set_defaults(run=run_vary)

    strip = commands.add_parser(
        "interpolate", help="a strip of frames morphing from image A to image B, or from A along a text edit"
    )
    strip.add_argument("image_a", type=Path, metavar="A")
    strip.add_argument("image_b", type=Path, metavar="B", nargs="?", help="omit it with --to-text")
    add_param(strip, FRAMES)
    _generation_options(strip)
    _text_diff_options(strip)
    add_param(
        strip, TEXT_DIFF["text_diff_amount"], "--amount-max", default=0.5, help="text edit amount of the last frame"
    )
    strip.set_defaults(run=run_interpolate)


PER_COMMAND = ("n_iter", "batch_size", "mix")
"""Rows of :data:`params.REIMAGINE` that are not generation options of both commands: ``--n`` replaces the batch
count; the batch size and the mix mode are ``vary``'s alone."""


def _generation_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``vary`` and ``interpolate``: every :data:`params.REIMAGINE` row but :data:`PER_COMMAND`."""
    table = REIMAGINE
    model_options(parser, "unCLIP 2.1 model: .ckpt/.safetensors file, diffusers folder or hub id")
    parser.add_argument(
        "--karlo-stats",
        type=Path,
        default=None,
        help="ViT-L-14_stats.th for sd21-unclip-l (default: karlo/ in the models folder: --models-dir, "
        "$REIMAGINE_MODELS or ./models; else next to the model)",
    )
    for param in table:
        if param.name in PER_COMMAND:
            continue
        if param.name == "noise_level":  # with its presets, one or the other
            noise = parser.add_mutually_exclusive_group()
            add_param(noise, param)
            noise.add_argument(
                "--preset",
                choices=[name.lower() for name in NOISE_PRESETS],
                help="noise level preset: "
                + ", ".join(f"{name.lower()}={value}" for name, value in NOISE_PRESETS.items()),
            )
        else:
            add_param(parser, param)


def _text_diff_options(parser: argparse.ArgumentParser) -> None:
    """``--to-text`` / ``--from-text``: edit by text (DALL·E 2 text diffs; unCLIP single files)."""
    add_param(parser, TEXT_DIFF["text_diff_to"], "--to-text", default=None)
    add_param(parser, TEXT_DIFF["text_diff_from"], "--from-text")


def _text_diff(args: argparse.Namespace):
    """The embedding edit the flags ask for: a :class:`TextDiff` (``--to-text``), a :class:`TextIngredient`
    (``--with-text``), or ``None``."""
    from ..engine.text_diff import TextDiff, TextIngredient, check_text

    ingredient = getattr(args, "text_ingredient", None)
    if ingredient is not None:
        if args.text_diff_to is not None:
            raise ReimagineError("give --to-text (edit by text) or --with-text (text as an ingredient), not both")
        weight = args.text_ingredient_weight
        if not math.isfinite(weight) or weight < 0:
            raise ReimagineError(f"--with-text-weight must be a non-negative number, got {weight:g}")
        return TextIngredient(check_text(ingredient, "--with-text"), weight)
    # an empty or too long text, or an amount out of range: one line, exit 2
    return TextDiff.from_controls({name: getattr(args, name, None) for name in TEXT_DIFF.params}, blank_is_off=False)


def control_values(args: argparse.Namespace) -> dict[str, Any]:
    """The generation flags' values by :data:`params.REIMAGINE` name (``--preset`` resolved)."""
    values = {name: getattr(args, name) for name in REIMAGINE.params if name not in PER_COMMAND}
    if args.preset:
        values["noise_level"] = NOISE_PRESETS[args.preset.capitalize()]
    return values


def settings_from_args(args: argparse.Namespace):
    """The :class:`VariationRequest` (without images) that the generation flags describe."""
    from ..engine.unclip import VariationRequest

    return VariationRequest.from_controls(control_values(args))


def _load_unclip(args: argparse.Namespace):
    from ..loading import load_unclip
    from ..loading.defaults import load_model, model_folders

    # models/karlo/ViT-L-14_stats.th of the folder searched for models (--models-dir, $REIMAGINE_MODELS, ./models)
    models_dir = model_folders(args.models_dir, os.environ, Path.cwd())[0]

    def load(model: str) -> Any:
        return load_unclip(
            model, config_root=args.config_root, karlo_stats=args.karlo_stats, models_dir=models_dir, device=args.device
        )

    return load_model("unclip", args.model, args.models_dir, load, config_root=args.config_root)


def _weights(text: str | None, count: int) -> list[float] | None:
    if text is None:
        return None
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise ReimagineError(f"--weights must be comma-separated numbers like 0.7,0.3, got {text!r}") from None
    if len(weights) != count:
        raise ReimagineError(f"--weights has {len(weights)} value(s) for {count} image(s)")
    return weights


def run_vary(args: argparse.Namespace) -> int:
    """``vary``: n variations per input image (or per mix)."""
    from PIL import Image

    from ..engine import seed_list
    from ..outputs import save_png

    inputs = input_images(args.images)
    if args.n < 1:
        raise ReimagineError(f"--n must be at least 1, got {args.n}")
    missing = next((path for path in inputs if not path.is_file()), None)
    if missing is not None:
        raise ReimagineError(f"input image not found: {missing}")
    weights = _weights(args.weights, len(inputs))
    stems = unique_stems(inputs)
    groups = [inputs] if weights is not None else [[path] for path in inputs]
    names = [short_stem("+".join(stems))] if weights is not None else stems
    settings = replace(settings_from_args(args), edit=_text_diff(args))
    seed = seed_list(settings.seed, 1)[0]
    # Check every value before the (slow) model load (placeholders: the inputs are read one by one later).
    single = weights is not None or len(groups) == 1  # a mix or one input: an unreadable image is an error now
    placeholders = load_images(groups[0]) if single else [Image.new("RGB", (64, 64))] * len(groups[0])
    replace(settings, images=placeholders, weights=weights, mix=args.mix).validated()
    prepare_out(args.out)

    plans = []
    for group, stem in zip(groups, names):
        jobs = [Job(args.out / f"{stem}-{index:04d}.png", index) for index in range(args.n)]
        todo = [job for job in jobs if wanted(job.path, args)]
        plans.append((group, todo))
    pending = sum(len(todo) for _, todo in plans)
    if pending == 0:
        return nothing_to_do(args)

    pipe = _load_unclip(args)
    runs = sum(n_iter for _, todo in plans for _, n_iter, _ in plan_requests(todo, args.batch_size))
    written, skipped = 0, 0
    with progress_bar(runs, "vary") as advance:
        for group, todo in plans:
            try:
                images = load_images(group)
            except ReimagineError as error:
                if single:
                    raise
                report_skipped(group[0], error)  # a folder run goes on with the other inputs
                skipped += 1
                continue
            base = replace(settings, images=images, weights=weights, mix=args.mix)
            written += make_outputs(pipe, base, seed, todo, args.batch_size, save_png, progress=advance)
    print(f"wrote {written} image(s) to {args.out}")
    if skipped:
        print(f"error: {skipped} input(s) could not be read (see above); the others are done", file=sys.stderr)
        return 1
    return 0


def make_outputs(
    pipe: Any,
    base: Any,
    seed: int,
    todo: list[Job],
    batch_size: int,
    save: Any,
    progress: Any = None,
    batches: Any = None,
) -> int:
    """Generate the outputs ``todo`` of one input (or mix) ``base`` and ``save(image, path, infotext)`` each one; the
    output at ``seed_offset`` k always gets seed ``seed + k``, however the work is split. Returns how many were saved.
    ``batches`` replaces :func:`extension.engine.unclip.iter_batches` (``--engine ray``: under a lock, or simulated)."""
    from ..engine.unclip import iter_batches

    batches = batches or iter_batches
    written = 0
    for outputs, n_iter, size in plan_requests(todo, batch_size):
        request = replace(base, seed=(seed + outputs[0].seed_offset) % 2**32, n_iter=n_iter, batch_size=size)
        pending_outputs = iter(outputs)
        for batch in batches(pipe, request, progress=progress):
            for image, text, job in zip(batch.images, batch.infotexts, pending_outputs):
                save(image, job.path, text)
                written += 1
    return written


def run_interpolate(args: argparse.Namespace) -> int:
    """``interpolate``: frames from A to B, or from A along a text edit (``--to-text``)."""
    if args.text_diff_to is not None or args.image_b is None:
        return run_text_strip(args)
    from ..engine import seed_list
    from ..engine.unclip import InterpolationRequest, interpolate
    from ..outputs import save_png

    stem = short_stem(f"{args.image_a.stem}-to-{args.image_b.stem}")
    paths = [args.out / f"{stem}-{frame:03d}.png" for frame in range(args.frames)]
    if not args.overwrite and all(path.exists() for path in paths):
        return nothing_to_do(args, "frames")
    FRAMES.coerce(args.frames)
    values = control_values(args)
    values["seed"] = seed_list(REIMAGINE["seed"].coerce(values["seed"]), 1)[0]
    image_a, image_b = load_images([args.image_a, args.image_b])
    request = InterpolationRequest.from_controls(values, image_a, image_b, args.frames)
    prepare_out(args.out)
    pipe = _load_unclip(args)
    with progress_bar(1, "interpolate") as advance:
        result = interpolate(pipe, request, progress=advance)
    for path, image, text in zip(paths, result.images, result.infotexts):
        if wanted(path, args):
            save_png(image, path, text)
    print(f"wrote {len(result.images)} frame(s) to {args.out}")
    return 0


def run_text_strip(args: argparse.Namespace) -> int:
    """``interpolate A --to-text …``: frames with the text edit amount from 0 to ``--amount-max``."""
    from ..engine import seed_list
    from ..engine.text_diff import text_diff_strip
    from ..outputs import save_png

    if args.image_b is not None:
        raise ReimagineError("give either image B or --to-text, not both")
    if args.text_diff_to is None:
        raise ReimagineError("interpolate needs image B, or --to-text to edit image A by text")
    diff = _text_diff(args)
    FRAMES.coerce(args.frames)
    stem = short_stem(f"{args.image_a.stem}-text")
    paths = [args.out / f"{stem}-{frame:03d}.png" for frame in range(args.frames)]
    if not args.overwrite and all(path.exists() for path in paths):
        return nothing_to_do(args, "frames")
    settings = settings_from_args(args)
    settings = replace(settings, seed=seed_list(settings.seed, 1)[0], images=load_images([args.image_a]))
    settings.validated()
    prepare_out(args.out)
    pipe = _load_unclip(args)
    with progress_bar(1, "interpolate") as advance:
        result = text_diff_strip(pipe, settings, diff, args.frames, progress=advance)
    for path, image, text in zip(paths, result.images, result.infotexts):
        if wanted(path, args):
            save_png(image, path, text)
    print(f"wrote {len(result.images)} frame(s) to {args.out}")
    return 0
