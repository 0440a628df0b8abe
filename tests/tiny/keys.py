"""Seeded random weights and the diffusers -> original (ldm/sgm/open_clip) key tables of the tiny models."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from tests.tiny.common import Tensors

# --------------------------------------------------------------------------------------------------------------------
# Seeded random weights (independent of the libraries' own init, so both test environments get identical values)
# --------------------------------------------------------------------------------------------------------------------


def seed_of(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode()) & 0x7FFFFFFF


@torch.no_grad()
def randomize_(module: nn.Module, seed: int, *, fp16_exact: bool = False) -> nn.Module:
    """Overwrite every parameter deterministically (sorted by name).

    Norm weights ~ 1 + N(0, 0.05) and biases ~ N(0, 0.02) (never exactly 1/0, so a swapped norm or a lost bias shows
    in weight comparisons); Linear/Conv/Embedding weights ~ N(0, 1/fan_in); other vectors N(0, 0.02). No layer is left
    at zero, so the prompt and ``class_labels`` visibly change the UNet output.
    """
    gen = torch.Generator().manual_seed(seed)
    norms = (nn.LayerNorm, nn.GroupNorm)
    for _, mod in sorted(module.named_modules(), key=lambda x: x[0]):
        for name, param in sorted(mod.named_parameters(recurse=False), key=lambda x: x[0]):
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
            if isinstance(mod, norms):
                value = 1.0 + 0.05 * noise if name == "weight" else 0.02 * noise
            elif param.ndim >= 2:
                value = noise / math.sqrt(param[0].numel())
            else:
                value = 0.02 * noise
            if fp16_exact:
                value = value.half().float()
            param.copy_(value.to(param.dtype))
    return module


# --------------------------------------------------------------------------------------------------------------------
# diffusers -> original (ldm/sgm/open_clip) layout converters, generic over block counts
# --------------------------------------------------------------------------------------------------------------------

_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}


def _resnet(parts: list[str]) -> str:
    return ".".join([_UNET_RESNET[parts[0]], *parts[1:]])


def unet_to_original(sd: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> Tensors:
    """diffusers ``UNet2DConditionModel`` state dict -> ``model.diffusion_model.*`` (openaimodel) keys."""
    lpb = config["layers_per_block"]
    if not isinstance(lpb, int):
        raise ValueError("only an int layers_per_block is supported (as in every SD/SDXL UNet)")
    per = lpb + 1
    up_types = config["up_block_types"]
    out: Tensors = {}
    for key, value in sd.items():
        p = key.split(".")
        head = p[0]
        if head == "time_embedding":
            new = f"time_embed.{ {'linear_1': 0, 'linear_2': 2}[p[1]] }." + ".".join(p[2:])
        elif head in ("class_embedding", "add_embedding"):  # projection class embedding / SDXL text_time embedding
            new = f"label_emb.0.{ {'linear_1': 0, 'linear_2': 2}[p[1]] }." + ".".join(p[2:])
        elif head in ("conv_in", "conv_norm_out", "conv_out"):
            new = {"conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}[head]
            new += "." + ".".join(p[1:])
        elif head == "down_blocks":
            i, part = int(p[1]), p[2]
            if part == "resnets":
                new = f"input_blocks.{1 + i * per + int(p[3])}.0." + _resnet(p[4:])
            elif part == "attentions":
                new = f"input_blocks.{1 + i * per + int(p[3])}.1." + ".".join(p[4:])
            elif part == "downsamplers":  # downsamplers.0.conv.*
                new = f"input_blocks.{1 + i * per + lpb}.0.op." + ".".join(p[5:])
            else:
                raise KeyError(key)
        elif head == "mid_block":
            k = int(p[2])
            if p[1] == "resnets":
                new = f"middle_block.{2 * k}." + _resnet(p[3:])
            else:
                new = f"middle_block.{2 * k + 1}." + ".".join(p[3:])
        elif head == "up_blocks":
            i, part = int(p[1]), p[2]
            if part == "resnets":
                new = f"output_blocks.{i * per + int(p[3])}.0." + _resnet(p[4:])
            elif part == "attentions":
                new = f"output_blocks.{i * per + int(p[3])}.1." + ".".join(p[4:])
            elif part == "upsamplers":  # upsamplers.0.conv.*
                slot = 2 if "CrossAttn" in up_types[i] else 1
                new = f"output_blocks.{i * per + lpb}.{slot}.conv." + ".".join(p[5:])
            else:
                raise KeyError(key)
        else:
            raise KeyError(f"unmapped UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


def vae_to_original(sd: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> Tensors:
    """diffusers ``AutoencoderKL`` state dict -> ``first_stage_model.*`` (ldm Encoder/Decoder) keys."""
    n_up = len(config["up_block_types"])
    out: Tensors = {}
    for key, value in sd.items():
        p = key.split(".")
        if p[0] in ("quant_conv", "post_quant_conv"):
            out["first_stage_model." + key] = value
            continue
        side, head, rest = p[0], p[1], p[2:]
        if head in ("conv_in", "conv_out"):
            new = [head, *rest]
        elif head == "conv_norm_out":
            new = ["norm_out", *rest]
        elif head in ("down_blocks", "up_blocks"):
            i = int(rest[0]) if head == "down_blocks" else n_up - 1 - int(rest[0])
            level = f"{'down' if head == 'down_blocks' else 'up'}.{i}"
            if rest[1] == "resnets":
                new = [level, "block", rest[2], *[("nin_shortcut" if x == "conv_shortcut" else x) for x in rest[3:]]]
            else:  # downsamplers.0.conv.* / upsamplers.0.conv.*
                new = [level, "downsample" if head == "down_blocks" else "upsample", *rest[3:]]
        elif head == "mid_block" and rest[0] == "resnets":
            new = [
                "mid",
                f"block_{int(rest[1]) + 1}",
                *[("nin_shortcut" if x == "conv_shortcut" else x) for x in rest[2:]],
            ]
        elif head == "mid_block" and rest[0] == "attentions":
            layer = _VAE_ATTN[rest[2]]
            new = ["mid", "attn_1", layer, rest[-1]]
            if value.ndim == 2:  # Linear [C, C] -> 1x1 conv [C, C, 1, 1]
                value = value[:, :, None, None]
        else:
            raise KeyError(f"unmapped VAE key {key}")
        out["first_stage_model." + ".".join([side, *new])] = value
    return out


# CLIP towers: OUR key tables, never the installed transformers' state-dict names. transformers 5 dropped the
# ``text_model.`` level of ``CLIPTextModel`` (its state dict starts at ``embeddings.``) while the ``*WithProjection``
# models keep theirs; the real single files keep the transformers-4 names. So the weights are read from the tower
# module (``CLIPTextTransformer`` / ``CLIPVisionTransformer``: the same attribute paths in every version) and every
# single-file name below is spelled out here.

# open_clip resblock name -> tower paths inside ``encoder.layers.<i>.`` (several: concatenated along dim 0)
_RESBLOCK: dict[str, tuple[str, ...]] = {
    "ln_1.weight": ("layer_norm1.weight",),
    "ln_1.bias": ("layer_norm1.bias",),
    "attn.in_proj_weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
    "attn.in_proj_bias": ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"),
    "attn.out_proj.weight": ("self_attn.out_proj.weight",),
    "attn.out_proj.bias": ("self_attn.out_proj.bias",),
    "ln_2.weight": ("layer_norm2.weight",),
    "ln_2.bias": ("layer_norm2.bias",),
    "mlp.c_fc.weight": ("mlp.fc1.weight",),
    "mlp.c_fc.bias": ("mlp.fc1.bias",),
    "mlp.c_proj.weight": ("mlp.fc2.weight",),
    "mlp.c_proj.bias": ("mlp.fc2.bias",),
}
# open_clip name -> tower path, outside the resblocks
_OPEN_CLIP_TEXT = {
    "token_embedding.weight": "embeddings.token_embedding.weight",
    "positional_embedding": "embeddings.position_embedding.weight",
    "ln_final.weight": "final_layer_norm.weight",
    "ln_final.bias": "final_layer_norm.bias",
}
_OPEN_CLIP_VISION = {
    "class_embedding": "embeddings.class_embedding",
    "conv1.weight": "embeddings.patch_embedding.weight",
    "positional_embedding": "embeddings.position_embedding.weight",
    "ln_pre.weight": "pre_layrnorm.weight",
    "ln_pre.bias": "pre_layrnorm.bias",
    "ln_post.weight": "post_layernorm.weight",
    "ln_post.bias": "post_layernorm.bias",
}


def clip_tower(model: nn.Module) -> nn.Module:
    """The CLIP transformer of an HF CLIP model: ``model.text_model`` / ``model.vision_model`` where there is one (the
    ``*WithProjection`` models; transformers 4's ``CLIPTextModel``), else the model itself (transformers 5's
    ``CLIPTextModel``). Its parameter paths (``embeddings.*``, ``encoder.layers.*``, ...) are the same everywhere."""
    for name in ("text_model", "vision_model"):
        tower = getattr(model, name, None)
        if isinstance(tower, nn.Module):
            return tower
    return model


def tower_params(model: nn.Module) -> Tensors:
    return dict(clip_tower(model).named_parameters())


def _open_clip_table(simple: Mapping[str, str], layers: int) -> dict[str, tuple[str, ...]]:
    """open_clip name (without prefix) -> the tower paths it is made of, for a tower of ``layers`` resblocks."""
    table = {name: (path,) for name, path in simple.items()}
    for i in range(layers):
        for name, paths in _RESBLOCK.items():
            table[f"transformer.resblocks.{i}.{name}"] = tuple(f"encoder.layers.{i}.{p}" for p in paths)
    return table


def hf_clip_text_table(layers: int) -> dict[str, tuple[str, ...]]:
    """The transformers-4 names of a CLIP text model (as in the real files: ``text_model.*``) -> tower paths."""
    paths = [*_OPEN_CLIP_TEXT.values()]
    paths += [f"encoder.layers.{i}.{p}" for i in range(layers) for parts in _RESBLOCK.values() for p in parts]
    return {f"text_model.{path}": (path,) for path in dict.fromkeys(paths)}


def _apply_table(params: Mapping[str, torch.Tensor], table: Mapping[str, tuple[str, ...]], prefix: str) -> Tensors:
    """``{prefix + name: tensor}`` per table row; KeyError when a tower weight is in no row (never guessed)."""
    out = {prefix + name: torch.cat([params[p] for p in paths]) if len(paths) > 1 else params[paths[0]]
           for name, paths in table.items()}  # fmt: skip
    left = set(params) - {p for paths in table.values() for p in paths}
    if left:
        raise KeyError(f"tower weights missing from the key table: {sorted(left)}")
    return out


def clip_text_to_open_clip(model: nn.Module, prefix: str) -> Tensors:
    """An HF ``CLIPTextModel[WithProjection]`` -> open_clip text keys under ``prefix`` (e.g. ``...model.``); the
    ``text_projection`` Linear ``[proj, width]`` becomes the open_clip matrix ``[width, proj]``."""
    tower = clip_tower(model)
    out = _apply_table(tower_params(model), _open_clip_table(_OPEN_CLIP_TEXT, len(tower.encoder.layers)), prefix)
    projection = getattr(model, "text_projection", None)
    if projection is not None:
        out[prefix + "text_projection"] = projection.weight.T
    return out


def clip_vision_to_open_clip(model: nn.Module, prefix: str = "embedder.model.visual.") -> Tensors:
    """An HF ``CLIPVisionModelWithProjection`` -> open_clip/OpenAI ``VisionTransformer`` keys (``proj`` [width, E])."""
    tower = clip_tower(model)
    out = _apply_table(tower_params(model), _open_clip_table(_OPEN_CLIP_VISION, len(tower.encoder.layers)), prefix)
    out[prefix + "proj"] = model.visual_projection.weight.T
    return out


def hf_clip_text_to_sgm(model: nn.Module, prefix: str = "conditioner.embedders.0.transformer.") -> Tensors:
    """An HF CLIP-L text model under ``prefix`` with the transformers-4 names of the real file (SDXL embedder 0),
    plus its int64 ``position_ids`` buffer."""
    tower = clip_tower(model)
    out = _apply_table(tower_params(model), hf_clip_text_table(len(tower.encoder.layers)), prefix)
    n_pos = tower.embeddings.position_embedding.weight.shape[0]
    out[prefix + "text_model.embeddings.position_ids"] = torch.arange(n_pos, dtype=torch.int64)[None]
    return out


def _schedule_buffers(betas: np.ndarray, *, posterior: bool) -> dict[str, np.ndarray]:
    """ldm ``register_schedule`` buffers (float64 math, stored float32)."""
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    out = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": np.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
    }
    if posterior:
        var = betas * (1.0 - ac_prev) / (1.0 - ac)
        out["posterior_variance"] = var
        out["posterior_log_variance_clipped"] = np.log(np.maximum(var, 1e-20))
        out["posterior_mean_coef1"] = betas * np.sqrt(ac_prev) / (1.0 - ac)
        out["posterior_mean_coef2"] = (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)
    return out


def noise_augmentor_buffers(timesteps: int = 1000) -> Tensors:
    """``noise_augmentor.*`` of CLIPEmbeddingNoiseAugmentation (squaredcos_cap_v2, ``register_schedule``)."""
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = np.array([min(1 - f((i + 1) / timesteps) / f(i / timesteps), 0.999) for i in range(timesteps)])
    bufs = _schedule_buffers(betas, posterior=False)
    return {f"noise_augmentor.{k}": torch.tensor(v, dtype=torch.float32) for k, v in bufs.items()}


def ldm_schedule_buffers(timesteps: int = 1000, start: float = 0.00085, end: float = 0.012) -> Tensors:
    """Top-level LatentDiffusion buffers (``betas`` ... ``posterior_mean_coef2``) of an SD 2.x ldm checkpoint."""
    betas = np.linspace(start**0.5, end**0.5, timesteps, dtype=np.float64) ** 2
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in _schedule_buffers(betas, posterior=True).items()}
