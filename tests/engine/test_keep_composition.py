"""Keep composition (``keep_composition`` in extension/params.py, the mechanism in extension/engine/unclip.py).

Oracle: diffusers' own ``StableUnCLIPImg2ImgPipeline`` on the same weights and seed, started as diffusers' img2img
pipelines start (``StableDiffusionImg2ImgPipeline.get_timesteps``: ``init_timestep = min(int(steps * strength),
steps)``, ``t_start = steps - init_timestep``; ``prepare_latents``: the image's VAE latents through diffusers'
``retrieve_latents`` and ``scheduler.add_noise`` at the first remaining timestep), at strength 1 − s. The unCLIP
pipeline has no init image, so its scheduler is given the truncated timesteps (and the begin index) here, and the
noised latents are handed in.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from extension import infotext
from extension.engine.samplers import resolved_schedule
from extension.engine.unclip import VariationRequest, augmentation_noise, encode_image, generate
from extension.sampler_names import SAMPLERS, SCHEDULES
from tests.engine.test_oracles import UnetCalls

SIZE = 64


def _image(seed: int) -> Image.Image:
    pixels = np.random.RandomState(seed).randint(0, 256, (48, 56, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def pipe(tiny):
    from extension.loading import load_unclip

    return load_unclip(tiny.unclip_h.folder)


def _diffusers_scheduler(model_config: dict, sampler: str):
    """The sampler as diffusers' docs swap a scheduler (as tests/engine/test_oracles.py builds it): the model's
    scheduler from its config file, then ``OtherScheduler.from_config(scheduler.config, **algorithm switches)``."""
    import diffusers

    model_scheduler = getattr(diffusers, model_config["_class_name"]).from_config(model_config)
    spec = SAMPLERS[sampler]
    overrides = {**spec.config, **SCHEDULES[resolved_schedule(sampler, "Automatic")]}
    return getattr(diffusers, spec.scheduler_class).from_config(model_scheduler.config, **overrides)


def _img2img_rule(steps: int, strength: float) -> int:
    """diffusers ``StableDiffusionImg2ImgPipeline.get_timesteps``: the index of the first step run."""
    init_timestep = min(int(steps * strength), steps)
    return max(steps - init_timestep, 0)


def _started_at(scheduler, strength: float):
    """``scheduler`` (a diffusers scheduler) that runs only the img2img tail of its timesteps, and whose latents come
    noised already (``init_noise_sigma`` 1, as img2img never scales them)."""

    class Img2Img(type(scheduler)):
        """The pipeline iterates the tail (``scheduler.timesteps``); the scheduler's own methods see the whole list,
        as in img2img, where only the pipeline's loop is shortened."""

        def set_timesteps(self, num_inference_steps, *args, **kwargs):
            super().set_timesteps(num_inference_steps, *args, **kwargs)
            start = _img2img_rule(num_inference_steps, strength) * self.order
            self.full_timesteps = self.timesteps
            self.timesteps = self.timesteps[start:]
            if hasattr(self, "set_begin_index"):
                self.set_begin_index(start)

        def _whole(self, method, *args, **kwargs):
            tail, self.timesteps = self.timesteps, self.full_timesteps
            try:
                return method(*args, **kwargs)
            finally:
                self.timesteps = tail

        def step(self, *args, **kwargs):
            return self._whole(super().step, *args, **kwargs)

        def scale_model_input(self, *args, **kwargs):
            return self._whole(super().scale_model_input, *args, **kwargs)

        @property
        def init_noise_sigma(self):
            return 1.0

        @init_noise_sigma.setter
        def init_noise_sigma(self, _value):
            pass

    return Img2Img.from_config(scheduler.config)


def _oracle(pipe, tiny, image, sampler, steps, strength, seed, level, cfg):
    from diffusers import StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents

    config_file = Path(tiny.config_root) / "unclip-h" / "scheduler" / "scheduler_config.json"
    reference = StableUnCLIPImg2ImgPipeline(**pipe.components)
    reference.scheduler = _started_at(_diffusers_scheduler(json.loads(config_file.read_text()), sampler), strength)
    embed = encode_image(pipe, image, "squash")
    noise = augmentation_noise([seed], embed.shape[-1])
    plain_noising = reference.noise_image_embeddings

    def noising(image_embeds, noise_level, noise=noise, generator=None):
        return plain_noising(image_embeds, noise_level, noise=noise.to(image_embeds), generator=None)

    reference.noise_image_embeddings = noising
    # img2img's prepare_latents: the image's VAE latents (argmax: the mean), scaled, noised to the first timestep
    pixels = reference.image_processor.preprocess(image, height=SIZE, width=SIZE)
    with torch.no_grad():
        image_latents = retrieve_latents(reference.vae.encode(pixels), sample_mode="argmax")
    image_latents = image_latents * reference.vae.config.scaling_factor
    shape = (pipe.unet.config.in_channels, SIZE // pipe.vae_scale_factor, SIZE // pipe.vae_scale_factor)
    start_noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))[None]
    reference.scheduler.set_timesteps(steps)
    latents = reference.scheduler.add_noise(image_latents, start_noise, reference.scheduler.timesteps[:1])
    return reference(
        prompt="a cat", image_embeds=embed, latents=latents, num_inference_steps=steps, guidance_scale=cfg,
        noise_level=level, height=SIZE, width=SIZE, generator=[torch.Generator("cpu").manual_seed(seed + 1)],
    ).images[0]  # fmt: skip


def _ours(pipe, image, sampler, steps, keep, seed, level, cfg, **kwargs):
    request = VariationRequest(
        images=[image], prompt="a cat", steps=steps, seed=seed, cfg_scale=cfg, noise_level=level,
        sampler_name=sampler, width=SIZE, height=SIZE, keep_composition=keep, **kwargs,
    )  # fmt: skip
    return generate(pipe, request)


@pytest.mark.parametrize("sampler", ["DDIM", "Euler", "DPM++ 2M"])
@pytest.mark.parametrize("keep", [0.25, 0.5])
def test_keep_composition_matches_diffusers_img2img_start(pipe, tiny, sampler, keep) -> None:
    seed, steps, level, cfg = 21, 8, 100, 4.0
    image = _image(3)
    calls = UnetCalls(pipe.unet)
    try:
        ours = _ours(pipe, image, sampler, steps, keep, seed, level, cfg)
    finally:
        calls.remove()
    expected = _oracle(pipe, tiny, image, sampler, steps, 1.0 - keep, seed, level, cfg)
    diff = np.abs(np.asarray(ours.images[0], dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert diff.max() <= 1, f"{sampler} at {keep}: max pixel difference {diff.max()}"
    # only the img2img tail is sampled: (1 - s) x the steps, one UNet call each (CFG batches both branches)
    assert calls.count == steps - _img2img_rule(steps, 1.0 - keep)
    assert infotext.parse(ours.infotexts[0])["Keep composition"] == f"{keep:g}"


def test_keep_composition_zero_is_todays_output(pipe) -> None:
    """0 is the old start from pure noise, bit for bit (itself checked against diffusers in test_oracles.py), and
    writes no key."""
    image = _image(5)
    off = _ours(pipe, image, "Euler a", 3, 0.0, 9, 0, 5.0)
    default = generate(
        pipe,
        VariationRequest(images=[image], prompt="a cat", steps=3, seed=9, cfg_scale=5.0, noise_level=0,
                         sampler_name="Euler a", width=SIZE, height=SIZE),
    )  # fmt: skip
    assert np.array_equal(np.asarray(off.images[0]), np.asarray(default.images[0]))
    assert "Keep composition" not in infotext.parse(off.infotexts[0])


def test_keep_composition_uses_the_first_image_of_a_mix(pipe) -> None:
    """A mix starts from the first (primary) image's latents: swapping the second image changes the embedding only,
    so at keep 1 (nothing left to sample) both runs return the first image's VAE round trip."""
    first, second, other = _image(6), _image(7), _image(8)

    def run(images: list[Image.Image]) -> Image.Image:
        request = VariationRequest(
            images=images, steps=4, seed=3, sampler_name="DDIM", width=SIZE, height=SIZE, keep_composition=1.0
        )
        return generate(pipe, request).images[0]

    assert np.array_equal(np.asarray(run([first, second])), np.asarray(run([first, other])))
    assert not np.array_equal(np.asarray(run([first, second])), np.asarray(run([other, second])))


# --- the control's front doors, all from the table ---------------------------------------------------------------


def test_rest_field_and_range(tiny, pipe) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from extension import api
    from extension.loading import load_sdxl
    from tests.toplevel.test_api import FakeBackend

    app = FastAPI()
    api.add_routes(app, FakeBackend(pipe, load_sdxl(tiny.sdxl_refiner.folder, role="refiner")))
    client = TestClient(app)
    buffer = io.BytesIO()
    _image(2).save(buffer, format="PNG")
    body = {
        "images": [base64.b64encode(buffer.getvalue()).decode()],
        "steps": 2,
        "seed": 4,
        "width": SIZE,
        "height": SIZE,
    }
    answer = client.post("/reimagine/v1/variations", json={**body, "keep_composition": 0.5})
    assert answer.status_code == 200, answer.text
    assert answer.json()["parameters"]["keep_composition"] == 0.5
    text = json.loads(answer.json()["info"])["infotexts"][0]
    assert infotext.parse(text)["Keep composition"] == "0.5"
    bad = client.post("/reimagine/v1/variations", json={**body, "keep_composition": 1.5})
    assert bad.status_code == 422 and "keep_composition" in bad.text
    assert "keep_composition" in client.get("/openapi.json").text


def test_cli_option(tiny, tmp_path, capsys) -> None:
    from extension.cli import main
    from extension.outputs import read_infotext

    source = tmp_path / "in.png"
    _image(1).save(source)
    common = ["--model", str(tiny.unclip_h.folder), "--steps", "2", "--seed", "7", "--n", "1"]
    out = tmp_path / "out"
    assert main(["vary", str(source), *common, "--out", str(out), "--keep-composition", "0.5"]) == 0
    written = sorted(out.glob("*.png"))
    assert infotext.parse(read_infotext(written[0]))["Keep composition"] == "0.5"
    assert main(["vary", str(source), *common, "--out", str(out), "--keep-composition", "2"]) == 2
    assert "keep_composition must be a number from 0 to 1" in capsys.readouterr().err


def test_tab_widget_pastes_back(tmp_path) -> None:
    from extension.ui import tab
    from tests.ui.fakes import FakeHost

    built = tab.build(FakeHost(tmp_path))
    widget = built.components["keep_composition"]
    assert (widget, "Keep composition") in built.paste_fields
