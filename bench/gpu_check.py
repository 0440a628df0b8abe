"""Memory plan check: do the models fit small GPUs under the WebUI's flags, how slow is offloading, any black images?

    python bench/gpu_check.py                      # CUDA, fp16, full-size random weights (< 8 min on one large GPU)
    python bench/gpu_check.py --device cpu         # CPU: mid-size refiner, offload overhead (plan vs no plan)

CUDA: for caps of 4, 6, 8, 12 GB (``torch.cuda.set_per_process_memory_fraction``) and no cap, with the flags the
goals name (unCLIP-H: 4 GB ``--lowvram``, 6 GB ``--medvram``; refiner: 6 GB ``--medvram-sdxl``; 8/12 GB and no cap:
no flag, the plan decides), runs Reimagine unCLIP-H 768² batch 1 and 4 and the refiner at 1024² on pixels and on
latents, each with the plan from ``extension.engine.memory`` applied by ``apply_plan``; prints the plan, peak VRAM,
seconds per image, NaN/black images and, without a cap, the ratio to plain diffusers on the same weights.
CPU: the same code path (``plan`` → ``apply_plan``) with model offload to the CPU itself: what the hooks cost.
Goals: unCLIP-H 768² fits 4 GB (--lowvram) and 6 GB (--medvram); refiner 1024² fits 6 GB (--medvram-sdxl); no cap
≤ 1.03× plain diffusers; zero black images.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_refine import random_refiner
from common import median, random_unclip
from PIL import Image

GB = 1024**3


def _image(side: int) -> Image.Image:
    return Image.fromarray(np.random.RandomState(0).randint(0, 256, (side, side, 3), dtype=np.uint8))


def _bad(images) -> int:
    """NaN or all-black images in a ``[B, 3, H, W]`` tensor in 0…1."""
    import torch

    flat = images.flatten(1)
    return int((~torch.isfinite(flat).all(1) | (flat.abs().amax(1) < 1e-3)).sum())


def _cases(steps: int):
    """(name, kind, build, call(pipe, batch) -> images, side, batches)."""
    import torch

    def unclip_call(side):
        image = _image(side)
        return lambda pipe, batch: (
            pipe(
                image=image,
                prompt="",
                height=side,
                width=side,
                num_images_per_prompt=batch,
                num_inference_steps=steps,
                generator=torch.Generator().manual_seed(0),
                output_type="pt",
            ).images
        )

    def refiner_call(side, latent):
        def call(pipe, batch):
            g = torch.Generator().manual_seed(0)
            device = pipe._execution_device
            if latent:
                image = torch.randn(batch, 4, side // 8, side // 8, generator=g).to(device, pipe.unet.dtype)
            else:
                image = torch.rand(batch, 3, side, side, generator=g)
            return pipe(
                prompt="", image=image, strength=0.3, num_inference_steps=steps, generator=g, output_type="pt"
            ).images

        return call

    return [
        ("unclip-h 768²", "unclip-h", unclip_call(768), 768, (1, 4)),
        ("refiner 1024² pixel", "refiner", refiner_call(1024, False), 1024, (1,)),
        ("refiner 1024² latent", "refiner", refiner_call(1024, True), 1024, (1,)),
    ]


def _flags_for(kind: str, cap: int | None):
    from extension.engine.memory import MemoryFlags

    if cap == 4 and kind == "unclip-h":
        return MemoryFlags(lowvram=True)
    if cap == 6:
        return MemoryFlags(medvram_sdxl=True) if kind == "refiner" else MemoryFlags(medvram=True)
    if cap == 4:
        return MemoryFlags(lowvram=True)
    return MemoryFlags()


def run_cuda(args: argparse.Namespace) -> None:
    import torch

    from extension.engine.memory import Job, apply_plan, plan

    total = torch.cuda.get_device_properties(0).total_memory
    for name, kind, call, side, batches in _cases(args.steps):
        build = (
            (lambda: random_unclip("unclip-h"))
            if kind == "unclip-h"
            else (lambda: random_refiner("full", torch.float32, "cpu"))
        )
        for batch in batches:
            baseline = None
            for cap in (None, 12, 8, 6, 4):
                pipe = build().to(dtype=torch.float16)
                torch.cuda.empty_cache()
                limit = total if cap is None else cap * GB
                torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total))
                memory_plan = plan(
                    limit, limit - torch.cuda.memory_allocated(), _flags_for(kind, cap), Job(kind, side, side, batch)
                )
                row = f"{name} x{batch} cap {cap or 'none'} GB: {memory_plan.mode}"
                try:
                    if cap is None:  # plain diffusers first, on the same weights, all on the GPU
                        pipe.to("cuda")
                        call(pipe, batch)
                        torch.cuda.synchronize()
                        start = time.perf_counter()
                        call(pipe, batch)
                        torch.cuda.synchronize()
                        baseline = time.perf_counter() - start
                        pipe.to("cpu")
                    apply_plan(pipe, memory_plan, "cuda")
                    call(pipe, batch)  # warm-up
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    start = time.perf_counter()
                    images = call(pipe, batch)
                    torch.cuda.synchronize()
                    seconds = time.perf_counter() - start
                    peak = torch.cuda.max_memory_allocated() / GB
                    ratio = f", {seconds / baseline:.3f}x plain diffusers" if cap is None and baseline else ""
                    print(f"{row}: peak {peak:.2f} GiB, {seconds / batch:.2f} s/image, bad {_bad(images)}{ratio}")
                except torch.cuda.OutOfMemoryError:
                    print(f"{row}: OUT OF MEMORY (plan: {memory_plan.describe()})")
                finally:
                    del pipe
                    torch.cuda.set_per_process_memory_fraction(1.0)
                    torch.cuda.empty_cache()


def run_cpu(args: argparse.Namespace) -> None:
    """Model offload to the CPU itself: the hooks' overhead against the same pipeline without a plan."""
    import torch

    from extension.engine.memory import MemoryPlan, apply_plan

    torch.set_num_threads(args.threads)
    side = 256
    pipe = random_refiner("mid", torch.float32, "cpu")
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))

    def call():
        return pipe(
            prompt="",
            image=image,
            strength=0.5,
            num_inference_steps=args.steps,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
        ).images

    plain_times, plan_times = [], []
    call()  # warm-up
    plain = call()
    offload = MemoryPlan("model_offload", "cpu", torch.float32, torch.float32, vae_tiling=False)
    for _ in range(args.repeats):  # interleaved: no plan, plan, no plan, plan ...
        pipe.remove_all_hooks()
        pipe._reimagine_memory_plan = None
        start = time.process_time()
        call()
        plain_times.append(time.process_time() - start)
        apply_plan(pipe, offload, "cpu")
        start = time.process_time()
        out = call()
        plan_times.append(time.process_time() - start)
    same = bool(torch.equal(out, plain))
    ratio = median(plan_times) / median(plain_times)
    print(
        f"mid-size refiner {side}², {args.steps} steps x strength 0.5, CPU time, {args.repeats} interleaved runs: "
        f"no plan {median(plain_times):.2f} s, model offload {median(plan_times):.2f} s, ratio {ratio:.3f}; "
        f"output identical: {same}; bad images {_bad(out)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=0, help="sampling steps (default: 20 CUDA, 8 CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="CPU: interleaved timed runs")
    parser.add_argument("--threads", type=int, default=1, help="CPU: torch threads")
    args = parser.parse_args()
    args.steps = args.steps or (20 if args.device == "cuda" else 8)
    if args.device == "cuda":
        run_cuda(args)
    else:
        run_cpu(args)


if __name__ == "__main__":
    main()
