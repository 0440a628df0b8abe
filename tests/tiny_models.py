"""Tiny random-weight models for offline tests (test-only code, never imported by the extension).

Builds, from configs with seeded random weights, tiny versions of SD 2.1 unCLIP "-h" and "-l", SDXL base and SDXL
refiner, each in two forms: a diffusers folder (``save_pretrained``) and a single file in the ORIGINAL layout
(``.safetensors`` and ``.ckpt``) with the real key names. Only the sizes shrink; the structure, key names, dtypes and
the facts our loaders and diffusers' detection rely on stay as in the real files:

* unCLIP (fp32 like ``sd21-unclip-{h,l}.ckpt``): ``model.diffusion_model.*`` (UNet incl. ``label_emb.0.0/0.2``,
  input = 2 x image-embedding dim), ``first_stage_model.*`` (VAE, 4 levels, latent = 1/8), ``cond_stage_model.model.*``
  (OpenCLIP text tower with ONE MORE resblock than the diffusers ``text_encoder``: the diffusers model is the
  penultimate-layer cut, exactly as SD 2.x's 24 vs 23 layers; plus ``text_projection`` and ``logit_scale``),
  ``embedder.model.visual.*`` (open_clip/OpenAI ``VisionTransformer`` layout), ``noise_augmentor.*`` (the 8
  ``register_schedule`` buffers of the squaredcos_cap_v2 schedule, 1000 steps) and the LatentDiffusion schedule buffers
  (``betas``, ``alphas_cumprod``, ``posterior_*`` ...) that ldm checkpoints carry at top level.
* ``embedder.model`` outside ``visual``: the real -h embedder (FrozenOpenCLIPImageEmbedder) deletes its text
  ``transformer`` but keeps ``token_embedding``, ``positional_embedding``, ``text_projection``, ``ln_final``,
  ``logit_scale``; the real -l embedder (OpenAI CLIP ViT-L/14) keeps its whole text tower. Real detection reads
  ``embedder.model.ln_final.weight``: width 1024 -> -h, 768 -> -l. The tiny files keep that rule working with the REAL
  text widths. -h: only the cheap vectors, ``ln_final.{weight,bias}`` [1024], ``positional_embedding`` [77, 1024],
  ``text_projection`` [1024, E] and ``logit_scale`` (its 49408-row ``token_embedding`` is omitted: nothing loads it).
  -l: a whole, consistent OpenAI text tower at the real width 768 with 12 heads and ONE block
  (``token_embedding`` [49408, 768] stored fp16 to keep the file small, ``transformer.resblocks.0.*``, ``ln_final``,
  ``text_projection`` [768, E]): Edit by text loads it (extension/loading/text_tower.py).
* Tiny image-embedding dims differ between the variants (-h: E=32, -l: E=24) so that a wrong config/stats pairing
  fails loudly. -l's tower uses quick_gelu (OpenAI), -h's gelu (OpenCLIP).
* SDXL (fp16 like ``sd_xl_*_1.0.safetensors``; the random weights are fp16-exact so files and folders hold identical
  values): base ``conditioner.embedders.0.transformer.text_model.*`` (HF CLIP-L stand-in, hidden 32) and
  ``conditioner.embedders.1.model.*`` (OpenCLIP bigG stand-in, hidden 64, 10 resblocks so diffusers' detection key
  ``...resblocks.9.mlp.c_proj.bias`` exists); refiner ``conditioner.embedders.0.model.*`` (bigG only). diffusers'
  ``infer_diffusers_model_type`` classifies the files as ``xl_base`` / ``xl_refiner``.

The single-file key names come from this module's own key tables (``_RESBLOCK``, ``_OPEN_CLIP_TEXT``,
``hf_clip_text_table`` ...), read off the CLIP tower modules, never from the installed transformers' ``state_dict()``
names (transformers 5's ``CLIPTextModel`` has no ``text_model.`` level any more), so the files are the same on
transformers 4.30 to 5.x. The diffusers folders are whatever the installed libraries' ``save_pretrained`` writes.

The tokenizer is the real CLIP BPE shipped inside open_clip, converted to ``vocab.json``/``merges.txt``
(:func:`write_clip_vocab`). Config-only folders (``config_root``) mirror ``extension/configs``: per-model
``tokenizer*/`` folders hold only ``tokenizer_config.json``/``special_tokens_map.json`` and the one shared
``clip-tokenizer/`` holds ``vocab.json``/``merges.txt`` (see :func:`load_clip_tokenizer`).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CACHE_VERSION = "1"
KINDS = ("unclip-h", "unclip-l", "sdxl-base", "sdxl-refiner")
EMBEDDER_TEXT_WIDTH = {"unclip-h": 1024, "unclip-l": 768}  # the real widths of embedder.model.ln_final.weight
IMAGE_EMBED_DIM = {"unclip-h": 32, "unclip-l": 24}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx")
SPECIAL = ("<|startoftext|>", "<|endoftext|>")
N_MERGES = 49152 - 256 - 2  # 48,894 merges, as open_clip's SimpleTokenizer and HF CLIPTokenizer slice them
VOCAB_SIZE = 49408
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
Tensors = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------------------------------
# Tokenizer: the real CLIP BPE from open_clip, in transformers-4 format
# --------------------------------------------------------------------------------------------------------------------


def open_clip_bpe_path() -> Path:
    """The BPE file shipped inside open-clip-torch (found without importing open_clip)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise RuntimeError("open-clip-torch is not installed: it ships the CLIP BPE vocabulary the tests need")
    return Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> unicode table (same as open_clip's and transformers')."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


@functools.lru_cache(maxsize=1)
def _vocab_files_text() -> tuple[str, str]:
    """(vocab.json text, merges.txt text) built like open_clip's SimpleTokenizer: 49,408 entries."""
    lines = gzip.decompress(open_clip_bpe_path().read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + list(SPECIAL)
    assert len(tokens) == VOCAB_SIZE, len(tokens)
    vocab = json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False)
    return vocab, "#version: 0.2\n" + "\n".join(merges) + "\n"


def _added_token(content: str) -> dict[str, Any]:
    return {
        "__type": "AddedToken",
        "content": content,
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
    }


def write_clip_vocab(directory: Path | str) -> Path:
    """Write only ``vocab.json`` and ``merges.txt`` (a shared ``clip-tokenizer/`` folder). The one recipe: the fixtures
    use it, and ``bench/make_clip_tokenizer.py`` wrote the bundled ``extension/configs/clip-tokenizer`` with it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_text, merges_text = _vocab_files_text()
    (directory / "vocab.json").write_text(vocab_text, encoding="utf-8")
    (directory / "merges.txt").write_text(merges_text, encoding="utf-8")
    return directory


def write_clip_tokenizer(directory: Path | str, pad_token: str = "<|endoftext|>", *, vocab: bool = True) -> Path:
    """Write a transformers-4 CLIPTokenizer folder (loads in transformers 4.30 and 4.46 via ``from_pretrained``).

    ``pad_token``: ``"!"`` for SD 2.x/unCLIP and SDXL ``tokenizer_2``, ``"<|endoftext|>"`` for SDXL ``tokenizer``.
    ``vocab=False`` writes only ``tokenizer_config.json``/``special_tokens_map.json`` (the per-model folders of a
    config root whose ``vocab.json``/``merges.txt`` live once in ``clip-tokenizer/``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if vocab:
        write_clip_vocab(directory)
    bos, eos = SPECIAL
    config = {
        "add_prefix_space": False,
        "bos_token": _added_token(bos),
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": _added_token(eos),
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": pad_token,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": _added_token(eos),
    }
    special = {
        k: v if isinstance(v, str) else {x: y for x, y in v.items() if x != "__type"}
        for k, v in config.items()
        if k.endswith("_token")
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return directory


def load_clip_tokenizer(tokenizer_dir: Path | str, vocab_dir: Path | str | None = None) -> Any:
    """``CLIPTokenizer`` from a tokenizer folder; ``vocab_dir`` supplies ``vocab.json``/``merges.txt`` when absent."""
    from transformers import CLIPTokenizer

    tokenizer_dir = Path(tokenizer_dir)
    if (tokenizer_dir / "vocab.json").is_file() or vocab_dir is None:
        return CLIPTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    vocab_dir = Path(vocab_dir)
    return CLIPTokenizer.from_pretrained(
        tokenizer_dir,
        vocab_file=str(vocab_dir / "vocab.json"),
        merges_file=str(vocab_dir / "merges.txt"),
        local_files_only=True,
    )


# --------------------------------------------------------------------------------------------------------------------
# Seeded random weights (independent of the libraries' own init, so both test environments get identical values)
# --------------------------------------------------------------------------------------------------------------------


def _seed(*parts: str) -> int:
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


def _tower_params(model: nn.Module) -> Tensors:
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
    out = _apply_table(_tower_params(model), _open_clip_table(_OPEN_CLIP_TEXT, len(tower.encoder.layers)), prefix)
    projection = getattr(model, "text_projection", None)
    if projection is not None:
        out[prefix + "text_projection"] = projection.weight.T
    return out


def clip_vision_to_open_clip(model: nn.Module, prefix: str = "embedder.model.visual.") -> Tensors:
    """An HF ``CLIPVisionModelWithProjection`` -> open_clip/OpenAI ``VisionTransformer`` keys (``proj`` [width, E])."""
    tower = clip_tower(model)
    out = _apply_table(_tower_params(model), _open_clip_table(_OPEN_CLIP_VISION, len(tower.encoder.layers)), prefix)
    out[prefix + "proj"] = model.visual_projection.weight.T
    return out


def hf_clip_text_to_sgm(model: nn.Module, prefix: str = "conditioner.embedders.0.transformer.") -> Tensors:
    """An HF CLIP-L text model under ``prefix`` with the transformers-4 names of the real file (SDXL embedder 0),
    plus its int64 ``position_ids`` buffer."""
    tower = clip_tower(model)
    out = _apply_table(_tower_params(model), hf_clip_text_table(len(tower.encoder.layers)), prefix)
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


def _unclip_components(kind: str) -> tuple[dict[str, Any], Tensors, torch.Tensor, torch.Tensor]:
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
    full_text = randomize_(CLIPTextModelWithProjection(_text_config(32, 3, 2, "gelu", 32)), _seed(kind, "text"))
    text_encoder = CLIPTextModel(_text_config(32, 2, 2, "gelu", 32))
    text_sd = {k: v for k, v in _tower_params(full_text).items() if not k.startswith("encoder.layers.2.")}
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
    randomize_(image_encoder, _seed(kind, "image_encoder"))
    unet = _unet(
        _seed(kind, "unet"),
        fp16_exact=False,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        upcast_attention=True,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * emb,
    )
    gen = torch.Generator().manual_seed(_seed(kind, "stats"))
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
        "vae": _vae(0.18215, _seed(kind, "vae"), fp16_exact=False),
    }
    # original-only tensors: the full OpenCLIP text tower and the embedder's text side at the real width
    width = EMBEDDER_TEXT_WIDTH[kind]
    extra = clip_text_to_open_clip(full_text, "cond_stage_model.model.")
    extra["cond_stage_model.model.logit_scale"] = torch.tensor(math.log(100.0))
    extra["embedder.model.logit_scale"] = torch.tensor(math.log(100.0))
    if is_l:  # OpenAI CLIP ViT-L/14's whole text tower at its real width (768, 12 heads), one block instead of 12
        config = _text_config(width, 1, width // 64, "quick_gelu", emb)
        tower = randomize_(CLIPTextModelWithProjection(config), _seed(kind, "embedder_text"))
        oc = clip_text_to_open_clip(tower, "embedder.model.")
        # the 49408 x 768 token embedding in fp16 to keep the file small (the real one is fp32)
        extra.update({k: v.half() if k.endswith("token_embedding.weight") else v for k, v in oc.items()})
        return components, extra, mean, std
    extra["embedder.model.ln_final.weight"] = 1.0 + 0.05 * torch.randn(width, generator=gen)
    extra["embedder.model.ln_final.bias"] = 0.02 * torch.randn(width, generator=gen)
    extra["embedder.model.positional_embedding"] = 0.01 * torch.randn(77, width, generator=gen)
    extra["embedder.model.text_projection"] = torch.randn(width, emb, generator=gen) / math.sqrt(width)
    return components, extra, mean, std


def _sdxl_components(kind: str) -> dict[str, Any]:
    """Components of a tiny StableDiffusionXL(Img2Img)Pipeline (tokenizers filled by the caller)."""
    from diffusers import EulerDiscreteScheduler
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    base = kind == "sdxl-base"
    te2 = randomize_(
        CLIPTextModelWithProjection(_text_config(64, 10, 4, "gelu", 64)), _seed(kind, "text2"), fp16_exact=True
    )
    unet = _unet(
        _seed(kind, "unet"),
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
        "vae": _vae(0.13025, _seed(kind, "vae"), fp16_exact=True),
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
        components["text_encoder"] = randomize_(te1, _seed(kind, "text1"), fp16_exact=True)
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


# --------------------------------------------------------------------------------------------------------------------
# The fixture set
# --------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TinyModel:
    """One tiny model in every form. ``state_dict`` is loaded lazily from the ``.safetensors`` file when reused."""

    kind: str
    folder: Path  # diffusers folder with weights (save_pretrained)
    config: Path  # the matching config-only folder (config_root / kind)
    safetensors: Path
    ckpt: Path
    pipeline_class: str
    _state_dict: Tensors | None = dataclasses.field(default=None, repr=False)

    @property
    def state_dict(self) -> Tensors:
        """The original-layout dict written to the single files (CPU tensors; fp16 for SDXL, fp32 for unCLIP)."""
        if self._state_dict is None:
            from safetensors.torch import load_file

            self._state_dict = load_file(str(self.safetensors))
        return self._state_dict


@dataclasses.dataclass
class TinyModels:
    """The session fixture ``tiny``."""

    root: Path
    config_root: Path  # unclip-h, unclip-l, sdxl-base, sdxl-refiner, clip-tokenizer (config-only, tiny sizes)
    karlo_stats: Path  # ViT-L-14_stats.th stand-in for unclip-l: torch.save((mean [1, 24], std [1, 24]))
    unclip_h: TinyModel
    unclip_l: TinyModel
    sdxl_base: TinyModel
    sdxl_refiner: TinyModel

    def __getitem__(self, kind: str) -> TinyModel:
        return getattr(self, kind.replace("-", "_"))

    @property
    def models(self) -> list[TinyModel]:
        return [self[k] for k in KINDS]


PIPELINE_CLASS = {
    "unclip-h": "StableUnCLIPImg2ImgPipeline",
    "unclip-l": "StableUnCLIPImg2ImgPipeline",
    "sdxl-base": "StableDiffusionXLPipeline",
    "sdxl-refiner": "StableDiffusionXLImg2ImgPipeline",
}
SDXL_TOKENIZER_PAD = "<|endoftext|>"  # SDXL `tokenizer` (CLIP-L); every other tokenizer pads with "!"


def cache_key() -> str:
    """Version string of a build: bumps when this file or the diffusers/transformers/torch versions change."""
    import diffusers
    import transformers

    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    return f"v{CACHE_VERSION}-{digest}-d{diffusers.__version__}-tf{transformers.__version__}-pt{torch.__version__}"


def _pad_for(kind: str, sub: str) -> str:
    return SDXL_TOKENIZER_PAD if (kind == "sdxl-base" and sub == "tokenizer") else "!"


def _save_file(sd: Tensors, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(sd, str(path), metadata={"format": "pt"})


def _tokenizer_subfolders(kind: str) -> list[str]:
    if kind == "sdxl-base":
        return ["tokenizer", "tokenizer_2"]
    return ["tokenizer_2"] if kind == "sdxl-refiner" else ["tokenizer"]


def _save_tokenizer(directory: str, *, pad: str, **_: Any) -> None:
    write_clip_tokenizer(directory, pad, vocab=True)


def _build_one(kind: str, out: Path) -> Tensors:
    """Build one model: diffusers folder, config-only folder, single files. Returns the original-layout dict."""
    import diffusers

    from_tok = {}
    subs = _tokenizer_subfolders(kind)
    for sub in subs:
        pad = _pad_for(kind, sub)
        tok = load_clip_tokenizer(write_clip_tokenizer(out / "tok" / pad.strip("<|>"), pad, vocab=True))
        # save_pretrained writes OUR transformers-4 files, whatever the installed transformers would write
        tok.save_pretrained = functools.partial(_save_tokenizer, pad=pad)
        from_tok[sub] = tok
    extra = None
    if kind.startswith("unclip"):
        components, extra, mean, std = _unclip_components(kind)
        if kind == "unclip-l":
            (out / "karlo").mkdir(exist_ok=True)
            torch.save((mean.clone(), std.clone()), out / "karlo" / "ViT-L-14_stats.th")
    else:
        components = _sdxl_components(kind)
    components.update(from_tok)
    cls = getattr(diffusers, PIPELINE_CLASS[kind])
    if kind == "sdxl-base":
        pipe = cls(**components, force_zeros_for_empty_prompt=True, add_watermarker=False)
    elif kind == "sdxl-refiner":
        pipe = cls(
            **components, requires_aesthetics_score=True, force_zeros_for_empty_prompt=False, add_watermarker=False
        )
    else:
        pipe = cls(**components)
    folder = out / "diffusers" / kind
    pipe.save_pretrained(folder, safe_serialization=True)
    # config-only folder: the same tree without weight files; tokenizer folders without vocab (shared clip-tokenizer/)
    config = out / "configs" / kind
    shutil.copytree(folder, config, ignore=shutil.ignore_patterns(*[f"*{s}" for s in WEIGHT_SUFFIXES]))
    for sub in subs:
        for name in ("vocab.json", "merges.txt"):
            (config / sub / name).unlink()
    sd = original_state_dict(kind, pipe, extra)
    single = out / "single"
    single.mkdir(exist_ok=True)
    _save_file(sd, single / f"{kind}.safetensors")
    torch.save({"state_dict": sd, "global_step": 0}, single / f"{kind}.ckpt", _use_new_zipfile_serialization=True)
    return sd


def _models_at(root: Path, state_dicts: Mapping[str, Tensors] | None = None) -> TinyModels:
    def model(kind: str) -> TinyModel:
        return TinyModel(
            kind=kind,
            folder=root / "diffusers" / kind,
            config=root / "configs" / kind,
            safetensors=root / "single" / f"{kind}.safetensors",
            ckpt=root / "single" / f"{kind}.ckpt",
            pipeline_class=PIPELINE_CLASS[kind],
            _state_dict=(state_dicts or {}).get(kind),
        )

    return TinyModels(
        root=root,
        config_root=root / "configs",
        karlo_stats=root / "karlo" / "ViT-L-14_stats.th",
        **{k.replace("-", "_"): model(k) for k in KINDS},
    )


def build_tiny_models(base: Path | str) -> TinyModels:
    """Build (or reuse) every tiny model under ``base / "tiny-<cache_key>"``.

    A finished build has ``BUILD.json``; builds go to a temporary sibling first and are renamed into place, so an
    interrupted or concurrent build is never reused half-done.
    """
    base = Path(base)
    root = base / f"tiny-{cache_key()}"
    if (root / "BUILD.json").is_file():
        return _models_at(root)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=base))
    t0 = time.perf_counter()
    try:
        write_clip_vocab(tmp / "configs" / "clip-tokenizer")  # the shared folder holds only the vocab
        with torch.random.fork_rng(devices=[]):  # module constructors draw from the global RNG: leave it unchanged
            state_dicts = {kind: _build_one(kind, tmp) for kind in KINDS}
        shutil.rmtree(tmp / "tok")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info = {"key": cache_key(), "build_seconds": round(time.perf_counter() - t0, 2)}
    (tmp / "BUILD.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    try:
        os.rename(tmp, root)
    except OSError:  # a concurrent build won the race: use it
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / "BUILD.json").is_file():
            raise
        return _models_at(root)
    return _models_at(root, state_dicts)
