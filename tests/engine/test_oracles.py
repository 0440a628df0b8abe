"""Independent oracles for the unCLIP engine and the refiner: diffusers' own ``StableUnCLIPImg2ImgPipeline`` on the same
weights, counts of real UNet calls, and the textbook slerp formula written here in numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from extension.engine.samplers import resolved_schedule
from extension.engine.unclip import (
    VariationRequest,
    augment_embedding,
    augmentation_noise,
    encode_image,
    generate,
    slerp,
)
from extension.sampler_names import SAMPLERS, SCHEDULES

SAMPLER_NAMES = list(SAMPLERS)
# k-diffusion (the WebUI's samplers) evaluates the model twice per step for these, except on the last step to σ = 0.
SECOND_ORDER = {"Heun", "DPM++ SDE"}


def _image(seed: int) -> Image.Image:
    pixels = np.random.RandomState(seed).randint(0, 256, (64, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module", params=["unclip-h", "unclip-l"])
def kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pipe(kind, tiny):
    from extension.loading import load_unclip

    kwargs = {"karlo_stats": tiny.karlo_stats} if kind == "unclip-l" else {}
    return load_unclip(tiny[kind].folder, **kwargs)


class UnetCalls:
    """Counts real forward calls of a UNet (a forward hook, so every call is seen whatever calls it)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.count = 0
        self._handle = unet.register_forward_hook(self._hook)

    def _hook(self, *_args) -> None:
        self.count += 1

    def remove(self) -> None:
        self._handle.remove()


# --- (1) noise augmentation vs diffusers' noise_image_embeddings ---------------------------------------------------


@pytest.mark.parametrize("level", [0, 200, 999])
def test_noise_augmentation_matches_diffusers(pipe, level) -> None:
    """-h (identity statistics) and -l (Karlo statistics): diffusers' StableUnCLIPImg2ImgPipeline.noise_image_embeddings."""
    from diffusers import StableUnCLIPImg2ImgPipeline

    embed = torch.randn((2, pipe.image_encoder.config.projection_dim), generator=torch.Generator().manual_seed(level))
    noise = augmentation_noise([7, 8], embed.shape[-1])
    ours = augment_embedding(pipe, embed, level, noise)
    expected = StableUnCLIPImg2ImgPipeline.noise_image_embeddings(pipe, embed.clone(), level, noise=noise.clone())
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


# --- (2) a whole generate vs diffusers' __call__ ---------------------------------------------------------------------


def _diffusers_scheduler(model_config: dict, sampler: str):
    """What "sampler" means, built the way diffusers' docs swap a scheduler: the model's scheduler loaded by its own
    class from scheduler_config.json, then ``OtherScheduler.from_config(scheduler.config, **algorithm switches)``."""
    import diffusers

    model_scheduler = getattr(diffusers, model_config["_class_name"]).from_config(model_config)
    spec = SAMPLERS[sampler]
    overrides = {**spec.config, **SCHEDULES[resolved_schedule(sampler, "Automatic")]}
    return getattr(diffusers, spec.scheduler_class).from_config(model_scheduler.config, **overrides)


# DPM++ SDE: diffusers' DPMSolverSDEScheduler seeds its Brownian tree from ``noise_sampler_seed`` (else at random);
# the WebUI seeds it with the images' own seeds (modules/sd_samplers_common.py create_noise_sampler), so the oracle
# gets ``noise_sampler_seed=[seed]``.
_GENERATE_ORACLE = SAMPLER_NAMES


@pytest.mark.parametrize("sampler", _GENERATE_ORACLE)
def test_generate_matches_diffusers_pipeline(pipe, kind, tiny, sampler) -> None:
    from diffusers import StableUnCLIPImg2ImgPipeline

    seed, steps, level, cfg = 21, 3, 100, 4.0
    image = _image(3)
    ours = generate(
        pipe,
        VariationRequest(
            images=[image], prompt="a cat", steps=steps, seed=seed, cfg_scale=cfg, noise_level=level,
            sampler_name=sampler, width=64, height=64,
        ),
    ).images[0]  # fmt: skip

    # The oracle gets what our engine draws from the seed (start latent, augmentation noise, sampler generator) and
    # the model's own scheduler config file; everything else is diffusers' code.
    config_file = Path(tiny.config_root) / kind / "scheduler" / "scheduler_config.json"
    reference = StableUnCLIPImg2ImgPipeline(**pipe.components)
    reference.scheduler = _diffusers_scheduler(json.loads(config_file.read_text()), sampler)
    if sampler == "DPM++ SDE":
        reference.scheduler.noise_sampler_seed = [seed]
    embed = encode_image(pipe, image, "squash")
    noise = augmentation_noise([seed], embed.shape[-1])
    plain_noising = reference.noise_image_embeddings

    def noising(image_embeds, noise_level, noise=noise, generator=None):
        return plain_noising(image_embeds, noise_level, noise=noise.to(image_embeds), generator=None)

    reference.noise_image_embeddings = noising
    latent_shape = (1, pipe.unet.config.in_channels, 64 // pipe.vae_scale_factor, 64 // pipe.vae_scale_factor)
    latents = torch.randn(latent_shape[1:], generator=torch.Generator("cpu").manual_seed(seed))[None]
    # diffusers 0.31's StableUnCLIPImg2ImgPipeline scales only the latents it draws itself by init_noise_sigma
    # (prepare_latents is skipped when latents are given), so given latents must come scaled already.
    reference.scheduler.set_timesteps(steps)
    latents = latents * reference.scheduler.init_noise_sigma
    expected = reference(
        prompt="a cat", image_embeds=embed, latents=latents, num_inference_steps=steps, guidance_scale=cfg,
        noise_level=level, height=64, width=64, generator=[torch.Generator("cpu").manual_seed(seed + 1)],
    ).images[0]  # fmt: skip
    diff = np.abs(np.asarray(ours, dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert diff.max() <= 1, f"{sampler}: max pixel difference {diff.max()}"


# --- (3) real UNet calls per sampler ---------------------------------------------------------------------------------


def _expected_calls(sampler: str, steps: int) -> int:
    return 2 * steps - 1 if sampler in SECOND_ORDER else steps


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_variations_call_the_unet_once_per_step(pipe, sampler) -> None:
    steps, n_iter = 3, 2
    reports: list[tuple[int, int]] = []
    calls = UnetCalls(pipe.unet)
    try:
        generate(
            pipe,
            VariationRequest(images=[_image(4)], steps=steps, n_iter=n_iter, seed=1, sampler_name=sampler),
            progress=lambda step, total: reports.append((step, total)),
        )
    finally:
        calls.remove()
    assert calls.count == n_iter * _expected_calls(sampler, steps)  # CFG is one batched call
    # progress counts what runs: never past its total, and it ends exactly at the total
    assert all(step <= total for step, total in reports)
    assert reports[-1][0] == reports[-1][1] == calls.count


@pytest.fixture(scope="module")
def refiner_pipe(tiny):
    from extension.loading import load_sdxl

    return load_sdxl(tiny.sdxl_refiner.folder, role="refiner")


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_refiner_calls_the_unet_once_per_step(refiner_pipe, sampler) -> None:
    """The refiner runs the steps asked for (at strength 0.5, 3 steps: 3 UNet calls; second-order samplers 2 per
    step less the last), counted on the UNet itself; progress ends at its total and never passes it."""
    from extension.engine.refiner import RefineRequest, refine

    steps = 3
    reports: list[tuple[int, int]] = []
    calls = UnetCalls(refiner_pipe.unet)
    try:
        refine(
            refiner_pipe,
            RefineRequest(images=[_image(5)], steps=steps, strength=0.5, sampler_name=sampler, seed=1),
            progress=lambda step, total: reports.append((step, total)),
        )
    finally:
        calls.remove()
    assert calls.count == _expected_calls(sampler, steps)  # CFG is one batched call
    assert all(step <= total for step, total in reports) and reports[-1] == (steps, steps)


# --- (4) slerp against the textbook formula --------------------------------------------------------------------------


def _textbook_slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Shoemake's slerp of the directions (https://en.wikipedia.org/wiki/Slerp), lengths interpolated linearly."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / na, b / nb
    omega = np.arccos(np.clip(np.dot(ua, ub), -1.0, 1.0))
    direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / np.sin(omega)
    return direction * ((1 - t) * na + t * nb)


def test_slerp_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(32), 3.0 * rng.standard_normal(32)
    ta, tb = torch.tensor(a[None], dtype=torch.float64), torch.tensor(b[None], dtype=torch.float64)
    for t in (0.0, 0.25, 0.5, 0.9, 1.0):
        np.testing.assert_allclose(slerp(ta, tb, t)[0].numpy(), _textbook_slerp(a, b, t), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(slerp(ta, tb, 0.0)[0].numpy(), a, rtol=1e-12)  # endpoints are the inputs
    np.testing.assert_allclose(slerp(ta, tb, 1.0)[0].numpy(), b, rtol=1e-12)
    mid = slerp(ta, tb, 0.5)[0].numpy()
    assert np.linalg.norm(mid) == pytest.approx((np.linalg.norm(a) + np.linalg.norm(b)) / 2, rel=1e-12)


def test_slerp_near_parallel_inputs() -> None:
    """Directions 1e-6 rad apart: the linear branch agrees with the formula (float64) and stays finite in float32."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal(32)
    b = 2.0 * (a + 1e-6 * np.linalg.norm(a) * rng.standard_normal(32))
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        ta, tb = torch.tensor(a[None], dtype=dtype), torch.tensor(b[None], dtype=dtype)
        for t in (0.0, 0.3, 1.0):
            got = slerp(ta, tb, t)[0].double().numpy()
            assert np.isfinite(got).all()
            np.testing.assert_allclose(got, _textbook_slerp(a, b, t), rtol=tol, atol=tol)
    same = torch.tensor(a[None], dtype=torch.float32)
    torch.testing.assert_close(slerp(same, same, 0.5), same)  # identical inputs: no 0/0
