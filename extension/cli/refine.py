"""``refine``: one SDXL-refined PNG per input image (pixel mode), inheriting each PNG's infotext."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..engine import seed_list
from ..engine.refiner import (
    FALLBACK_CFG_SCALE,
    FALLBACK_SAMPLER,
    FALLBACK_SCHEDULE,
    BaseSettings,
    RefineRequest,
    infotext_seed,
    planned_steps,
    refine,
)
from ..errors import ReimagineError
from ..params import REFINER, REIMAGINE
from .common import add_param, input_images, load_images, model_options, nothing_to_do, progress_bar, wanted


def add_parser(commands: Any) -> None:
    """Add the ``refine`` subcommand (called by :func:`cli.build_parser`)."""
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
    stems = Counter(path.stem for path in inputs)
    paths = [
        out / (f"{p.stem}.png" if stems[p.stem] == 1 else f"{p.stem}-{p.suffix.lstrip('.').lower()}.png")
        for p in inputs
    ]
    sources = {p.resolve() for p in inputs}
    clash = next((p for p in paths if p.resolve() in sources), None)
    if clash is not None:
        raise ReimagineError(f"refusing to overwrite the input {clash}: choose another --out folder")
    return paths


def run(args: argparse.Namespace) -> int:
    """``refine``: one refined PNG per input image, resumable (existing outputs are skipped)."""
    from ..loading import load_sdxl
    from ..outputs import read_infotext, save_png

    inputs = input_images(args.images)
    jobs = [(src, dst) for src, dst in zip(inputs, output_paths(inputs, args.out)) if wanted(dst, args)]
    if not jobs:
        return nothing_to_do(args)
    settings = request_from_args(args)
    replace(settings, images=load_images([jobs[0][0]])).resolved()  # check every value before the slow load
    run_seed = seed_list(-1, 1)[0]

    pipe = load_sdxl(args.model, role="refiner", config_root=args.config_root, device=args.device)
    steps = planned_steps(settings.steps, settings.strength)
    with progress_bar(steps * len(jobs), "refine") as advance:
        for src, dst in jobs:
            image, text = refine_one(pipe, settings, load_images([src])[0], read_infotext(src), run_seed, advance)
            save_png(image, dst, text)
    print(f"wrote {len(jobs)} image(s) to {args.out}")
    return 0


def request_from_args(args: argparse.Namespace) -> RefineRequest:
    """The :class:`RefineRequest` (without images) that the ``refine`` flags describe (pixel mode)."""
    return RefineRequest(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        strength=args.strength,
        steps=args.steps,
        mode="Pixel",
        cfg_scale=args.cfg_scale,
        sampler_name=args.sampler_name,
        scheduler=args.scheduler,
        aesthetic_score=args.aesthetic_score,
        negative_aesthetic_score=args.negative_aesthetic_score,
        seed=args.seed,
    )


def refine_one(
    pipe: Any, settings: RefineRequest, image: Any, source_infotext: str | None, run_seed: int, progress: Any = None
):
    """Refine one input image; returns ``(image, infotext)``. Seed -1 takes the input's infotext seed, else
    ``run_seed`` (one random seed per run)."""
    base = BaseSettings.from_infotext(source_infotext)
    seed = settings.seed if settings.seed != -1 else infotext_seed(base.infotext, run_seed)
    result = refine(pipe, replace(settings, images=[image], base=base, seed=seed), progress=progress)
    return result.images[0], result.infotexts[0]
