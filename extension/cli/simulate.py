"""The hidden ``--simulate-gpu-ms T`` of ``--engine ray`` (``bench/bench_ray.py``): measure the orchestration alone.

Each actor holds a :class:`SimulatedPipe` instead of a loaded model, and the diffusion call (:func:`iter_batches` for
``vary``, :func:`refine` for ``refine``) becomes a device-like wait of ``T`` ms per image: a sleep, no CPU, as a host
thread waits on a GPU. Everything else of ours runs for real: listing and reading the inputs, the skip-what-exists
checks, decoding, the seeds, the output size, the infotext, the pixels-to-PIL conversion, PNG encoding and the atomic
write, and Ray Data's scheduling and retries.

The "diffusion output" is a deterministic image of the job's real size, derived from the seed: a smooth random field
(bicubic from 1/16 scale) with a little grain, which PNG-encodes like a photo (about 1.0 MB at 768², against 1.7 MB
for pure noise and 0.8 MB without grain). Its float pixels are built once per size and seed class and cached; per
image the actor pays only what a real run pays on the host after the GPU: float → uint8 → PIL.
"""

from __future__ import annotations

import time
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

VARIANTS = 8  # distinct pictures per size (seed % VARIANTS): realistic encoding, no per-image generation cost


class SimulatedPipe:
    """What our code reads from a loaded pipeline: unCLIP 2.1's native 768² (``unet.config.sample_size`` 96 × VAE
    factor 8), the scheduler's training length, a model identity; plus the wait per image."""

    def __init__(self, milliseconds: float) -> None:
        self.seconds = max(0.0, float(milliseconds)) / 1000
        self.unet = SimpleNamespace(config=SimpleNamespace(sample_size=96, in_channels=4))
        self.vae_scale_factor = 8
        self.scheduler = SimpleNamespace(config={"num_train_timesteps": 1000})
        self.reimagine_info = SimpleNamespace(name=f"simulated-{milliseconds:g}ms", hash="")

    def wait(self, images: int) -> None:
        """The device's share of ``images`` images: the host thread sleeps (a GPU sync uses no CPU either)."""
        if self.seconds:
            time.sleep(self.seconds * images)


@lru_cache(maxsize=4 * VARIANTS)
def _field(variant: int, width: int, height: int) -> Any:
    """Float RGB pixels in 0…1 (as a VAE decode gives them): a smooth random field plus grain."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(variant)
    low = (rng.random((max(1, height // 16), max(1, width // 16), 3)) * 255).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(low).resize((width, height), Image.BICUBIC), dtype=np.float32) / 255
    grain = rng.normal(0, 3 / 255, (height, width, 3)).astype(np.float32)
    return np.clip(smooth + grain, 0, 1)


def picture(seed: int, size: tuple[int, int]) -> Any:
    """The simulated output for ``seed`` at ``size`` (PIL, RGB): the same seed always gives the same pixels."""
    from PIL import Image

    pixels = _field(seed % VARIANTS, *size)
    return Image.fromarray((pixels * 255).round().astype("uint8"))  # diffusers' numpy_to_pil, as after a decode


def iter_batches(pipe: SimulatedPipe, request: Any, *, progress: Any = None, **_: Any):
    """:func:`extension.engine.unclip.iter_batches` with the CLIP encode, sampling and decode replaced by the wait."""
    from ..engine import Result, seed_list
    from ..engine.unclip import build_infotext, fit_for_clip, output_size

    request = request.validated()
    width, height = output_size(request, pipe)
    for image in request.images:
        fit_for_clip(image, 224, request.fit)  # the host side of the CLIP encode
    all_seeds = seed_list(request.seed, request.n_iter * request.batch_size)
    for batch_index in range(request.n_iter):
        seeds = all_seeds[batch_index * request.batch_size : (batch_index + 1) * request.batch_size]
        pipe.wait(len(seeds))
        if progress is not None:
            progress(request.steps, request.steps)
        images = [picture(seed, (width, height)) for seed in seeds]
        infotexts = [build_infotext(request, pipe, seed, (width, height)) for seed in seeds]
        yield Result(images=images, infotexts=infotexts, seeds=list(seeds), steps=request.steps)


def refine(pipe: SimulatedPipe, request: Any, **_: Any):
    """:func:`extension.engine.refiner.refine` in pixel mode (the CLI's) with encode, sampling and decode replaced."""
    from ..engine import seed_list
    from ..engine.refiner import RefineResult, build_infotext

    request = request.resolved()
    seeds = list(request.seeds) if request.seeds is not None else seed_list(request.seed, len(request.images))
    result = RefineResult(mode="Pixel")
    for image, seed in zip(request.images, seeds):
        pipe.wait(1)
        result.images.append(picture(seed, image.size))
        result.seeds.append(seed)
        result.infotexts.append(build_infotext(request, pipe, "Pixel", seed, image.size))
    return result
