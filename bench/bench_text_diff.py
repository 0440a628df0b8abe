"""Overhead of a text diff (two text-tower passes + the slerp) over a plain variation, same settings and seed.

    python bench/bench_text_diff.py                      # tiny random unCLIP-H single file (CPU), as the tests build
    python bench/bench_text_diff.py --full --device cuda # full-size random weights + a random text head (bundled configs)
    python bench/bench_text_diff.py --model models/Stable-diffusion/sd21-unclip-h.safetensors --device cuda

Prints the median time of each and their ratio (goal ≤ 1.02 at 20 steps). On the tiny model the UNet is so small that
the text passes weigh far more than at full size: only --full / --model figures speak for real use.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import interleaved, median, random_unclip


def _pipe(args: argparse.Namespace):
    import torch

    from extension.loading import load_unclip
    from extension.loading.text_tower import TextHead

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    if args.model:
        return load_unclip(args.model, device=args.device, dtype=dtype)
    if args.full:
        pipe = random_unclip("unclip-h").to(args.device, dtype)
        config = pipe.text_encoder.config
        pipe.reimagine_text_tower = TextHead(config, pipe.image_normalizer.mean.shape[-1]).to(args.device, dtype)
        return pipe
    from tests.tiny_models import build_tiny_models

    tiny = build_tiny_models(Path(tempfile.gettempdir()) / "reimagine-bench-tiny")
    return load_unclip(tiny.unclip_h.safetensors, config_root=tiny.config_root, device=args.device, dtype=dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a real unCLIP-H single file instead of random weights")
    parser.add_argument("--full", action="store_true", help="full-size random weights from the bundled configs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=0, help="output side (default: the model's native size)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU runs only)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from extension.engine.text_diff import TextDiff
    from extension.engine.unclip import VariationRequest, generate, native_size

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    pipe = _pipe(args)
    size = args.size or native_size(pipe)
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (size, size, 3), dtype=np.uint8))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    request = VariationRequest(images=[image], steps=args.steps, cfg_scale=10.0, seed=1, width=size, height=size)
    edited = VariationRequest(**{**request.__dict__, "edit": TextDiff("an anime drawing", amount=0.3).validated()})
    clock = time.perf_counter if args.device.startswith("cuda") else time.process_time
    times = interleaved(
        {"plain": lambda: generate(pipe, request), "text diff": lambda: generate(pipe, edited)},
        args.repeats,
        sync,
        clock,
    )
    plain, diff = median(times["plain"]), median(times["text diff"])
    print(f"{args.steps} steps, {size}x{size}, {args.device} {args.dtype}, median of {args.repeats}")
    print(f"plain variation: {plain:.4f} s   text diff: {diff:.4f} s   ratio: {diff / plain:.4f} (goal <= 1.02)")


if __name__ == "__main__":
    main()
