"""Live previews of latents: the WebUI's "Approx cheap" linear latent → RGB map, and its "every N steps" rule.

Pure: no WebUI, no gradio. The factors are the ones AUTOMATIC1111 v1.10.1 uses in
``modules/sd_vae_approx.py:70-103`` (``cheap_approximation``): one RGB row per latent channel, applied per pixel, so
the preview has the latent's size (1/8 of the image's), as the WebUI's own "Approx cheap" preview has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

SD = "sd"
"""SD 1.x / 2.x latents (unCLIP 2.1 uses the SD 2.x VAE: the same 4-channel space as SD 1.x)."""

SDXL = "sdxl"
"""SDXL latents (base and refiner share the VAE)."""

# modules/sd_vae_approx.py:91-97 (A1111 v1.10.1): the SD 1.x/2.x branch (``else``) of cheap_approximation.
SD_RGB_FACTORS = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)

# modules/sd_vae_approx.py:84-90 (A1111 v1.10.1): the ``is_sdxl`` branch of cheap_approximation.
SDXL_RGB_FACTORS = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)

RGB_FACTORS = {SD: SD_RGB_FACTORS, SDXL: SDXL_RGB_FACTORS}


def cheap_rgb(latents: Any, family: str) -> Any:
    """Latents ``[..., 4, h, w]`` (as the UNet sees them) → RGB ``[..., 3, h, w]`` in about −1…1."""
    import torch

    factors = torch.tensor(RGB_FACTORS[family], dtype=torch.float32, device=latents.device)
    return torch.einsum("...lxy,lr->...rxy", latents.float(), factors)


def to_images(latents: Any, family: str) -> list[Any]:
    """One PIL image per latent of the batch ``[B, 4, h, w]``, ``h × w`` pixels (the WebUI's
    ``single_sample_to_image`` with "Approx cheap": ``x * 0.5 + 0.5``, clamped, to 8 bits)."""
    import numpy as np
    from PIL import Image

    rgb = (cheap_rgb(latents.detach(), family) * 0.5 + 0.5).clamp(0.0, 1.0)
    pixels = (rgb * 255.0).round().to("cpu").numpy().astype(np.uint8)
    return [Image.fromarray(np.moveaxis(sample, 0, 2)) for sample in pixels]


def grid(images: Sequence[Any]) -> Any:
    """The images in one grid, as the WebUI's ``images.image_grid`` lays out a batch preview by default
    (``modules/images.py:36-48`` with the default ``n_rows`` −1: rows = round(√n), columns = ⌈n / rows⌉)."""
    from PIL import Image

    if len(images) == 1:
        return images[0]
    rows = max(1, min(len(images), round(math.sqrt(len(images)))))
    cols = math.ceil(len(images) / rows)
    width, height = images[0].size
    sheet = Image.new("RGB", (cols * width, rows * height), "black")
    for index, image in enumerate(images):
        sheet.paste(image, (index % cols * width, index // cols * height))
    return sheet


def preview_image(latents: Any, family: str, as_grid: bool = True) -> Any:
    """The preview of a batch: all of it as a grid (the WebUI's "Show previews of all images generated in a batch as
    a grid"), or its first image."""
    images = to_images(latents, family)
    return grid(images) if as_grid else images[0]


def due(step: int, last: int, every: int, enabled: bool = True) -> bool:
    """Whether step ``step`` gets a new preview, the previous one having been made at ``last`` (0 = none in this job).

    The WebUI's rule (``modules/shared_state.py:136-142``, ``State.set_current_image``): a preview when
    ``step - last >= every``, unless live previews are off or ``every`` is −1 (then only the finished batch is
    shown); 0 = every step.
    """
    return enabled and every >= 0 and step - last >= every
