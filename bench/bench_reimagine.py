"""Reimagine engine vs a plain diffusers ``StableUnCLIPImg2ImgPipeline`` call, on the same weights and parameters.

    python bench/bench_reimagine.py                 # tiny random model (CPU), as built by the test fixtures
    python bench/bench_reimagine.py --full --device cuda --size 768   # full-size random weights (bundled configs)
    python bench/bench_reimagine.py --model models/Stable-diffusion/sd21-unclip-h.ckpt --device cuda

Prints the median time of each, their ratio (goal ≤ 1.03), and the cost of N outputs from one input: one CLIP encode
and batched UNet calls when batch size > 1.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import clocks_for, interleaved, median, print_ratios, random_unclip


def _pipe(args: argparse.Namespace):
    import torch

    from extension.loading import load_unclip

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    if args.model:
        return load_unclip(args.model, device=args.device, dtype=dtype)
    if args.full:
        return random_unclip(args.kind).to(args.device, dtype)
    from tests.tiny_models import build_tiny_models

    cache = Path(tempfile.gettempdir()) / "reimagine-bench-tiny"
    return load_unclip(build_tiny_models(cache)[args.kind].folder, device=args.device, dtype=dtype)


def _count_calls(module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a real model (file, folder or hub id) instead of random weights")
    parser.add_argument("--full", action="store_true", help="full-size random weights from the bundled configs")
    parser.add_argument("--kind", default="unclip-h", choices=["unclip-h", "unclip-l"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=0, help="output side (default: the model's native size)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=4, help="N for the N-outputs-from-one-input comparison")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU runs only)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from extension.engine.unclip import VariationRequest, generate, native_size

    pipe = _pipe(args)
    pipe.set_progress_bar_config(disable=True)
    size = args.size or native_size(pipe)
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (size, size, 3), dtype=np.uint8))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    common = {"steps": args.steps, "cfg_scale": 10.0, "noise_level": 100, "width": size, "height": size}

    def ours() -> None:
        generate(pipe, VariationRequest(images=[image], sampler_name="DDIM", seed=1, **common))

    def diffusers() -> None:
        pipe(
            image=image,
            num_inference_steps=args.steps,
            guidance_scale=10.0,
            noise_level=100,
            width=size,
            height=size,
            generator=torch.Generator("cpu").manual_seed(1),
        )

    clocks, device_name = clocks_for(args.device, args.threads)
    print(f"model: {args.model or ('full-size random ' if args.full else 'tiny random ') + args.kind}")
    print(f"device: {device_name} {args.dtype}, {size}x{size}, {args.steps} DDIM steps, cfg 10, {args.repeats} repeats")
    print_ratios(ours, diffusers, clocks, args.repeats, sync, goal=1.03)

    clip_calls, unet_calls = _count_calls(pipe.image_encoder), _count_calls(pipe.unet)
    rows = []
    for label, n_iter, batch_size in (("batch count N", args.batch, 1), ("batch size N", 1, args.batch)):
        del clip_calls[:], unet_calls[:]
        request = VariationRequest(
            images=[image], sampler_name="DDIM", seed=1, n_iter=n_iter, batch_size=batch_size, **common
        )
        with torch.inference_mode():
            seconds = median(interleaved({label: lambda r=request: generate(pipe, r)}, 3, sync)[label])
        per_run = 4  # warm-up + 3 timed runs
        rows.append((label, seconds, len(clip_calls) // per_run, len(unet_calls) // per_run))
    print(f"\nN = {args.batch} outputs from one input")
    print(f"{'':16}{'median s':>10}{'CLIP encodes':>14}{'UNet calls':>12}")
    for label, seconds, clips, unets in rows:
        print(f"{label:16}{seconds:10.4f}{clips:14d}{unets:12d}")


if __name__ == "__main__":
    main()
