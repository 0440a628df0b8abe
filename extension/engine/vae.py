"""The VAE steps both engines share (``engine/unclip.py``, ``engine/refiner.py``), guarded against half-precision
overflow: a NaN/inf result (a black image) is redone in fp32, as A1111 does with ``--no-half-vae``'s automatic
fallback (``modules/devices.py`` ``test_for_nans``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from .text_encoding import check_latents


def _needs_fp32(vae: Any, trust_config: bool) -> bool:
    """A reduced-precision VAE known to overflow: it already did, or (``trust_config``) it is fp16 and its config says
    so (SDXL's ``force_upcast``, which diffusers honours for fp16 only)."""
    if getattr(vae, "_fp32_only", False):
        return True
    return trust_config and vae.dtype == torch.float16 and bool(vae.config.get("force_upcast", False))


def vae_guarded(vae: Any, run: Callable[[], torch.Tensor], *, trust_config: bool = True) -> torch.Tensor:
    """Run a VAE computation (``run`` casts its input to ``vae.dtype``) so that half-precision overflow never
    reaches the image: known-bad fp16 VAEs run in fp32 directly; otherwise a non-finite result is retried in fp32
    and the VAE is remembered as fp32-only. The VAE's dtype is restored afterwards. ``trust_config=False`` ignores
    the config's ``force_upcast`` (diffusers' SD 2.x pipelines do not upcast)."""
    if vae.dtype == torch.float32:
        return run()
    if not _needs_fp32(vae, trust_config):
        out = run()
        if bool(torch.isfinite(out).all()):
            return out
        vae._fp32_only = True  # the next calls go straight to fp32
    dtype = vae.dtype
    vae.to(dtype=torch.float32)
    try:
        return run()
    finally:
        vae.to(dtype=dtype)


@torch.no_grad()
def decode_latents(
    pipe: Any, latents: torch.Tensor, what: str | None = None, *, trust_config: bool = True
) -> torch.Tensor:
    """One VAE decode of scaled latents → pixels in −1…1, NaN-guarded (:func:`vae_guarded`); ``what`` names the
    model in the shape check's message (``text_encoding.check_latents``)."""
    check_latents(pipe, latents, *((what,) if what else ()))
    vae = pipe.vae
    unscaled = latents / vae.config.scaling_factor
    device = pipe._execution_device
    return vae_guarded(
        vae, lambda: vae.decode(unscaled.to(device=device, dtype=vae.dtype)).sample, trust_config=trust_config
    )


@torch.no_grad()
def decode_images(pipe: Any, latents: torch.Tensor, *, trust_config: bool = True) -> list[Image.Image]:
    """:func:`decode_latents` → PIL images (diffusers' own post-processing)."""
    pixels = decode_latents(pipe, latents, trust_config=trust_config)
    return pipe.image_processor.postprocess(pixels, output_type="pil")


@torch.no_grad()
def encode_mean(pipe: Any, image: Image.Image, width: int, height: int, *, trust_config: bool = True) -> torch.Tensor:
    """``image`` resized to ``width``×``height`` (diffusers' ``VaeImageProcessor.preprocess``), VAE-encoded → the
    latent distribution's mean, scaled, ``[1, C, H/8, W/8]`` (diffusers' ``retrieve_latents(sample_mode="argmax")``),
    NaN-guarded."""
    vae = pipe.vae
    pixels = pipe.image_processor.preprocess(image.convert("RGB"), height=height, width=width)
    pixels = pixels.to(pipe._execution_device)
    mean = vae_guarded(vae, lambda: vae.encode(pixels.to(vae.dtype)).latent_dist.mean, trust_config=trust_config)
    return mean * vae.config.scaling_factor
