"""The tiny pipelines' components (unCLIP -h/-l, SDXL base/refiner) and their original-layout single-file dicts."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tests.tiny.common import EMBEDDER_TEXT_WIDTH, IMAGE_EMBED_DIM, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, Tensors
from tests.tiny.keys import (
    clip_text_to_open_clip,
    clip_tower,
    clip_vision_to_open_clip,
    hf_clip_text_to_sgm,
    ldm_schedule_buffers,
    noise_augmentor_buffers,
    randomize_,
    seed_of,
    tower_params,
    unet_to_original,
    vae_to_original,
)
from tests.tiny.tokenizer import VOCAB_SIZE

# --------------------------------------------------------------------------------------------------------------------
# Tiny component configs and builders
# --------------------------------------------------------------------------------------------------------------------


def _text_config(hidden: int, layers: int, heads: int, act: str, projection_dim: int) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=act,
        projection_dim=projection_dim,
        layer_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )


def _unet(seed: int, *, fp16_exact: bool, **family: Any) -> Any:
    """The tiny UNet of every kind (2 levels of 32/64 channels, one layer each, linear projections, latent 8x8) with the
    ``family``'s blocks, cross-attention width and class/added embeddings."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=32,
        **family,
    )
    return randomize_(unet, seed, fp16_exact=fp16_exact)


def _vae(scaling_factor: float, seed: int, *, fp16_exact: bool) -> Any:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=32,
        sample_size=64,
        scaling_factor=scaling_factor,
    )
    return randomize_(vae, seed, fp16_exact=fp16_exact)


def unclip_components(kind: str) -> tuple[dict[str, Any], Tensors, torch.Tensor, torch.Tensor]:
    """Components of a tiny StableUnCLIPImg2ImgPipeline, its extra original-only tensors, and (mean, std)."""
    from diffusers import DDIMScheduler, DDPMScheduler
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    emb = IMAGE_EMBED_DIM[kind]
    is_l = kind == "unclip-l"
    # OpenCLIP-H text tower, 3 resblocks; the diffusers text_encoder is its penultimate cut (2 layers), as SD 2.x.
    full_text = randomize_(CLIPTextModelWithProjection(_text_config(32, 3, 2, "gelu", 32)), seed_of(kind, "text"))
    text_encoder = CLIPTextModel(_text_config(32, 2, 2, "gelu", 32))
    text_sd = {k: v for k, v in tower_params(full_text).items() if not k.startswith("encoder.layers.2.")}
    missing, unexpected = clip_tower(text_encoder).load_state_dict(text_sd, strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing, unexpected)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=48 if is_l else 32,
            intermediate_size=192 if is_l else 128,
            projection_dim=emb,
            num_hidden_layers=2,
            num_attention_heads=3 if is_l else 2,
            image_size=32,
            patch_size=4,
            num_channels=3,
            hidden_act="quick_gelu" if is_l else "gelu",
            layer_norm_eps=1e-5,
        )
    )
    randomize_(image_encoder, seed_of(kind, "image_encoder"))
    unet = _unet(
        seed_of(kind, "unet"),
        fp16_exact=False,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        upcast_attention=True,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * emb,
    )
    gen = torch.Generator().manual_seed(seed_of(kind, "stats"))
    if is_l:  # Karlo ViT-L-14 statistics stand-in (real: tuple of two [1, 768] tensors)
        mean = 0.05 * torch.randn(1, emb, generator=gen)
        std = 0.5 + torch.rand(1, emb, generator=gen)
    else:  # -h: mean 0 / std 1
        mean, std = torch.zeros(1, emb), torch.ones(1, emb)
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=emb)
    with torch.no_grad():
        normalizer.mean.copy_(mean)
        normalizer.std.copy_(std)
    components = {
        "feature_extractor": CLIPImageProcessor(
            do_resize=True,
            size={"shortest_edge": 32},
            resample=3,
            do_center_crop=True,
            crop_size={"height": 32, "width": 32},
            do_rescale=True,
            do_normalize=True,
            image_mean=OPENAI_CLIP_MEAN,
            image_std=OPENAI_CLIP_STD,
            do_convert_rgb=True,
        ),
        "image_encoder": image_encoder,
        "image_normalizer": normalizer,
        "image_noising_scheduler": DDPMScheduler(
            num_train_timesteps=1000,
            beta_schedule="squaredcos_cap_v2",
            beta_start=0.0001,
            beta_end=0.02,
            clip_sample=True,
            prediction_type="epsilon",
            variance_type="fixed_small",
        ),
        "tokenizer": None,  # filled by the caller (tokenizer folder)
        "text_encoder": text_encoder,
        "unet": unet,
        "scheduler": DDIMScheduler(
            num_train_timesteps=1000,
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
            prediction_type="v_prediction",
        ),
        "vae": _vae(0.18215, seed_of(kind, "vae"), fp16_exact=False),
    }
    # original-only tensors: the full OpenCLIP text tower and the embedder's text side at the real width
    width = EMBEDDER_TEXT_WIDTH[kind]
    extra = clip_text_to_open_clip(full_text, "cond_stage_model.model.")
    extra["cond_stage_model.model.logit_scale"] = torch.tensor(math.log(100.0))
    extra["embedder.model.logit_scale"] = torch.tensor(math.log(100.0))
    if is_l:  # OpenAI CLIP ViT-L/14's whole text tower at its real width (768, 12 heads), one block instead of 12
        config = _text_config(width, 1, width // 64, "quick_gelu", emb)
        tower = randomize_(CLIPTextModelWithProjection(config), seed_of(kind, "embedder_text"))
        oc = clip_text_to_open_clip(tower, "embedder.model.")
        # the 49408 x 768 token embedding in fp16 to keep the file small (the real one is fp32)
        extra.update({k: v.half() if k.endswith("token_embedding.weight") else v for k, v in oc.items()})
        return components, extra, mean, std
    extra["embedder.model.ln_final.weight"] = 1.0 + 0.05 * torch.randn(width, generator=gen)
    extra["embedder.model.ln_final.bias"] = 0.02 * torch.randn(width, generator=gen)
    extra["embedder.model.positional_embedding"] = 0.01 * torch.randn(77, width, generator=gen)
    extra["embedder.model.text_projection"] = torch.randn(width, emb, generator=gen) / math.sqrt(width)
    return components, extra, mean, std


def sdxl_components(kind: str) -> dict[str, Any]:
    """Components of a tiny StableDiffusionXL(Img2Img)Pipeline (tokenizers filled by the caller)."""
    from diffusers import EulerDiscreteScheduler
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    base = kind == "sdxl-base"
    te2 = randomize_(
        CLIPTextModelWithProjection(_text_config(64, 10, 4, "gelu", 64)), seed_of(kind, "text2"), fp16_exact=True
    )
    unet = _unet(
        seed_of(kind, "unet"),
        fp16_exact=True,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=96 if base else 64,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=(6 if base else 5) * 8 + 64,
    )
    components = {
        "vae": _vae(0.13025, seed_of(kind, "vae"), fp16_exact=True),
        "text_encoder": None,
        "text_encoder_2": te2,
        "tokenizer": None,
        "tokenizer_2": None,
        "unet": unet,
        "scheduler": EulerDiscreteScheduler(
            num_train_timesteps=1000,
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            prediction_type="epsilon",
            interpolation_type="linear",
            use_karras_sigmas=False,
            steps_offset=1,
            timestep_spacing="leading",
        ),
    }
    if base:
        te1 = CLIPTextModel(_text_config(32, 2, 2, "quick_gelu", 32))
        components["text_encoder"] = randomize_(te1, seed_of(kind, "text1"), fp16_exact=True)
    return components


def _params(module: nn.Module) -> Tensors:
    """A diffusers model's state dict (UNet, VAE) without ``position_ids`` buffers."""
    return {k: v for k, v in module.state_dict().items() if not k.endswith("position_ids")}


def original_state_dict(kind: str, pipe: Any, extra: Tensors | None = None) -> Tensors:
    """The original-layout single-file dict of a tiny pipeline (contiguous CPU tensors, the real dtypes)."""
    sd: Tensors = {}
    sd.update(unet_to_original(_params(pipe.unet), pipe.unet.config))
    sd.update(vae_to_original(_params(pipe.vae), pipe.vae.config))
    if kind.startswith("unclip"):
        sd.update(clip_vision_to_open_clip(pipe.image_encoder))
        sd.update(extra or {})
        sd.update(noise_augmentor_buffers())
        sd.update(ldm_schedule_buffers())
        dtype = torch.float32
    else:
        embedder = "conditioner.embedders.1.model." if kind == "sdxl-base" else "conditioner.embedders.0.model."
        sd.update(clip_text_to_open_clip(pipe.text_encoder_2, embedder))
        sd[embedder + "logit_scale"] = torch.tensor(math.log(100.0))
        if kind == "sdxl-base":
            sd.update(hf_clip_text_to_sgm(pipe.text_encoder))
        dtype = torch.float16
    return {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous().clone()
        for k, v in sorted(sd.items())
    }
