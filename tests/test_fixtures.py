"""The tiny model fixtures are what they claim: real layouts, loadable by diffusers' own single-file code, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.tiny_models import (
    EMBEDDER_TEXT_WIDTH,
    IMAGE_EMBED_DIM,
    KINDS,
    VOCAB_SIZE,
    TinyModel,
    TinyModels,
    load_clip_tokenizer,
)

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a photograph of an astronaut riding a horse"
PROMPT_IDS = [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]  # CLIP BPE ids of PROMPT
NOISE_AUGMENTOR_KEYS = {
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _assert_same_weights(actual: torch.nn.Module, expected: torch.nn.Module, what: str) -> None:
    a, e = actual.state_dict(), expected.state_dict()
    assert a.keys() == e.keys(), f"{what}: key sets differ: {sorted(a.keys() ^ e.keys())[:5]}"
    for key in e:
        assert a[key].device.type == "cpu", f"{what}.{key} on {a[key].device}"
        assert torch.equal(a[key], e[key]), f"{what}.{key} differs"


def _tokenizers(model: TinyModel, config_root: Path) -> dict[str, object]:
    """Tokenizers from the config-only folder + the shared clip-tokenizer vocab (as the loader must do)."""
    subs = [p.name for p in model.config.iterdir() if p.name.startswith("tokenizer")]
    return {sub: load_clip_tokenizer(model.config / sub, config_root / "clip-tokenizer") for sub in subs}


# --- layout ----------------------------------------------------------------------------------------------------------


def test_config_root_is_config_only_with_shared_vocab(tiny: TinyModels) -> None:
    root = tiny.config_root
    assert sorted(p.name for p in root.iterdir()) == sorted([*KINDS, "clip-tokenizer"])
    assert _files(root / "clip-tokenizer") == {"vocab.json", "merges.txt"}
    weights = [f for f in _files(root) if f.endswith((".safetensors", ".bin", ".ckpt", ".pt", ".pth"))]
    assert weights == []
    for kind in KINDS:
        for tok in (root / kind).glob("tokenizer*"):
            assert _files(tok) == {"tokenizer_config.json", "special_tokens_map.json"}, tok
        assert (root / kind / "model_index.json").is_file()


def test_config_root_matches_bundled_layout(tiny: TinyModels) -> None:
    bundled = REPO / "extension" / "configs"
    if not (bundled / "unclip-h" / "model_index.json").is_file():
        pytest.skip("bundled configs not present")
    for kind in KINDS:
        ours = {f for f in _files(tiny.config_root / kind) if f.endswith(".json")}
        theirs = {f for f in _files(bundled / kind) if f.endswith(".json")}
        assert ours == theirs, f"{kind}: {sorted(ours ^ theirs)}"
        index = json.loads((tiny.config_root / kind / "model_index.json").read_text())
        bundled_index = json.loads((bundled / kind / "model_index.json").read_text())
        components = {k: v for k, v in index.items() if isinstance(v, list) and v[0] is not None}
        assert components == {k: v for k, v in bundled_index.items() if isinstance(v, list) and v[0] is not None}
        assert index["_class_name"] == bundled_index["_class_name"]


@pytest.mark.parametrize("kind", KINDS)
def test_single_files_hold_the_same_dict(tiny: TinyModels, kind: str) -> None:
    from safetensors.torch import load_file

    model = tiny[kind]
    st = load_file(str(model.safetensors))
    ckpt = torch.load(model.ckpt, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"state_dict", "global_step"}
    assert st.keys() == ckpt["state_dict"].keys() == model.state_dict.keys()
    for key, value in st.items():
        assert torch.equal(value, ckpt["state_dict"][key]) and torch.equal(value, model.state_dict[key]), key
    dtype = torch.float16 if kind.startswith("sdxl") else torch.float32
    assert {v.dtype for v in st.values()} <= {dtype, torch.int64}


@pytest.mark.parametrize("kind", ["unclip-h", "unclip-l"])
def test_unclip_keys_and_detection_widths(tiny: TinyModels, kind: str) -> None:
    sd = tiny[kind].state_dict
    emb = IMAGE_EMBED_DIM[kind]
    prefixes = {k.split(".")[0] for k in sd}
    assert {"model", "first_stage_model", "cond_stage_model", "embedder", "noise_augmentor"} <= prefixes
    # the real detection rule (A1111 sd_models_config): ln_final width 1024 -> -h, 768 -> -l
    assert sd["embedder.model.ln_final.weight"].shape == (EMBEDDER_TEXT_WIDTH[kind],)
    assert sd["embedder.model.visual.proj"].shape[1] == emb
    assert sd["model.diffusion_model.label_emb.0.0.weight"].shape[1] == 2 * emb
    assert sd["cond_stage_model.model.token_embedding.weight"].shape[0] == VOCAB_SIZE
    # structure as in the real files: OpenAI CLIP (-l) keeps its text transformer, FrozenOpenCLIPImageEmbedder (-h) not
    assert any(k.startswith("embedder.model.transformer.resblocks.") for k in sd) == (kind == "unclip-l")
    assert {k.split(".", 1)[1] for k in sd if k.startswith("noise_augmentor.")} == NOISE_AUGMENTOR_KEYS
    # SD 2.x: the checkpoint has one more text resblock than the diffusers text encoder (penultimate layer)
    blocks = {int(k.split(".")[4]) for k in sd if k.startswith("cond_stage_model.model.transformer.resblocks.")}
    assert blocks == {0, 1, 2}


def test_noise_augmentor_is_the_squaredcos_schedule(tiny: TinyModels) -> None:
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_pretrained(tiny.unclip_h.config, subfolder="image_noising_scheduler")
    sd = tiny.unclip_h.state_dict
    torch.testing.assert_close(sd["noise_augmentor.alphas_cumprod"], sched.alphas_cumprod, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(sd["noise_augmentor.betas"], sched.betas, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["sdxl-base", "sdxl-refiner"])
def test_sdxl_detection_by_diffusers(tiny: TinyModels, kind: str) -> None:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    sd = tiny[kind].state_dict
    assert infer_diffusers_model_type(sd) == {"sdxl-base": "xl_base", "sdxl-refiner": "xl_refiner"}[kind]
    if kind == "sdxl-base":
        assert sd["conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"].shape == (64,)
        assert sd["conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"].shape[1] == 32
        assert sd["conditioner.embedders.0.transformer.text_model.embeddings.position_ids"].dtype == torch.int64
    else:
        assert sd["conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias"].shape == (64,)
        assert not any(k.startswith("conditioner.embedders.1.") for k in sd)


# --- round trips through diffusers' own single-file code --------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["safetensors", "ckpt"])
@pytest.mark.parametrize("kind", ["sdxl-base", "sdxl-refiner"])
def test_sdxl_from_single_file_equals_folder(tiny: TinyModels, kind: str, suffix: str) -> None:
    import diffusers

    model = tiny[kind]
    cls = getattr(diffusers, model.pipeline_class)
    loaded = cls.from_single_file(
        str(getattr(model, suffix)),
        config=str(model.config),
        local_files_only=True,
        **_tokenizers(model, tiny.config_root),
    )
    folder = cls.from_pretrained(model.folder, local_files_only=True)
    names = ["unet", "vae", "text_encoder_2"] + (["text_encoder"] if kind == "sdxl-base" else [])
    for name in names:
        _assert_same_weights(getattr(loaded, name), getattr(folder, name), name)
    if kind == "sdxl-refiner":
        assert loaded.text_encoder is None and loaded.tokenizer is None
        assert loaded.config.requires_aesthetics_score is True
        assert loaded.config.force_zeros_for_empty_prompt is False


@pytest.mark.parametrize("kind", ["unclip-h", "unclip-l"])
def test_unclip_components_round_trip(tiny: TinyModels, kind: str) -> None:
    from diffusers import AutoencoderKL, StableUnCLIPImg2ImgPipeline, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel

    model = tiny[kind]
    folder = StableUnCLIPImg2ImgPipeline.from_pretrained(model.folder, local_files_only=True)
    sd = model.state_dict
    cfg = str(model.config)
    unet = UNet2DConditionModel.from_single_file(sd, config=cfg, subfolder="unet", local_files_only=True)
    _assert_same_weights(unet, folder.unet, "unet")
    vae = AutoencoderKL.from_single_file(str(model.ckpt), config=cfg, subfolder="vae", local_files_only=True)
    _assert_same_weights(vae, folder.vae, "vae")
    text = create_diffusers_clip_model_from_ldm(
        CLIPTextModel, sd, config=cfg, subfolder="text_encoder", local_files_only=True
    )
    _assert_same_weights(text, folder.text_encoder, "text_encoder")
    # the -l normalizer holds the Karlo stats; -h mean 0 / std 1
    mean, std = torch.load(tiny.karlo_stats, map_location="cpu", weights_only=True)
    assert mean.shape == std.shape == (1, IMAGE_EMBED_DIM["unclip-l"])
    if kind == "unclip-l":
        assert torch.equal(folder.image_normalizer.mean, mean) and torch.equal(folder.image_normalizer.std, std)
    else:
        assert not folder.image_normalizer.mean.any() and bool((folder.image_normalizer.std == 1).all())


@pytest.mark.parametrize("kind", ["unclip-h", "unclip-l"])
def test_unclip_visual_tower_is_open_clip_layout(tiny: TinyModels, kind: str) -> None:
    """open_clip's own VisionTransformer loads ``embedder.model.visual.*`` strictly and matches the HF image encoder."""
    from open_clip.transformer import QuickGELU, VisionTransformer
    from transformers import CLIPVisionModelWithProjection

    model = tiny[kind]
    hf = CLIPVisionModelWithProjection.from_pretrained(model.folder, subfolder="image_encoder", local_files_only=True)
    c = hf.config
    tower = VisionTransformer(
        image_size=c.image_size,
        patch_size=c.patch_size,
        width=c.hidden_size,
        layers=c.num_hidden_layers,
        heads=c.num_attention_heads,
        mlp_ratio=c.intermediate_size / c.hidden_size,
        output_dim=c.projection_dim,
        act_layer=QuickGELU if c.hidden_act == "quick_gelu" else torch.nn.GELU,
    )
    prefix = "embedder.model.visual."
    tower.load_state_dict({k[len(prefix) :]: v for k, v in model.state_dict.items() if k.startswith(prefix)})
    pixels = torch.randn(2, 3, c.image_size, c.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(tower.eval()(pixels), hf(pixel_values=pixels).image_embeds, atol=1e-5, rtol=1e-4)


# --- tokenizers and running pipelines ----------------------------------------------------------------------------------


def test_tokenizers_are_the_real_clip_bpe(tiny: TinyModels) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    h = _tokenizers(tiny.unclip_h, tiny.config_root)["tokenizer"]
    base = _tokenizers(tiny.sdxl_base, tiny.config_root)
    for tok in (h, base["tokenizer"], base["tokenizer_2"], load_clip_tokenizer(tiny.unclip_h.folder / "tokenizer")):
        assert len(tok) == VOCAB_SIZE and tok.model_max_length == 77
        assert tok(PROMPT).input_ids == PROMPT_IDS
    text = "Émile's 2 CATS, rendered in 8k!!"
    assert base["tokenizer"](text).input_ids[1:-1] == SimpleTokenizer().encode(text)
    # With pad_token "!" (SD 2.x, SDXL tokenizer_2) transformers treats "!" as a special token, so "!!" differs from
    # open_clip's BPE -- the same quirk as the real stabilityai tokenizers.
    assert h(text.rstrip("!")).input_ids[1:-1] == SimpleTokenizer().encode(text.rstrip("!"))
    assert h.pad_token == "!" and h.pad_token_id == 0
    assert base["tokenizer_2"].pad_token_id == 0
    assert base["tokenizer"].pad_token == "<|endoftext|>" and base["tokenizer"].pad_token_id == 49407


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))


def test_unclip_folder_pipeline_runs_and_reacts_to_image_and_prompt(tiny: TinyModels) -> None:
    from diffusers import StableUnCLIPImg2ImgPipeline

    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(tiny.unclip_h.folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)

    def run(image: Image.Image, prompt: str) -> np.ndarray:
        gen = torch.Generator().manual_seed(0)
        return pipe(image=image, prompt=prompt, num_inference_steps=2, generator=gen, output_type="np").images

    a = run(_image(0), "")
    assert a.shape == (1, 64, 64, 3) and np.isfinite(a).all() and a.std() > 0
    assert np.array_equal(a, run(_image(0), ""))  # deterministic per seed
    assert np.abs(a - run(_image(1), "")).max() > 1e-4  # the image embedding reaches the UNet (class_labels)
    assert np.abs(a - run(_image(0), PROMPT)).max() > 1e-4  # the prompt reaches the UNet


def test_sdxl_refiner_folder_pipeline_runs(tiny: TinyModels) -> None:
    from diffusers import StableDiffusionXLImg2ImgPipeline

    pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny.sdxl_refiner.folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt=PROMPT, image=_image(0), strength=0.5, num_inference_steps=4, output_type="np").images
    assert out.shape == (1, 64, 64, 3) and np.isfinite(out).all() and out.std() > 0
