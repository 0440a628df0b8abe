"""Chains: "Refine with SDXL" on the Reimagine tab's IP-Adapter outputs (extension/runtime/jobs.py refine_selected).

An SD 1.5 base's output is refined in pixel mode; an SDXL base's output of the last batch in latent mode, on the
base's own latents (no VAE round trip). Oracles: diffusers' own ``StableDiffusionXLPipeline`` + ``load_ip_adapter``
with ``output_type="latent"`` and then diffusers' own ``StableDiffusionXLImg2ImgPipeline`` (the refiner folder) on
those latents; the VAE encoder/decoder calls really made (diffusers' ``Encoder``/``Decoder.forward``, counted)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from extension import infotext
from tests.tiny_ipadapter import build_tiny_ipadapter

SEED, STEPS, CFG, SCALE = 5, 3, 5.0, 0.7
REFINER_NAME = "my-refiner.safetensors"


@pytest.fixture(scope="module")
def tiny_ipa(tiny):
    return build_tiny_ipadapter(tiny)


@pytest.fixture(scope="module")
def host(tiny, tiny_ipa, tmp_path_factory):
    """A standalone-app models folder: SD 1.5 and SDXL bases, sd21-unclip-h (the encoder), both plain adapters and
    the SDXL refiner."""
    from extension.ui.standalone import StandaloneHost

    models = tmp_path_factory.mktemp("chain") / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    links = {
        "my-sd15.safetensors": tiny_ipa.sd1,
        "my-xl.safetensors": tiny_ipa.sdxl,
        "sd21-unclip-h.safetensors": tiny_ipa.unclip_h,
        REFINER_NAME: tiny.sdxl_refiner.safetensors,
    }
    for name, target in links.items():
        (models / "Stable-diffusion" / name).symlink_to(target)
    (models / "ipadapter").mkdir()
    for name in ("ip-adapter_sd15.safetensors", "ip-adapter_sdxl_vit-h.safetensors"):
        (models / "ipadapter" / name).symlink_to(tiny_ipa.adapter(name))
    made = StandaloneHost([models], config_root=tiny_ipa.config_root, outdir=models.parent / "out", device="cpu")
    made.refine_area = 128 * 128  # the tiny refiner; SDXL's own class is 1024²
    return made


def _image() -> Image.Image:
    return Image.fromarray(np.random.RandomState(3).randint(0, 256, (32, 32, 3), dtype=np.uint8))


class VAECalls:
    """The VAE encoder / decoder forwards really run (every diffusers ``Encoder``/``Decoder``, class-wide)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from diffusers.models.autoencoders import vae

        self.encode = self.decode = 0
        for cls, name in ((vae.Encoder, "encode"), (vae.Decoder, "decode")):
            monkeypatch.setattr(cls, "forward", self._counted(cls.forward, name))

    def _counted(self, forward, name: str):  # noqa: ANN001, ANN202
        def counted(module, *args, **kwargs):  # noqa: ANN001, ANN202
            setattr(self, name, getattr(self, name) + 1)
            return forward(module, *args, **kwargs)

        return counted


def _generate(host, model: str, n_iter: int = 1):
    from extension.runtime import jobs
    from tests.ui.fakes import make_args

    args = make_args(
        _image(), model=model, prompt="a cat", negative_prompt="blurry", steps=STEPS, seed=SEED, cfg_scale=CFG,
        sampler_name="Euler", width=64, height=64, image_strength=SCALE, n_iter=n_iter,
    )  # fmt: skip
    gallery, info_json, _, log = jobs.generate(host, args)
    assert log == "" and len(gallery) == n_iter
    return gallery, info_json


def _refine(host, gallery, info_json, index: int, strength: float = 0.3, steps: int = 2):
    from extension.runtime import jobs

    refiner = host.find(REFINER_NAME, ("sdxl-refiner",))
    out, info, _, log = jobs.refine_selected(host, gallery, index, info_json, refiner.name, strength, steps)
    assert log == ""
    text = json.loads(info)["infotexts"][-1]
    return Image.open(out[-1]), infotext.parse(text)


def test_sd15_ip_adapter_output_is_refined_in_pixel_mode(host, monkeypatch) -> None:
    gallery, info_json = _generate(host, "my-sd15.safetensors + ip-adapter_sd15")
    calls = VAECalls(monkeypatch)
    refined, parsed = _refine(host, gallery, info_json, 0)
    assert (calls.encode, calls.decode) == (1, 1)  # the refiner's VAE round trip
    assert parsed["Refiner post-pass mode"] == "Pixel"  # an SD 1.5 base: nothing to fall back from
    assert parsed["IP-Adapter"] == "ip-adapter_sd15" and parsed["Seed"] == str(SEED)
    assert refined.size == (128, 128)  # pixel mode: the refiner's size class


def _diffusers_chain(tiny, tiny_ipa, strength: float, steps: int) -> Image.Image:
    """diffusers alone: the SDXL base with ``load_ip_adapter`` (latents out), then the refiner on those latents."""
    import diffusers
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    from extension.engine.refiner import schedule_length
    from extension.loading.sdxl import load_sdxl

    base = load_sdxl(tiny_ipa.sdxl, role="base", config_root=tiny_ipa.config_root)
    parts = {k: v for k, v in base.components.items() if k not in ("image_encoder", "feature_extractor")}
    encoder = CLIPVisionModelWithProjection.from_pretrained(str(tiny_ipa.encoder_folder), local_files_only=True)
    processor = CLIPImageProcessor.from_pretrained(str(tiny_ipa.config_root / "unclip-h" / "feature_extractor"))
    ref = diffusers.StableDiffusionXLPipeline(**parts, image_encoder=encoder, feature_extractor=processor)
    ref.load_ip_adapter(
        str(tiny_ipa.adapters), subfolder="", weight_name="ip-adapter_sdxl_vit-h.safetensors", image_encoder_folder=None
    )
    config = json.loads((tiny_ipa.config_root / "sdxl-base" / "scheduler" / "scheduler_config.json").read_text())
    model_scheduler = getattr(diffusers, config["_class_name"]).from_config(config)
    ref.scheduler = diffusers.EulerDiscreteScheduler.from_config(model_scheduler.config)
    ref.set_progress_bar_config(disable=True)
    ref.set_ip_adapter_scale(SCALE)
    latents = ref(
        prompt="a cat", negative_prompt="blurry", ip_adapter_image=_image(), num_inference_steps=STEPS,
        guidance_scale=CFG, height=64, width=64, generator=torch.Generator("cpu").manual_seed(SEED),
        output_type="latent",
    ).images  # fmt: skip
    refiner = diffusers.StableDiffusionXLImg2ImgPipeline.from_pretrained(str(tiny.sdxl_refiner.folder))
    refiner.scheduler = diffusers.EulerDiscreteScheduler.from_config(refiner.scheduler.config)
    refiner.set_progress_bar_config(disable=True)
    return refiner(
        prompt="a cat", negative_prompt="blurry", image=latents, strength=strength,
        num_inference_steps=schedule_length(steps, strength), guidance_scale=CFG,
        generator=torch.Generator("cpu").manual_seed(SEED),
    ).images[0]  # fmt: skip


def test_sdxl_ip_adapter_output_is_refined_on_its_latents(tiny, tiny_ipa, host, monkeypatch) -> None:
    gallery, info_json = _generate(host, "my-xl.safetensors + ip-adapter_sdxl_vit-h")
    calls = VAECalls(monkeypatch)
    refined, parsed = _refine(host, gallery, info_json, 0)
    assert (calls.encode, calls.decode) == (0, 1)  # no VAE round trip: the base's latents, one decode at the end
    assert parsed["Refiner post-pass mode"] == "Latent" and parsed["IP-Adapter"] == "ip-adapter_sdxl_vit-h"
    assert refined.size == (64, 64)  # the base's size: latent mode does not resize
    expected = _diffusers_chain(tiny, tiny_ipa, 0.3, 2)
    assert np.abs(np.asarray(refined, np.int16) - np.asarray(expected, np.int16)).max() <= 1


def test_only_the_last_batch_keeps_its_latents(host, monkeypatch) -> None:
    gallery, info_json = _generate(host, "my-xl.safetensors + ip-adapter_sdxl_vit-h", n_iter=2)
    calls = VAECalls(monkeypatch)
    _, first = _refine(host, gallery, info_json, 0)  # batch 1 of 2: its latents were not kept
    assert first["Refiner post-pass mode"] == "Pixel (latents not kept)" and (calls.encode, calls.decode) == (1, 1)
    _, last = _refine(host, gallery, info_json, 1)
    assert last["Refiner post-pass mode"] == "Latent" and (calls.encode, calls.decode) == (1, 2)
    _generate(host, "my-sd15.safetensors + ip-adapter_sd15")  # a new job forgets them
    _, again = _refine(host, gallery, info_json, 1)
    assert again["Refiner post-pass mode"] == "Pixel (latents not kept)"
