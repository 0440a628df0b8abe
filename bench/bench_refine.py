"""SDXL refiner post-pass vs a plain diffusers ``StableDiffusionXLImg2ImgPipeline`` call, and latent vs pixel mode.

    python bench/bench_refine.py                     # tiny random refiner (CPU), as built by the test fixtures
    python bench/bench_refine.py --mid               # mid-size: the real SDXL VAE, a UNet at 1/4 width (CPU, 256²)
    python bench/bench_refine.py --full --device cuda --dtype fp16 --size 1024   # full-size random weights
    python bench/bench_refine.py --model models/Stable-diffusion/sd_xl_refiner_1.0.safetensors --device cuda

1. Pixel post-pass (``refine`` on an image) vs ``pipe(image=…)`` at the same weights, seed, strength, sampler and
   schedule (the same steps run: ``num_inference_steps = schedule_length(steps, strength)``): median ratio, goal ≤ 1.03.
2. Latent vs pixel, as the WebUI uses them: the pixel flow is "decode the base latents, then pixel post-pass"
   (decode + encode + refine + decode); the latent flow refines the base latents and decodes once. The latent flow
   must be cheaper by at least one VAE encode + decode (timed separately on the same input).
Timings are interleaved (A B A B …) after one warm-up each, so machine noise hits all alike. On the CPU the clock is
the process's CPU time with one torch thread by default (``--clock wall`` for wall time), so other jobs on a shared
machine do not decide the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import interleaved, median


def random_refiner(scale: str, dtype, device):
    """A refiner with random weights from the bundled configs: ``full`` = the real sizes; ``mid`` = the real VAE and
    scheduler, a UNet at 1/4 of the channels (2 transformer layers) and a 4-layer 320-wide text encoder."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from diffusers.schedulers import EulerDiscreteScheduler
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from extension.loading.configs import build_tokenizer, config_dir

    folder = config_dir("sdxl-refiner")
    unet_config = dict(UNet2DConditionModel.load_config(folder / "unet"))
    text_config = CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
    if scale == "mid":
        width = 320
        text_config.update({"hidden_size": width, "intermediate_size": 4 * width, "num_hidden_layers": 4,
                            "num_attention_heads": 5, "projection_dim": width})  # fmt: skip
        unet_config.update(
            block_out_channels=[c // 4 for c in unet_config["block_out_channels"]],
            attention_head_dim=[c // 4 // 16 for c in unet_config["block_out_channels"]],
            transformer_layers_per_block=2,
            cross_attention_dim=width,
            projection_class_embeddings_input_dim=5 * unet_config["addition_time_embed_dim"] + width,
        )
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(unet_config)
    for parameter in unet.parameters():  # zero-initialised output layers would make every step a no-op
        if not parameter.any():
            parameter.data.normal_(0, 0.02)
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
        text_encoder=None,
        text_encoder_2=CLIPTextModelWithProjection(text_config),
        tokenizer=None,
        tokenizer_2=build_tokenizer(folder / "tokenizer_2"),
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_pretrained(folder / "scheduler"),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
        add_watermarker=False,
    )
    return pipe.to(device, dtype)


def _pipe(args: argparse.Namespace):
    import torch

    from extension.loading import load_sdxl

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    if args.model:
        return load_sdxl(args.model, role="refiner", device=args.device, dtype=dtype), args.model
    if args.full or args.mid:
        scale = "full" if args.full else "mid"
        return random_refiner(scale, dtype, args.device), f"{scale}-size random SDXL refiner"
    from tests.tiny_models import build_tiny_models

    cache = Path(tempfile.gettempdir()) / "reimagine-bench-tiny"
    folder = build_tiny_models(cache).sdxl_refiner.folder
    return load_sdxl(folder, role="refiner", device=args.device, dtype=dtype), "tiny random SDXL refiner"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a real refiner (file, folder or hub id) instead of random weights")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="full-size random weights from the bundled configs")
    size.add_argument("--mid", action="store_true", help="real VAE, quarter-width UNet, small text encoder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=0, help="image side (default: 64 tiny, 256 mid, 1024 full)")
    parser.add_argument("--steps", type=int, default=10, help="refiner steps that run")
    parser.add_argument("--strength", type=float, default=0.3)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--clock", choices=["cpu", "wall"], default=None, help="default: cpu on the CPU, else wall")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 with the cpu clock)")
    args = parser.parse_args()
    args.clock = args.clock or ("wall" if args.device.startswith("cuda") else "cpu")

    import numpy as np
    import torch
    from PIL import Image

    from extension.engine.refiner import (
        RefineRequest,
        decode_latents,
        encode_image,
        planned_steps,
        refine,
        schedule_length,
    )
    from extension.engine.samplers import make_scheduler

    if args.threads or args.clock == "cpu":
        torch.set_num_threads(args.threads or 1)
    pipe, label = _pipe(args)
    pipe.set_progress_bar_config(disable=True)
    side = args.size or (1024 if args.full or args.model else 256 if args.mid else 64)
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (side, side, 3), dtype=np.uint8))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    settings = {"steps": args.steps, "strength": args.strength, "cfg_scale": args.cfg, "sampler_name": "Euler",
                "scheduler": "Automatic", "prompt": "a photo", "negative_prompt": "", "seed": 1}  # fmt: skip
    plain_scheduler = make_scheduler(dict(pipe.scheduler.config), "Euler", "Automatic")
    base_latents = encode_image(pipe, image, torch.Generator().manual_seed(0))  # stands in for the base's latents

    def ours_pixel() -> None:
        refine(pipe, RefineRequest(images=[image], **settings))

    def diffusers_pixel() -> None:
        saved, pipe.scheduler = pipe.scheduler, plain_scheduler
        try:
            pipe(
                prompt="a photo",
                image=image,
                strength=args.strength,
                num_inference_steps=schedule_length(args.steps, args.strength),
                guidance_scale=args.cfg,
                generator=torch.Generator("cpu").manual_seed(1),
            )
        finally:
            pipe.scheduler = saved

    def pixel_flow() -> None:  # the WebUI decodes the base latents, the pixel post-pass re-encodes them
        decoded = pipe.image_processor.postprocess(decode_latents(pipe, base_latents), output_type="pil")[0]
        refine(pipe, RefineRequest(images=[decoded], **settings))

    def latent_flow() -> None:
        refine(pipe, RefineRequest(latents=base_latents, latent_family="sdxl", **settings))

    def vae_encode() -> None:
        encode_image(pipe, image, torch.Generator().manual_seed(0))

    def vae_decode() -> None:
        decode_latents(pipe, base_latents)

    runs = {"ours pixel": ours_pixel, "diffusers pixel": diffusers_pixel, "pixel flow": pixel_flow,
            "latent flow": latent_flow, "VAE encode": vae_encode, "VAE decode": vae_decode}  # fmt: skip
    with torch.inference_mode():
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        times = {name: median(values) for name, values in interleaved(runs, args.repeats, sync, clock).items()}

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    steps = planned_steps(args.steps, args.strength)
    print(f"model: {label}")
    print(f"device: {device_name} {args.dtype}, torch threads {torch.get_num_threads()}, {side}x{side}, "
          f"{args.clock} clock")  # fmt: skip
    print(f"refiner: {steps} Euler steps at strength {args.strength} (schedule of "
          f"{schedule_length(args.steps, args.strength)}), cfg {args.cfg}, {args.repeats} interleaved repeats")  # fmt: skip
    print(f"\n{'':34}{'median s':>10}")
    for name, seconds in times.items():
        print(f"{name:34}{seconds:10.4f}")
    ratio = times["ours pixel"] / times["diffusers pixel"]
    saving = times["pixel flow"] - times["latent flow"]
    vae = times["VAE encode"] + times["VAE decode"]
    print(f"\nratio ours/diffusers (pixel post-pass): {ratio:.3f}  (goal <= 1.03)")
    print(f"latent flow saves {saving:.4f} s = {saving / vae:.2f} x (VAE encode + decode = {vae:.4f} s)  (goal >= 1)")


if __name__ == "__main__":
    main()
