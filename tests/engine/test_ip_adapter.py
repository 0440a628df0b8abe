"""The IP-Adapter backend (extension/loading/ip_adapter.py, extension/engine/ip_adapter.py) against independent
oracles: diffusers' own pipelines reading the released adapter files themselves (``load_ip_adapter(folder,
weight_name=...)``) with ``ip_adapter_image=`` and ``set_ip_adapter_scale``; transformers' own
``CLIPVisionModelWithProjection.from_pretrained`` for the encoder; the embeddings the UNet really receives (a forward
pre-hook) for mix / slerp / edits. Tiny files: tests/tiny_ipadapter.py."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from extension.engine.ip_adapter import IPAdapterOptions, IPAdapterVariation
from extension.engine.unclip import VariationRequest
from extension.errors import ModelLoadError, ParamError
from extension.loading.ip_adapter import (
    find_adapters,
    find_image_encoder,
    load_image_encoder,
    load_ip_adapter_pipeline,
    missing_adapter_message,
    missing_encoder_message,
    read_adapter,
)
from tests.tiny_ipadapter import ADAPTERS, build_tiny_ipadapter

SEED, STEPS, CFG = 5, 3, 5.0


@pytest.fixture(scope="module")
def tiny_ipa(tiny):
    return build_tiny_ipadapter(tiny)


def _image(seed: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size, size, 3), dtype=np.uint8))


def _base(tiny_ipa, adapter: str):
    return tiny_ipa.sd1 if ADAPTERS[adapter][0] == "sd1" else tiny_ipa.sdxl


_PIPES: dict = {}


def _pipe(tiny_ipa, adapter: str, encoder: str = "unclip"):
    key = (adapter, encoder)
    if key not in _PIPES:
        source = tiny_ipa.unclip_h if encoder == "unclip" else tiny_ipa.encoder_file
        _PIPES[key] = load_ip_adapter_pipeline(
            _base(tiny_ipa, adapter), tiny_ipa.adapter(adapter), source, config_root=tiny_ipa.config_root
        )
    return _PIPES[key]


def _reference(tiny_ipa, adapter: str, *, img2img: bool = False):
    """diffusers on the same weights: a fresh base, the encoder folder read by transformers, the adapter FILE read by
    diffusers' own load_ip_adapter, the model's scheduler swapped for Euler as diffusers' docs do it."""
    import diffusers
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    kind = ADAPTERS[adapter][0]
    if kind == "sd1":
        from extension.loading.sd1 import load_sd1

        base = load_sd1(tiny_ipa.sd1, config_root=tiny_ipa.config_root)
        cls = diffusers.StableDiffusionImg2ImgPipeline if img2img else diffusers.StableDiffusionPipeline
        extra = {"safety_checker": None, "requires_safety_checker": False}
    else:
        from extension.loading.sdxl import load_sdxl

        base = load_sdxl(tiny_ipa.sdxl, role="base", config_root=tiny_ipa.config_root)
        cls = diffusers.StableDiffusionXLImg2ImgPipeline if img2img else diffusers.StableDiffusionXLPipeline
        extra = {}
    parts = {
        k: v for k, v in base.components.items() if k not in ("image_encoder", "feature_extractor", "safety_checker")
    }
    encoder = CLIPVisionModelWithProjection.from_pretrained(str(tiny_ipa.encoder_folder), local_files_only=True)
    processor = CLIPImageProcessor.from_pretrained(str(tiny_ipa.config_root / "unclip-h" / "feature_extractor"))
    ref = cls(**parts, image_encoder=encoder, feature_extractor=processor, **extra)
    ref.load_ip_adapter(str(tiny_ipa.adapters), subfolder="", weight_name=adapter, image_encoder_folder=None)
    config = json.loads((tiny_ipa.config_root / kind / "scheduler" / "scheduler_config.json").read_text())
    model_scheduler = getattr(diffusers, config["_class_name"]).from_config(config)
    ref.scheduler = diffusers.EulerDiscreteScheduler.from_config(model_scheduler.config)
    ref.set_progress_bar_config(disable=True)
    return ref


def _pixels_close(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


# --- files -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_adapter_files_are_classified_from_their_weights(tiny_ipa, adapter) -> None:
    state, info = read_adapter(tiny_ipa.adapter(adapter))
    assert info.variant == ADAPTERS[adapter][1]
    assert set(state) == {"image_proj", "ip_adapter"}
    assert all(k.split(".")[0].isdigit() and int(k.split(".")[0]) % 2 == 1 for k in state["ip_adapter"])


def test_a_pickled_adapter_that_wants_code_is_refused(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "ip-adapter_sd15.bin"
    path.write_bytes(pickle.dumps({"image_proj": Evil()}))
    with pytest.raises(ModelLoadError, match=r"ip-adapter_sd15\.bin"):
        read_adapter(path)


def test_wrong_pairings_are_one_line_messages(tiny_ipa) -> None:
    with pytest.raises(ModelLoadError, match=r"ip-adapter_sdxl_vit-h\.safetensors is an adapter for"):
        load_ip_adapter_pipeline(
            tiny_ipa.sd1, tiny_ipa.adapter("ip-adapter_sdxl_vit-h.safetensors"), tiny_ipa.unclip_h,
            config_root=tiny_ipa.config_root,
        )  # fmt: skip
    with pytest.raises(ModelLoadError, match=r"unclip-h\.safetensors is an SD 2\.1 unCLIP-H"):
        load_ip_adapter_pipeline(
            tiny_ipa.unclip_h, tiny_ipa.adapter("ip-adapter_sd15.safetensors"), tiny_ipa.unclip_h,
            config_root=tiny_ipa.config_root,
        )  # fmt: skip
    with pytest.raises(ModelLoadError, match=r"clip_vision_h.safetensors in .*clip_vision"):
        load_image_encoder(
            tiny_ipa.root / "clip_vision" / "clip_vision_h.safetensors", config_root=tiny_ipa.config_root
        )


def test_discovery_in_the_webui_folders(tiny_ipa, tmp_path) -> None:
    assert find_adapters(tmp_path) == []
    assert "ip-adapter_sd15.safetensors" in missing_adapter_message(tmp_path)
    assert str(tmp_path / "models" / "ipadapter") in missing_adapter_message(tmp_path)
    assert find_image_encoder(tmp_path) is None
    assert str(tmp_path / "models" / "clip_vision") in missing_encoder_message(tmp_path)
    cn = tmp_path / "extensions" / "sd-webui-controlnet" / "models"
    cn.mkdir(parents=True)
    (cn / "ip-adapter_sd15.pth").write_bytes(b"x")
    (cn / "control_v11p_sd15_canny.pth").write_bytes(b"x")
    assert [p.name for p in find_adapters(tmp_path)] == ["ip-adapter_sd15.pth"]
    unclip = tmp_path / "models" / "Stable-diffusion" / "sd21-unclip-h.ckpt"
    assert find_image_encoder(tmp_path, [unclip]) == unclip
    vision = tmp_path / "models" / "clip_vision"
    vision.mkdir(parents=True)
    (vision / "clip_h.pth").write_bytes(b"x")
    assert find_image_encoder(tmp_path, [unclip]) == vision / "clip_h.pth"


# --- the encoder ------------------------------------------------------------------------------------------------------


def test_encoder_from_the_unclip_file_equals_the_hf_folder(tiny_ipa) -> None:
    from transformers import CLIPVisionModelWithProjection

    folder = CLIPVisionModelWithProjection.from_pretrained(str(tiny_ipa.encoder_folder), local_files_only=True)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = folder(pixels, output_hidden_states=True)
    for source in (tiny_ipa.unclip_h, tiny_ipa.encoder_file):
        ours = load_image_encoder(source, config_root=tiny_ipa.config_root, device="cpu", dtype="fp32")
        got = ours(pixels, output_hidden_states=True)
        torch.testing.assert_close(got.image_embeds, expected.image_embeds, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.hidden_states[-2], expected.hidden_states[-2], rtol=1e-5, atol=1e-5)


# --- the variation vs diffusers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "adapter",
    ["ip-adapter_sd15.safetensors", "ip-adapter-plus_sd15.safetensors", "ip-adapter_sdxl_vit-h.safetensors",
     "ip-adapter-plus_sdxl_vit-h.bin"],
)  # fmt: skip
def test_variation_matches_diffusers_load_ip_adapter(tiny_ipa, adapter) -> None:
    image, scale = _image(3), 0.7
    ours = IPAdapterVariation(_pipe(tiny_ipa, adapter))(
        VariationRequest(
            images=[image], prompt="a cat", negative_prompt="blurry", steps=STEPS, seed=SEED, cfg_scale=CFG,
            sampler_name="Euler", width=64, height=64,
        ),
        IPAdapterOptions(image_strength=scale),
    ).images[0]  # fmt: skip
    ref = _reference(tiny_ipa, adapter)
    ref.set_ip_adapter_scale(scale)
    expected = ref(
        prompt="a cat", negative_prompt="blurry", ip_adapter_image=image, num_inference_steps=STEPS,
        guidance_scale=CFG, height=64, width=64, generator=torch.Generator("cpu").manual_seed(SEED),
    ).images[0]  # fmt: skip
    assert _pixels_close(ours, expected) <= 1
    zero = IPAdapterVariation(_pipe(tiny_ipa, adapter))(
        VariationRequest(images=[image], prompt="a cat", steps=STEPS, seed=SEED, cfg_scale=CFG, width=64, height=64),
        IPAdapterOptions(image_strength=0.0),
    ).images[0]
    assert _pixels_close(zero, ours) > 1  # the image strength is really applied


@pytest.mark.parametrize("adapter", ["ip-adapter_sd15.safetensors", "ip-adapter-plus_sdxl_vit-h.bin"])
def test_keep_composition_matches_diffusers_img2img(tiny_ipa, adapter) -> None:
    image, keep = _image(4, 64), 0.4  # keep composition k: img2img at denoising strength 1 - k
    pipe = _pipe(tiny_ipa, adapter)
    calls = []
    handle = pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    try:
        ours = IPAdapterVariation(pipe)(
            VariationRequest(
                images=[image], prompt="a cat", negative_prompt="blurry", steps=5, seed=SEED, cfg_scale=CFG,
                sampler_name="Euler", width=64, height=64, keep_composition=keep,
            ),
        ).images[0]  # fmt: skip
    finally:
        handle.remove()
    assert len(calls) == int(5 * (1 - keep))  # (1 - k) × the steps (CFG is one batched call)
    ref = _reference(tiny_ipa, adapter, img2img=True)
    expected = ref(
        prompt="a cat", negative_prompt="blurry", image=image, strength=1 - keep,
        ip_adapter_image=image.resize((32, 32), Image.BICUBIC), num_inference_steps=5, guidance_scale=CFG,
        generator=torch.Generator("cpu").manual_seed(SEED),
    ).images[0]  # fmt: skip
    assert _pixels_close(ours, expected) <= 1


# --- only the embedding changes ----------------------------------------------------------------------------------------


class _Seen:
    """What the UNet receives: text conditioning and the adapter's image embeddings (a forward pre-hook)."""

    def __init__(self, unet) -> None:
        self.text, self.image = [], []
        self._handle = unet.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module, _args, kwargs):
        self.text.append(kwargs["encoder_hidden_states"].clone())
        self.image.append([t.clone() for t in kwargs["added_cond_kwargs"]["image_embeds"]])

    def remove(self) -> None:
        self._handle.remove()


def _seen(pipe, request: VariationRequest, options: IPAdapterOptions | None = None) -> _Seen:
    seen = _Seen(pipe.unet)
    try:
        IPAdapterVariation(pipe)(request, options)
    finally:
        seen.remove()
    return seen


def _encode(tiny_ipa, image: Image.Image) -> torch.Tensor:
    """The projected embedding, by transformers' own model and processor (the image is already 32²)."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(str(tiny_ipa.encoder_folder), local_files_only=True)
    processor = CLIPImageProcessor.from_pretrained(str(tiny_ipa.config_root / "unclip-h" / "feature_extractor"))
    with torch.no_grad():
        return model(processor(images=image, return_tensors="pt").pixel_values).image_embeds


def _textbook_slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    omega = math.acos(np.clip(np.dot(a / na, b / nb), -1, 1))
    direction = (math.sin((1 - t) * omega) * a / na + math.sin(t * omega) * b / nb) / math.sin(omega)
    return direction * ((1 - t) * na + t * nb)


class _AddVector:
    """An embedding edit (as a text diff is one) that adds a fixed vector."""

    def __init__(self, vector: torch.Tensor) -> None:
        self.vector = vector

    def apply(self, _pipe, embed: torch.Tensor) -> torch.Tensor:
        return embed + self.vector

    def infotext(self) -> dict:
        return {"Edit": "add"}


def test_mix_slerp_and_edits_change_only_the_embedding(tiny_ipa) -> None:
    pipe = _pipe(tiny_ipa, "ip-adapter_sd15.safetensors")
    a, b = _image(11), _image(12)
    common = {"prompt": "a cat", "steps": 2, "seed": SEED, "cfg_scale": CFG, "width": 64, "height": 64}
    single = _seen(pipe, VariationRequest(images=[a], **common))
    mixed = _seen(pipe, VariationRequest(images=[a, b], weights=[1.0, 3.0], **common))
    slerped = _seen(pipe, VariationRequest(images=[a, b], weights=[1.0, 3.0], mix="slerp", **common))
    vector = torch.randn(1, 32, generator=torch.Generator().manual_seed(3))
    edited = _seen(pipe, VariationRequest(images=[a], edit=_AddVector(vector), **common))
    ea, eb = _encode(tiny_ipa, a), _encode(tiny_ipa, b)
    expected = {
        "single": ea,
        "mixed": 0.25 * ea + 0.75 * eb,
        "slerped": torch.from_numpy(_textbook_slerp(ea[0].double().numpy(), eb[0].double().numpy(), 0.75)).float()[
            None
        ],
        "edited": ea + vector,
    }
    for name, seen in (("single", single), ("mixed", mixed), ("slerped", slerped), ("edited", edited)):
        for text, (embeds,) in zip(seen.text, seen.image):
            torch.testing.assert_close(text, single.text[0])  # the prompt conditioning never moves
            uncond, cond = embeds.chunk(2)  # [2, 1, D]: unconditional first
            assert torch.count_nonzero(uncond) == 0
            torch.testing.assert_close(cond[:, 0], expected[name], rtol=1e-4, atol=1e-5, msg=name)


def test_variation_strength_is_seeded_noise_on_the_embedding(tiny_ipa) -> None:
    pipe = _pipe(tiny_ipa, "ip-adapter_sd15.safetensors")
    common = {"images": [_image(11)], "steps": 1, "cfg_scale": 1.0, "width": 64, "height": 64}
    plain = _seen(pipe, VariationRequest(seed=7, **common), IPAdapterOptions(variation_strength=0.0))
    batch = _seen(pipe, VariationRequest(seed=7, batch_size=2, **common), IPAdapterOptions(variation_strength=0.5))
    second = _seen(pipe, VariationRequest(seed=8, **common), IPAdapterOptions(variation_strength=0.5))
    embed = _encode(tiny_ipa, _image(11))
    torch.testing.assert_close(plain.image[0][0][:, 0], embed, rtol=1e-4, atol=1e-5)
    rows = batch.image[0][0][:, 0]
    assert not torch.allclose(rows[0], rows[1])  # each output its own noise
    torch.testing.assert_close(rows[1:], second.image[0][0][:, 0])  # ... reproducible from its seed alone
    torch.testing.assert_close(batch.text[0][:1], plain.text[0])


def test_text_diffs_on_plus_adapters_are_refused(tiny_ipa) -> None:
    pipe = _pipe(tiny_ipa, "ip-adapter-plus_sd15.safetensors")
    request = VariationRequest(images=[_image(1)], steps=1, edit=_AddVector(torch.zeros(1, 32)))
    with pytest.raises(ParamError, match="plus"):
        IPAdapterVariation(pipe)(request)
    with pytest.raises(ParamError, match="image_strength"):
        IPAdapterVariation(pipe)(VariationRequest(images=[_image(1)], steps=1), IPAdapterOptions(image_strength=2))


def test_text_diffs_use_the_unclip_h_text_tower_and_change_only_the_embedding(tiny_ipa) -> None:
    from extension.engine.text_diff import TextDiff, text_diff, text_embedding
    from extension.loading import load_unclip

    pipe = load_ip_adapter_pipeline(
        tiny_ipa.sd1, tiny_ipa.adapter("ip-adapter_sd15.safetensors"), tiny_ipa.encoder_file,
        config_root=tiny_ipa.config_root, text_tower=tiny_ipa.unclip_h,
    )  # fmt: skip
    common = {"images": [_image(11)], "prompt": "a cat", "steps": 1, "seed": SEED, "cfg_scale": CFG}
    plain = _seen(pipe, VariationRequest(**common, width=64, height=64))
    edited = _seen(pipe, VariationRequest(**common, width=64, height=64, edit=TextDiff("a red car", "a photo", 0.5)))
    unclip = load_unclip(tiny_ipa.unclip_h, config_root=tiny_ipa.config_root)  # its own tower, loaded on its own
    expected = text_diff(
        _encode(tiny_ipa, _image(11)), text_embedding(unclip, "a photo"), text_embedding(unclip, "a red car"), 0.5
    )
    torch.testing.assert_close(edited.text[0], plain.text[0])
    torch.testing.assert_close(edited.image[0][0].chunk(2)[1][:, 0], expected, rtol=1e-4, atol=1e-5)
    no_tower = _pipe(tiny_ipa, "ip-adapter_sd15.safetensors", encoder="file")
    with pytest.raises(ParamError, match="sd21-unclip-h"):
        IPAdapterVariation(no_tower)(VariationRequest(**common, edit=TextDiff("a red car", "a photo", 0.5)))


def test_keep_composition_one_returns_the_input_without_sampling(tiny_ipa) -> None:
    pipe = _pipe(tiny_ipa, "ip-adapter_sd15.safetensors")
    calls = []
    handle = pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    try:
        result = IPAdapterVariation(pipe)(
            VariationRequest(images=[_image(4, 64)], steps=5, seed=SEED, width=64, height=64, keep_composition=1.0)
        )
    finally:
        handle.remove()
    assert calls == [] and result.steps == 0 and result.images[0].size == (64, 64)
    assert "Keep composition: 1" in result.infotexts[0]
