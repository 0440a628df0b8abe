"""Command line: ``python -m extension {vary,interpolate,refine,serve}``.

Outputs are PNGs carrying their infotext (WebUI format, readable by PNG Info), written atomically under stable
names; a re-run skips every output that already exists, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ReimagineError
from .params import FRAMES, NOISE_PRESETS, REIMAGINE, Param

DESCRIPTION = """\
Stable unCLIP 2.1 image variations and an SDXL refiner pass, without a WebUI.

examples:
  python -m extension vary photo.jpg --model models/Stable-diffusion/sd21-unclip-h.ckpt --out out/ --n 4
  python -m extension vary a.png b.png --weights 0.7,0.3 --model sd21-unclip-l.ckpt --out out/ --prompt "oil painting"
  python -m extension interpolate a.png b.png --frames 8 --model sd21-unclip-h.ckpt --out strip/
  python -m extension refine render.png --model sd_xl_refiner_1.0.safetensors --out refined/
  python -m extension serve
"""


def _flag(param: Param) -> str:
    return "--" + param.name.replace("_", "-")


def _add_param(parser: argparse.ArgumentParser, param: Param, *flags: str, **overrides: Any) -> None:
    """An option derived from the parameter table (type, default, range in the help)."""
    help_text = overrides.pop("help", param.help or param.label)
    kwargs: dict[str, Any] = {
        "dest": param.name,
        "type": param.kind if param.kind is not bool else None,
        "default": overrides.pop("default", param.default),
        "help": f"{help_text} ({'' if param.choices else param.expected() + '; '}default: %(default)s)",
    }
    if param.choices:
        kwargs["choices"] = param.choices
    kwargs.update(overrides)
    parser.add_argument(*(flags or (_flag(param),)), **kwargs)


def _generation_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``vary`` and ``interpolate``."""
    table = REIMAGINE
    _model_options(parser, "unCLIP 2.1 model: .ckpt/.safetensors file, diffusers folder or hub id")
    parser.add_argument(
        "--karlo-stats",
        type=Path,
        default=None,
        help="ViT-L-14_stats.th for sd21-unclip-l (default: models/karlo/ next to the model's models folder)",
    )
    _add_param(parser, table["prompt"], "--prompt")
    _add_param(parser, table["negative_prompt"], "--negative")
    noise = parser.add_mutually_exclusive_group()
    _add_param(noise, table["noise_level"])
    noise.add_argument(
        "--preset",
        choices=[name.lower() for name in NOISE_PRESETS],
        help="noise level preset: " + ", ".join(f"{name.lower()}={value}" for name, value in NOISE_PRESETS.items()),
    )
    _add_param(parser, table["steps"])
    _add_param(parser, table["cfg_scale"], "--cfg")
    _add_param(parser, table["sampler_name"], "--sampler")
    _add_param(parser, table["scheduler"], "--schedule")
    _add_param(parser, table["seed"])
    _add_param(parser, table["width"])
    _add_param(parser, table["height"])
    _add_param(parser, table["fit"])


def _model_options(parser: argparse.ArgumentParser, model_help: str) -> None:
    parser.add_argument("--model", required=True, help=model_help)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda, cuda:1, cpu (default: best)")
    parser.add_argument(
        "--config-root",
        type=Path,
        default=None,
        help="folder of config-only model folders for single files (default: the bundled configs)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m extension", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    vary = commands.add_parser("vary", help="variations of one image, of each image in a folder, or of a mix")
    vary.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image file(s) or folder(s)")
    _generation_options(vary)
    vary.add_argument("--n", type=int, default=4, help="variations per input (default: %(default)s)")
    _add_param(vary, REIMAGINE["batch_size"])
    vary.add_argument(
        "--weights",
        default=None,
        help="mix all IMAGEs into one embedding with these weights, e.g. 0.7,0.3 (without it each image is varied "
        "on its own)",
    )
    _add_param(vary, REIMAGINE["mix"], help="how a mix combines embeddings: average, or slerp for two images")
    vary.set_defaults(run=run_vary)

    strip = commands.add_parser("interpolate", help="a strip of frames morphing from image A to image B")
    strip.add_argument("image_a", type=Path, metavar="A")
    strip.add_argument("image_b", type=Path, metavar="B")
    _add_param(strip, FRAMES)
    _generation_options(strip)
    strip.set_defaults(run=run_interpolate)

    serve = commands.add_parser("serve", help="the Reimagine and Refine tabs as a local web app (127.0.0.1)")
    serve.add_argument("--port", type=int, default=7861)
    serve.add_argument("--models-dir", type=Path, default=None, help="folder with unCLIP / SDXL refiner models")
    serve.add_argument(
        "--listen",
        default=None,
        metavar="ADDRESS",
        help="bind this address instead of 127.0.0.1 (e.g. 0.0.0.0); requests must still name an allowed host",
    )
    serve.add_argument(
        "--allowed-hosts",
        default="",
        metavar="NAMES",
        help="comma-separated host names/addresses the browser may use besides 127.0.0.1, localhost, [::1] and --listen",
    )
    serve.set_defaults(run=run_serve)

    _add_refine_parser(commands)
    return parser


def _add_refine_parser(commands: Any) -> None:
    """``refine`` is provided by the refiner engine when it is present."""
    try:
        from .refine import add_cli_parser
    except ImportError:
        return
    add_cli_parser(commands)


# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One output file and the request that makes it (``seed_offset`` indexes the request's seeds)."""

    path: Path
    seed_offset: int


def _requests(todo: list[Job], batch_size: int) -> list[tuple[list[Job], int, int]]:
    """Group missing outputs into requests ``(outputs, n_iter, batch_size)``: each run of consecutive outputs is one
    request of full batches (one CLIP encode) plus one for the remainder; a resumed folder may have holes."""
    runs: list[list[Job]] = []
    for job in todo:
        if runs and job.seed_offset == runs[-1][-1].seed_offset + 1:
            runs[-1].append(job)
        else:
            runs.append([job])
    requests = []
    for run in runs:
        full, rest = divmod(len(run), batch_size)
        if full:
            requests.append((run[: full * batch_size], full, batch_size))
        if rest:
            requests.append((run[full * batch_size :], 1, rest))
    return requests


def _input_images(paths: Sequence[Path]) -> list[Path]:
    """The image files named by the IMAGE arguments (folders expanded); a user error when there are none."""
    from .outputs import expand_inputs

    inputs = expand_inputs(paths)
    if not inputs:
        raise ReimagineError("no input images found")
    return inputs


def _wanted(path: Path, args: argparse.Namespace) -> bool:
    """The resume rule: an output is made when it does not exist yet, or always with ``--overwrite``."""
    return args.overwrite or not path.exists()


def _nothing_to_do(args: argparse.Namespace, what: str = "outputs") -> int:
    print(f"nothing to do: all {what} exist in {args.out} (use --overwrite to redo them)")
    return 0


@contextmanager
def _progress_bar(total: int, description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over ``total`` steps on stderr; yields the engines' ``progress(step, steps)`` callback (requests
    run one after another, each counting its own steps from 1) and closes the bar on exit."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=description, unit="step", file=sys.stderr)
    position = {"base": 0}

    def advance(step: int, steps: int) -> None:
        bar.n = position["base"] + step
        bar.refresh()
        if step == steps:
            position["base"] += steps

    try:
        yield advance
    finally:
        bar.close()


def _load_images(paths: Sequence[Path]):
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except FileNotFoundError:
            raise ReimagineError(f"input image not found: {path}") from None
        except (UnidentifiedImageError, OSError) as error:
            raise ReimagineError(f"cannot read {path} as an image: {error}") from None
    return images


def _settings(args: argparse.Namespace):
    from .reimagine import VariationRequest

    noise_level = NOISE_PRESETS[args.preset.capitalize()] if args.preset else args.noise_level
    return VariationRequest(
        images=[],
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        noise_level=noise_level,
        steps=args.steps,
        cfg_scale=args.cfg_scale,
        sampler_name=args.sampler_name,
        scheduler=args.scheduler,
        width=args.width,
        height=args.height,
        fit=args.fit,
        seed=args.seed,
    )


def _load_unclip(args: argparse.Namespace):
    from .loading import load_unclip

    return load_unclip(args.model, config_root=args.config_root, karlo_stats=args.karlo_stats, device=args.device)


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
    from .outputs import save_png
    from .reimagine import iter_batches, scheduler_steps, seed_list

    inputs = _input_images(args.images)
    if args.n < 1:
        raise ReimagineError(f"--n must be at least 1, got {args.n}")
    weights = _weights(args.weights, len(inputs))
    groups = [inputs] if weights is not None else [[path] for path in inputs]
    settings = _settings(args)
    seed = seed_list(settings.seed, 1)[0]
    # Check every value before the (slow) model load.
    replace(settings, images=_load_images(groups[0]), weights=weights, mix=args.mix).validated()

    plans = []
    for group in groups:
        stem = "+".join(path.stem for path in group)
        jobs = [Job(args.out / f"{stem}-{index:04d}.png", index) for index in range(args.n)]
        todo = [job for job in jobs if _wanted(job.path, args)]
        plans.append((group, todo))
    pending = sum(len(todo) for _, todo in plans)
    if pending == 0:
        return _nothing_to_do(args)

    pipe = _load_unclip(args)
    steps = scheduler_steps(pipe, settings.sampler_name, settings.scheduler, settings.steps)
    written = 0
    with _progress_bar(pending * steps, "vary") as advance:
        for group, todo in plans:
            base = replace(settings, images=_load_images(group), weights=weights, mix=args.mix)
            for outputs, n_iter, batch_size in _requests(todo, args.batch_size):
                request = replace(
                    base, seed=(seed + outputs[0].seed_offset) % 2**32, n_iter=n_iter, batch_size=batch_size
                )
                pending_outputs = iter(outputs)
                for batch in iter_batches(pipe, request, progress=advance):
                    for image, text, job in zip(batch.images, batch.infotexts, pending_outputs):
                        save_png(image, job.path, text)
                        written += 1
    print(f"wrote {written} image(s) to {args.out}")
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    """``interpolate``: frames from A to B."""
    from .outputs import save_png
    from .reimagine import InterpolationRequest, interpolate, scheduler_steps, seed_list

    stem = f"{args.image_a.stem}-to-{args.image_b.stem}"
    paths = [args.out / f"{stem}-{frame:03d}.png" for frame in range(args.frames)]
    if not args.overwrite and all(path.exists() for path in paths):
        return _nothing_to_do(args, "frames")
    FRAMES.coerce(args.frames)
    settings = _settings(args)
    settings = replace(settings, seed=seed_list(settings.seed, 1)[0])
    image_a, image_b = _load_images([args.image_a, args.image_b])
    replace(settings, images=[image_a, image_b], mix="slerp").validated()
    pipe = _load_unclip(args)
    steps = scheduler_steps(pipe, settings.sampler_name, settings.scheduler, settings.steps)
    with _progress_bar(args.frames * steps, "interpolate") as advance:
        result = interpolate(pipe, InterpolationRequest(image_a, image_b, args.frames, settings), progress=advance)
    for path, image, text in zip(paths, result.images, result.infotexts):
        if _wanted(path, args):
            save_png(image, path, text)
    print(f"wrote {len(result.images)} frame(s) to {args.out}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """``serve``: the standalone gradio app."""
    from .app import serve

    hosts = [name.strip() for name in args.allowed_hosts.split(",") if name.strip()]
    return serve(port=args.port, models_dir=args.models_dir, listen=args.listen, allowed_hosts=hosts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ReimagineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished outputs are saved; run the same command again to resume", file=sys.stderr)
        return 130
