"""Tiny random-weight files for the IP-Adapter backend (test-only code, never imported by the extension).

Built on top of the session's tiny models (``tests/tiny_models.py``), cached next to them:

* ``single/sd1.safetensors``: a tiny SD 1.5 checkpoint with the real key names — ``model.diffusion_model.*`` (UNet with
  conv ``proj_in``/``proj_out`` as SD 1.x, cross-attention width = the text width 32), ``first_stage_model.*`` and
  ``cond_stage_model.transformer.text_model.*`` (HF CLIP-L layout, as in ``v1-5-pruned-emaonly.safetensors``);
  ``configs/sd1`` is its config-only folder (the tiny twin of ``extension/configs/sd1``);
* ``ipadapter/``: adapters in the RELEASED h94/IP-Adapter layout — ``image_proj.*`` (plain: ``proj.weight
  [4·cross, D]``, ``proj.bias``, ``norm.*``; plus: the Resampler's ``latents [1, 16, dim]``, ``proj_in``,
  ``proj_out``, ``norm_out``, ``layers.N.0.{norm1,norm2,to_q,to_kv,to_out}``, ``layers.N.1.{0,1,3}``) and
  ``ip_adapter.K.to_{k,v}_ip.weight`` where ``K`` is the cross-attention processor's index among ALL of the UNet's
  attention processors (``torch.nn.ModuleList(unet.attn_processors.values())`` in the IP-Adapter training code: 1, 3,
  5, …). ``.safetensors`` files are flat, ``.bin`` files the nested pickle the repository ships;
* ``clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors``: the tiny unCLIP-H's image encoder with the HF
  ``vision_model.*`` keys (what ComfyUI/Forge users keep in ``models/clip_vision``); its HF folder is the tiny
  unCLIP-H's ``diffusers/unclip-h/image_encoder``. D = its projection (32), H = its hidden width (32).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch

from tests.tiny_models import (
    TinyModels,
    cache_key,
    hf_clip_text_to_sgm,
    randomize_,
    unet_to_original,
    vae_to_original,
    write_clip_tokenizer,
)

ADAPTERS = {  # file -> (base kind, variant)
    "ip-adapter_sd15.safetensors": ("sd1", "plain"),
    "ip-adapter_sd15_light.bin": ("sd1", "plain"),
    "ip-adapter-plus_sd15.safetensors": ("sd1", "plus"),
    "ip-adapter_sdxl_vit-h.safetensors": ("sdxl-base", "plain"),
    "ip-adapter-plus_sdxl_vit-h.bin": ("sdxl-base", "plus"),
}
ENCODER_FILE = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
PLUS_QUERIES, PLUS_DEPTH, PLUS_HEADS = 16, 4, 1  # as released: depth 4; diffusers reads heads = to_q rows // 64


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(("ipa", *parts)).encode()) & 0x7FFFFFFF


@dataclasses.dataclass
class TinyIPAdapter:
    """The fixture ``tiny_ipa``."""

    root: Path
    config_root: Path  # the tiny models' config root + sd1
    sd1: Path  # single file
    sdxl: Path  # the tiny SDXL base single file
    unclip_h: Path  # the tiny unCLIP-H single file (its embedder = the encoder)
    encoder_file: Path  # models/clip_vision-style HF single file
    encoder_folder: Path  # HF CLIPVisionModelWithProjection folder
    adapters: Path  # folder of the five adapters

    def adapter(self, name: str) -> Path:
        return self.adapters / name


def _sd1_pipeline_parts() -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32, layer_norm_eps=1e-5,
            bos_token_id=0, eos_token_id=2, pad_token_id=1,
        )
    )  # fmt: skip
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        attention_head_dim=(2, 4), norm_num_groups=32, cross_attention_dim=32,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
        sample_size=64, scaling_factor=0.18215,
    )  # fmt: skip
    return {
        "text_encoder": randomize_(text, _seed("sd1", "text")),
        "unet": randomize_(unet, _seed("sd1", "unet")),
        "vae": randomize_(vae, _seed("sd1", "vae")),
    }


def _write_sd1(out: Path) -> None:
    """The tiny SD 1.5 single file and its config-only folder."""
    parts = _sd1_pipeline_parts()
    unet, vae, text = parts["unet"], parts["vae"], parts["text_encoder"]
    sd = {}
    sd.update(unet_to_original({k: v for k, v in unet.state_dict().items()}, unet.config))
    sd.update(vae_to_original(vae.state_dict(), vae.config))
    sd.update(hf_clip_text_to_sgm(text, "cond_stage_model.transformer."))
    from safetensors.torch import save_file

    (out / "single").mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in sd.items()}, str(out / "single" / "sd1.safetensors"))
    cfg = out / "configs" / "sd1"
    unet.save_config(cfg / "unet")
    vae.save_config(cfg / "vae")
    text.config.save_pretrained(cfg / "text_encoder")
    write_clip_tokenizer(cfg / "tokenizer", "<|endoftext|>", vocab=False)
    (cfg / "scheduler").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "extension/configs/sd1/scheduler/scheduler_config.json", cfg / "scheduler")
    shutil.copy(Path(__file__).parents[1] / "extension/configs/sd1/model_index.json", cfg)


def adapter_layers(unet: Any, seed: int) -> dict[str, torch.Tensor]:
    """``ip_adapter.K.to_{k,v}_ip.weight`` for every cross-attention processor, numbered as in the released files."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for index, name in enumerate(unet.attn_processors):
        if not name.endswith("attn2.processor"):
            continue
        attn = unet.get_submodule(name.removesuffix(".processor"))
        hidden, cross = attn.to_k.weight.shape
        for which in ("to_k_ip", "to_v_ip"):
            out[f"ip_adapter.{index}.{which}.weight"] = torch.randn(hidden, cross, generator=gen) / math.sqrt(cross)
    return out


def image_projection(variant: str, cross: int, image_dim: int, seed: int) -> dict[str, torch.Tensor]:
    """``image_proj.*`` of a plain ImageProjection (4 tokens) or a plus Resampler."""
    gen = torch.Generator().manual_seed(seed)

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) / math.sqrt(shape[-1])

    def norm(prefix: str, dim: int) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.weight": 1 + 0.05 * torch.randn(dim, generator=gen),
            f"{prefix}.bias": 0.02 * torch.randn(dim, generator=gen),
        }

    if variant == "plain":
        proj = {"proj.weight": w(4 * cross, image_dim), "proj.bias": 0.02 * torch.randn(4 * cross, generator=gen)}
        proj.update(norm("norm", cross))
    else:
        dim, inner = 32, 64 * PLUS_HEADS
        proj = {
            "latents": torch.randn(1, PLUS_QUERIES, dim, generator=gen) / math.sqrt(dim),
            "proj_in.weight": w(dim, image_dim),
            "proj_in.bias": 0.02 * torch.randn(dim, generator=gen),
            "proj_out.weight": w(cross, dim),
            "proj_out.bias": 0.02 * torch.randn(cross, generator=gen),
        }
        proj.update(norm("norm_out", cross))
        for i in range(PLUS_DEPTH):
            proj.update(norm(f"layers.{i}.0.norm1", dim))
            proj.update(norm(f"layers.{i}.0.norm2", dim))
            proj[f"layers.{i}.0.to_q.weight"] = w(inner, dim)
            proj[f"layers.{i}.0.to_kv.weight"] = w(2 * inner, dim)
            proj[f"layers.{i}.0.to_out.weight"] = w(dim, inner)
            proj.update(norm(f"layers.{i}.1.0", dim))
            proj[f"layers.{i}.1.1.weight"] = w(4 * dim, dim)
            proj[f"layers.{i}.1.3.weight"] = w(dim, 4 * dim)
    return {f"image_proj.{k}": v for k, v in proj.items()}


def _write_adapters(out: Path, unets: dict[str, Any], image_dim: int, hidden_dim: int) -> None:
    from safetensors.torch import save_file

    folder = out / "ipadapter"
    folder.mkdir(parents=True)
    for name, (kind, variant) in ADAPTERS.items():
        unet = unets[kind]
        flat = image_projection(
            variant, int(unet.config.cross_attention_dim), hidden_dim if variant == "plus" else image_dim, _seed(name)
        )
        flat.update(adapter_layers(unet, _seed(name, "layers")))
        if name.endswith(".safetensors"):
            save_file({k: v.contiguous() for k, v in flat.items()}, str(folder / name))
        else:
            nested: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
            for key, value in flat.items():
                group, _, rest = key.partition(".")
                nested[group][rest] = value
            torch.save(nested, folder / name)


def _key(tiny: TinyModels) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    return f"ipa-{digest}-{cache_key()}"


def build_tiny_ipadapter(tiny: TinyModels) -> TinyIPAdapter:
    """Build (or reuse) the files next to the tiny models (``<tiny root>/../ipa-<key>``), atomically."""
    from diffusers import UNet2DConditionModel

    root = tiny.root.parent / _key(tiny)
    if not (root / "BUILD.json").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=".ipa-build-", dir=tiny.root.parent))
        try:
            shutil.copytree(tiny.config_root, tmp / "configs")
            with torch.random.fork_rng(devices=[]):
                _write_sd1(tmp)
                sd1_unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(tmp / "configs/sd1/unet"))
                xl_unet = UNet2DConditionModel.from_config(
                    UNet2DConditionModel.load_config(tiny.config_root / "sdxl-base" / "unet")
                )
                enc_cfg = json.loads((tiny.config_root / "unclip-h/image_encoder/config.json").read_text())
                _write_adapters(
                    tmp, {"sd1": sd1_unet, "sdxl-base": xl_unet}, enc_cfg["projection_dim"], enc_cfg["hidden_size"]
                )
            (tmp / "clip_vision").mkdir()
            shutil.copy(
                tiny.unclip_h.folder / "image_encoder" / "model.safetensors", tmp / "clip_vision" / ENCODER_FILE
            )
            (tmp / "BUILD.json").write_text(json.dumps({"key": _key(tiny)}) + "\n", encoding="utf-8")
            try:
                os.rename(tmp, root)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return TinyIPAdapter(
        root=root,
        config_root=root / "configs",
        sd1=root / "single" / "sd1.safetensors",
        sdxl=tiny.sdxl_base.safetensors,
        unclip_h=tiny.unclip_h.safetensors,
        encoder_file=root / "clip_vision" / ENCODER_FILE,
        encoder_folder=tiny.unclip_h.folder / "image_encoder",
        adapters=root / "ipadapter",
    )
