"""``refine``: the SDXL refiner over finished images (pixel mode), one refined PNG per input, resumable."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine.refiner import FALLBACK_CFG_SCALE, FALLBACK_SAMPLER, FALLBACK_SCHEDULE
from ..errors import ReimagineError
from ..params import REFINER, REFINER_ENGINE_PARAMS, REIMAGINE
from .common import add_param, input_images, load_images, model_options, nothing_to_do, progress_bar, wanted
from .files import prepare_out, report_skipped, unique_stems


def add_parser(commands: Any) -> None:
    """Add the ``refine`` subcommand."""
    parser = commands.add_parser(
        "refine",
        help="SDXL refiner post-pass over images (a folder refines every image in it)",
        description="Refine finished images with an SDXL refiner (pixel mode). Blank prompt / negative / CFG / "
        "sampler inherit the values in each input PNG's infotext (WebUI outputs carry one).",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image file(s) or folder(s)")
    model_options(parser, "SDXL refiner: .safetensors/.ckpt file, diffusers folder or hub id")
    inherit = "None = the input PNG's infotext value (WebUI outputs carry one), else"
    add_param(parser, REFINER["strength"])
    add_param(parser, REFINER["steps"])
    add_param(parser, REFINER["cfg_scale"], "--cfg", help=f"CFG scale; {inherit} {FALLBACK_CFG_SCALE:g}")
    add_param(parser, REFINER["sampler_name"], "--sampler", help=f"sampler; {inherit} {FALLBACK_SAMPLER}")
    add_param(parser, REFINER["scheduler"], "--schedule", help=f"schedule type; {inherit} {FALLBACK_SCHEDULE}")
    add_param(parser, REFINER["prompt"], "--prompt", help="refiner prompt; blank = the input PNG's infotext prompt")
    add_param(parser, REFINER["negative_prompt"], "--negative", help="blank = the input PNG's negative prompt")
    add_param(parser, REFINER["aesthetic_score"], "--aesthetic")
    add_param(parser, REFINER["negative_aesthetic_score"], "--negative-aesthetic")
    add_param(parser, REIMAGINE["seed"], help="-1 = the input PNG's infotext seed, else random")
    parser.set_defaults(run=run)


def output_paths(inputs: Sequence[Path], out: Path) -> list[Path]:
    """``out/<stem>.png`` per input (``<stem>-<ext>.png`` where stems collide); never an input file itself."""
    paths = [out / f"{stem}.png" for stem in unique_stems(inputs)]
    sources = {p.resolve() for p in inputs}
    clash = next((p for p in paths if p.resolve() in sources), None)
    if clash is not None:
        raise ReimagineError(f"refusing to overwrite the input {clash}: choose another --out folder")
    return paths


def run(args: argparse.Namespace) -> int:
    """``refine``: one refined PNG per input image, resumable (existing outputs are skipped)."""
    from ..engine.refiner import refine
    from ..loading import load_sdxl
    from ..loading.defaults import load_model
    from ..outputs import read_infotext, save_png

    inputs = input_images(args.images)
    jobs = [(src, dst) for src, dst in zip(inputs, output_paths(inputs, args.out)) if wanted(dst, args)]
    if not jobs:
        return nothing_to_do(args)

    def request(src: Path) -> Any:
        return request_for(args, load_images([src])[0], read_infotext(src))

    # Check every value (and the sampler/schedule pair) before the slow load, on the first input that can be read;
    # an input that cannot (unreadable, or an infotext whose values are out of range) is skipped with one line.
    skipped: set[Path] = set()
    for src, _ in jobs:
        try:
            request(src).resolved()
            break
        except ReimagineError as error:
            if len(jobs) == 1:
                raise
            report_skipped(src, error)
            skipped.add(src)
    else:
        raise ReimagineError("none of the inputs could be read (see above)")
    prepare_out(args.out)

    def load(model: str) -> Any:
        return load_sdxl(model, role="refiner", config_root=args.config_root, device=args.device)

    pipe = load_model("refiner", args.model, args.models_dir, load, config_root=args.config_root)
    written = 0
    with progress_bar(len(jobs) - len(skipped), "refine") as advance:
        for src, dst in jobs:
            if src in skipped:
                continue
            try:
                job = request(src)
                job.resolved()
            except ReimagineError as error:
                report_skipped(src, error)
                skipped.add(src)
                continue
            result = refine(pipe, job, progress=advance)
            save_png(result.images[0], dst, result.infotexts[0])
            written += 1
    print(f"wrote {written} image(s) to {args.out}")
    if skipped:
        print(f"error: {len(skipped)} input(s) could not be used (see above); the others are done", file=sys.stderr)
        return 1
    return 0


def request_for(args: argparse.Namespace, image: Any, source_infotext: str | None) -> Any:
    """The pixel-mode :class:`RefineRequest` for one input image and its PNG infotext (blank controls inherit it)."""
    from ..engine.refiner import RefineRequest

    controls = {name: getattr(args, name) for name in REFINER_ENGINE_PARAMS if hasattr(args, name)}
    return RefineRequest.from_controls(controls, source_infotext, args.seed, images=[image], mode="Pixel")
