"""``--engine ray`` vs the local CLI on this CPU: 64 images, the tiny unCLIP model (tests/tiny_models.py).

    REIMAGINE_TINY_CACHE=/tmp/tiny-cache python bench/bench_ray.py [--images 64] [--steps 4]
    python bench/bench_ray.py --simulate-gpu-ms 250 2000 --images 256 [--workers 1 2 4 8] [--rows-in-flight 2 1]
    python bench/bench_ray.py --profile 64

With ``--simulate-gpu-ms`` no model is loaded: each actor's diffusion call becomes a wait of T ms per image and
everything else runs for real (``bench/ray_simulation.py``); ``--profile`` splits one actor's host work per image.

Prints the wall time of: the local CLI, Ray with 1 worker, Ray with 2 workers (each on a fresh output folder, Ray
started once beforehand and not counted), and the ratios: Ray(1)/local per image, and the throughput of 2 workers
over 1. Each wall time includes one pipeline load per worker (the local CLI: one) and, for Ray, starting the actor
processes (import torch + diffusers: seconds, paid once per run). With the tiny model that start-up is larger than
the work itself, so each configuration also runs on an eighth of the images, and the marginal cost per image (the
slope between the two runs, start-up excluded) is printed next to the whole-run figures. Also prints the load
average: on a shared machine the 2-worker figure only means something when 2 cores are free.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extension.cli import main  # noqa: E402
from extension.cli.ray_engine import SINGLE_NODE_ENV  # noqa: E402


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    status = main(argv)
    if status != 0:
        raise SystemExit(f"run failed with status {status}: {argv}")
    return time.perf_counter() - start


def bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import ray_simulation

    ray_simulation.add_arguments(parser)
    options = parser.parse_args()
    if options.profile:
        return ray_simulation.profile(options)
    if options.simulate_gpu_ms:
        return ray_simulation.simulate(options)

    import ray
    import torch

    from tests.tiny_models import build_tiny_models

    os.environ["REIMAGINE_RAY_THREADS"] = "1"
    torch.set_num_threads(1)  # the local run gets one core too: per-image cost on equal footing
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    tiny = build_tiny_models(os.environ.get("REIMAGINE_TINY_CACHE") or root / "models")
    inputs = root / "in"
    inputs.mkdir()
    for index in range(options.images):
        pixels = np.random.RandomState(index).randint(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(inputs / f"img{index:03d}.png")

    def argv(out: str, count: int, *extra: str) -> list[str]:
        model = str(tiny.unclip_h.folder)
        sub = inputs if count == options.images else few
        return ["vary", str(sub), "--model", model, "--out", str(root / out), "--n", "1", "--steps", str(options.steps), "--seed", "1", *extra]  # fmt: skip

    n, m = options.images, max(1, options.images // 8)
    few = root / "in-few"
    few.mkdir()
    for path in sorted(inputs.iterdir())[:m]:
        (few / path.name).write_bytes(path.read_bytes())
    configs = {"local CLI   ": (), "ray 1 worker": ("--engine", "ray", "--workers", "1"), "ray 2 worker": ("--engine", "ray", "--workers", "2")}  # fmt: skip
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    timed(argv("warm", m))  # imports and the first model load, for every configuration alike
    os.environ[SINGLE_NODE_ENV] = "0"  # loopback only, as start_ray does for a local Ray
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    whole, marginal = {}, {}
    for index, (name, extra) in enumerate(configs.items()):
        small = timed(argv(f"run{index}-few", m, *extra))
        whole[name] = timed(argv(f"run{index}", n, *extra))
        marginal[name] = (whole[name] - small) / (n - m)
    ray.shutdown()
    print(f"load average after: {os.getloadavg()}")
    local, one, two = whole.values()
    local_m, one_m, two_m = marginal.values()
    print(f"{n} images, {options.steps} steps; whole run (start-up included) | marginal per image ({n - m} images, start-up excluded)")  # fmt: skip
    for name in configs:
        print(f"{name}: {whole[name]:7.1f} s {whole[name] / n * 1000:7.1f} ms/image | {marginal[name] * 1000:7.1f} ms/image")  # fmt: skip
    print(
        f"ray 1 worker vs local, per image: whole {one / local:.2f}x | marginal {one_m / local_m:.2f}x  (goal <= 1.10)"
    )
    print(f"2 workers vs 1, throughput:        whole {one / two:.2f}x | marginal {one_m / two_m:.2f}x  (goal >= 1.6)")


if __name__ == "__main__":
    bench()
