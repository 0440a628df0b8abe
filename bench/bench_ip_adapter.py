"""IP-Adapter variation (extension/engine/ip_adapter.py) vs plain diffusers with ``load_ip_adapter``, same weights.

    python bench/bench_ip_adapter.py                          # tiny random SD 1.5 + ip-adapter_sd15 (CPU)
    python bench/bench_ip_adapter.py --adapter ip-adapter-plus_sdxl_vit-h.bin
    python bench/bench_ip_adapter.py --base models/Stable-diffusion/v1-5.safetensors \\
        --adapter-file models/ipadapter/ip-adapter_sd15.safetensors \\
        --encoder models/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors --device cuda --dtype fp16

Prints the median wall (and, on the CPU, process CPU) time of each and their ratio (goal ≤ 1.03), then keep
composition k = 0.75 / 0.5 / 0.25 against the full run (goal ≈ 1 − k of it: img2img at strength 1 − k).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from common import clocks_for, interleaved, median, print_ratios


def _files(args: argparse.Namespace) -> tuple[Path, Path, Path, Path | None]:
    """(base, adapter, encoder, config root) — real files, or the tiny ones the tests build."""
    if args.base:
        return Path(args.base), Path(args.adapter_file), Path(args.encoder), None
    from tests.tiny_ipadapter import ADAPTERS, build_tiny_ipadapter
    from tests.tiny_models import build_tiny_models

    cache = os.environ.get("REIMAGINE_TINY_CACHE") or Path(tempfile.gettempdir()) / "reimagine-bench-tiny"
    tiny = build_tiny_ipadapter(build_tiny_models(cache))
    base = tiny.sd1 if ADAPTERS[args.adapter][0] == "sd1" else tiny.sdxl
    return base, tiny.adapter(args.adapter), tiny.unclip_h, tiny.config_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default="ip-adapter_sd15.safetensors", help="tiny adapter file name")
    parser.add_argument("--base", help="a real SD 1.5 / SDXL single file (with --adapter-file and --encoder)")
    parser.add_argument("--adapter-file")
    parser.add_argument("--encoder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=0, help="output side (default: the model's native size)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU runs only)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from diffusers import EulerDiscreteScheduler
    from PIL import Image

    from extension.engine.ip_adapter import IPAdapterOptions, IPAdapterVariation
    from extension.engine.unclip import VariationRequest, native_size
    from extension.loading.ip_adapter import load_ip_adapter_pipeline

    base, adapter, encoder, config_root = _files(args)
    pipe = load_ip_adapter_pipeline(
        base, adapter, encoder, config_root=config_root, device=args.device, dtype=args.dtype
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)  # the sampler both runs use
    size = args.size or native_size(pipe)
    clip = pipe.feature_extractor.crop_size["height"]
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (clip, clip, 3), dtype=np.uint8))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    request = VariationRequest(
        images=[image], prompt="a photo", steps=args.steps, cfg_scale=7.0, sampler_name="Euler", seed=1,
        width=size, height=size,
    )  # fmt: skip
    variation = IPAdapterVariation(pipe)

    def ours() -> None:
        variation(request, IPAdapterOptions(image_strength=0.8))

    def diffusers() -> None:  # the documented way: set_ip_adapter_scale + ip_adapter_image
        pipe.set_ip_adapter_scale(0.8)
        pipe(
            prompt="a photo", ip_adapter_image=image, num_inference_steps=args.steps, guidance_scale=7.0,
            width=size, height=size, generator=torch.Generator("cpu").manual_seed(1),
        )  # fmt: skip

    clocks, device_name = clocks_for(args.device, args.threads)
    print(f"base: {base.name}, adapter: {adapter.name}, encoder: {encoder.name}")
    print(f"device: {device_name} {args.dtype}, {size}x{size}, {args.steps} Euler steps, cfg 7, {args.repeats} repeats")
    print_ratios(ours, diffusers, clocks, args.repeats, sync, goal=1.03)

    runs = {
        f"k={k}": (lambda k=k: variation(replace(request, keep_composition=k), IPAdapterOptions(image_strength=0.8)))
        for k in (0.75, 0.5, 0.25)
    }
    runs["full (k=0)"] = ours
    with torch.inference_mode():
        times = interleaved(runs, 3, sync)
    full = median(times["full (k=0)"])
    print("\nkeep composition k: time / full run (goal ≈ 1 − k; the VAE encode and decode are fixed costs)")
    for label in ("k=0.75", "k=0.5", "k=0.25"):
        print(f"{label:8}{median(times[label]) / full:8.3f}")


if __name__ == "__main__":
    main()
