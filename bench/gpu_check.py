"""Memory plan check: do the models fit small GPUs under the WebUI's flags, how slow is offloading, any black images?

    python bench/gpu_check.py                      # CUDA, fp16, full-size random weights; < 10 min on one large GPU
    python bench/gpu_check.py --device cpu         # CPU: mid-size refiner, offload overhead (plan vs no plan)

CUDA: every cell of README's memory table. For no cap and caps of 24, 12, 8, 6 and 4 GB
(``torch.cuda.set_per_process_memory_fraction``) with no flag, and at 6 and 4 GB again with the flags the goals name
(unCLIP-H: 4 GB ``--lowvram``, 6 GB ``--medvram``; refiner: 4 GB ``--lowvram``, 6 GB ``--medvram-sdxl``), runs
Reimagine unCLIP-H 768² batch 1 and 4 and the refiner at 1024² on pixels and on latents, each with the plan from
``extension.device.memory`` applied by ``apply_plan``; prints the plan, its estimate, peak VRAM, seconds per image,
NaN/black images and, without a cap, the ratio to plain diffusers on the same weights; writes all of it as JSON
(``--json``). Random weights are built once per model and deep-copied per run; runs not started within
``--max-minutes`` are listed as skipped, so the whole check ends unattended in under 10 minutes.
CPU: the same code path (``plan`` → ``apply_plan``) with model offload to the CPU itself: what the hooks cost.
Goals: unCLIP-H 768² fits 4 GB (--lowvram) and 6 GB (--medvram); refiner 1024² fits 6 GB (--medvram-sdxl); no cap
≤ 1.03× plain diffusers; zero black images.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

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


# (cap in GB or None, the goal's flag on?): every column of README's memory table (no flag), then the flagged goals
CAPS = [(None, False), (24, False), (12, False), (8, False), (6, False), (6, True), (4, False), (4, True)]


def _flags_for(kind: str, cap: int | None, flagged: bool):
    """The flag a goal names: unCLIP-H 4 GB ``--lowvram``, 6 GB ``--medvram``; refiner 6 GB ``--medvram-sdxl``."""
    from extension.device.memory import MemoryFlags

    if not flagged:
        return MemoryFlags()
    if cap == 6:
        return MemoryFlags(medvram_sdxl=True) if kind == "refiner" else MemoryFlags(medvram=True)
    return MemoryFlags(lowvram=True)


def _fresh(template, build):
    """A pipeline with the template's weights (a deep copy: seconds, where building random weights takes a minute);
    a plan's hooks and moves never reach the template."""
    import copy

    try:
        return copy.deepcopy(template)
    except Exception as error:  # noqa: BLE001 - a component that cannot be copied: build it again
        print(f"  (deepcopy failed: {error}; rebuilding)")
        return build()


def run_cuda(args: argparse.Namespace) -> None:
    import torch

    from extension.device.memory import Job, apply_plan, plan

    started = time.perf_counter()
    total = torch.cuda.get_device_properties(0).total_memory
    report = {"device": torch.cuda.get_device_name(0), "total_gib": round(total / GB, 1), "steps": args.steps}
    report["torch"] = torch.__version__
    rows = report["rows"] = []
    templates: dict[str, object] = {}
    for name, kind, call, side, batches in _cases(args.steps):

        def build(kind=kind):
            if kind == "unclip-h":
                return random_unclip("unclip-h").to(dtype=torch.float16)
            return random_refiner("full", torch.float32, "cpu").to(dtype=torch.float16)

        for batch in batches:
            baseline = None
            for cap, flagged in CAPS:
                flags = _flags_for(kind, cap, flagged)
                row = {"case": name, "batch": batch, "cap_gb": cap, "flags": flags.active()}
                rows.append(row)
                label = f"{name} x{batch} cap {cap or 'none'} GB {'+'.join(flags.active()) or 'no flag'}"
                if time.perf_counter() - started > args.max_minutes * 60:
                    row["skipped"] = f"over --max-minutes {args.max_minutes}"
                    print(f"{label}: skipped ({row['skipped']})")
                    continue
                if kind not in templates:
                    templates.clear()  # one model's weights in RAM at a time
                    templates[kind] = build()
                pipe = _fresh(templates[kind], build)
                torch.cuda.empty_cache()
                limit = total if cap is None else cap * GB
                torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total))
                job = Job(kind, side, side, batch)
                memory_plan = plan(limit, limit - torch.cuda.memory_allocated(), flags, job)
                row.update(mode=memory_plan.mode, plan=memory_plan.describe())
                row["estimate_gib"] = round(memory_plan.estimate / GB, 2)
                try:
                    if cap is None:  # plain diffusers first, on the same weights, all on the GPU
                        pipe.to("cuda")
                        call(pipe, batch)
                        torch.cuda.synchronize()
                        start = time.perf_counter()
                        call(pipe, batch)
                        torch.cuda.synchronize()
                        baseline = time.perf_counter() - start
                        row["plain_s_per_image"] = round(baseline / batch, 3)
                        pipe.to("cpu")
                    apply_plan(pipe, memory_plan, "cuda")
                    call(pipe, batch)  # warm-up
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    start = time.perf_counter()
                    images = call(pipe, batch)
                    torch.cuda.synchronize()
                    seconds = time.perf_counter() - start
                    row["peak_gib"] = round(torch.cuda.max_memory_allocated() / GB, 2)
                    row["s_per_image"] = round(seconds / batch, 3)
                    row["bad_images"] = _bad(images)
                    if cap is None and baseline:
                        row["ratio_to_plain"] = round(seconds / baseline, 3)
                    ratio = f", {row['ratio_to_plain']:.3f}x plain diffusers" if "ratio_to_plain" in row else ""
                    print(
                        f"{label}: {memory_plan.mode}: peak {row['peak_gib']:.2f} GiB (plan ~{row['estimate_gib']:.1f}), "
                        f"{row['s_per_image']:.2f} s/image, bad {row['bad_images']}{ratio}",
                        flush=True,
                    )
                except torch.cuda.OutOfMemoryError:
                    row["error"] = "out of memory"
                    print(f"{label}: OUT OF MEMORY (plan: {memory_plan.describe()})", flush=True)
                finally:
                    del pipe
                    torch.cuda.set_per_process_memory_fraction(1.0)
                    torch.cuda.empty_cache()
    report["minutes"] = round((time.perf_counter() - started) / 60, 1)
    Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"{report['minutes']} min; figures written to {args.json}")


def run_cpu(args: argparse.Namespace) -> None:
    """Model offload to the CPU itself: the hooks' overhead against the same pipeline without a plan."""
    import torch

    from extension.device.memory import MemoryPlan, apply_plan

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
    parser.add_argument("--json", default="gpu_check.json", help="CUDA: where the figures go (default: %(default)s)")
    parser.add_argument(
        "--max-minutes", type=float, default=8.5, help="CUDA: runs not started by then are skipped (default: 8.5)"
    )
    args = parser.parse_args()
    args.steps = args.steps or (20 if args.device == "cuda" else 8)
    if args.device == "cuda":
        run_cuda(args)
    else:
        run_cpu(args)


if __name__ == "__main__":
    main()
