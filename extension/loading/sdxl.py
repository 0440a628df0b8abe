"""SDXL base / refiner -> diffusers pipelines, from a single file, a folder or a hub id.

Single files are assembled per component from one read of the checkpoint (diffusers' pipeline-level
``from_single_file`` in 0.31 takes only a path, re-reads the file with plain ``torch.load`` — which the WebUI patches —
and keeps the whole dict alive until the end). UNet/VAE use the model-level ``from_single_file(<dict>, config=...)``,
the text encoders ``create_diffusers_clip_model_from_ldm``; tokenizers are built from the config folder, so nothing
ever goes to the hub.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..precision import Precision, pick
from ._common import attach_info, build, finish, free_memory, load_folder, load_hub, scheduler
from .checkpoint import Checkpoint, take_prefix
from .configs import build_tokenizer, config_dir, read_json
from .detect import check_role, detect_kind, normalize_role
from .source import Source, resolve_source

if TYPE_CHECKING:
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline


def _pipeline_class(role: str) -> type:
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    return StableDiffusionXLImg2ImgPipeline if role == "refiner" else StableDiffusionXLPipeline


def load_sdxl(
    source: str | os.PathLike[str],
    *,
    role: str = "refiner",
    config_root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> StableDiffusionXLImg2ImgPipeline | StableDiffusionXLPipeline:
    """Load an SDXL refiner (``role="refiner"`` -> ``StableDiffusionXLImg2ImgPipeline``) or base (``role="base"`` ->
    ``StableDiffusionXLPipeline``) with ``pipe.reimagine_info`` set.

    ``source``: a .safetensors/.ckpt in the original layout, a diffusers folder, or a hub id (online, or cached).
    Raises ModelLoadError on missing/bad/unsafe files and when the model is not the one the role needs.
    """
    role = normalize_role(role)
    if role == "unclip":
        raise ValueError("load_sdxl: role must be 'refiner' or 'base'")
    src = resolve_source(source)
    prec = pick(device, dtype)
    root = Path(config_root) if config_root is not None else None
    cls = _pipeline_class(role)
    if src.type == "folder":
        return load_folder(cls, src, role, prec, root)
    if src.type == "hub":
        return load_hub(cls, src, role, prec)
    return _from_file(src.path, role, prec, root, src, cls)


def _from_file(
    path: Path, role: str, prec: Precision, root: Path | None, src: Source, cls: type
) -> StableDiffusionXLImg2ImgPipeline | StableDiffusionXLPipeline:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    name = path.name
    ck = Checkpoint.open(path)
    kind = detect_kind(ck.shapes, config_root=root)
    check_role(kind, role, name)
    cfg = config_dir(kind, root)
    index = read_json(cfg / "model_index.json")
    sd = ck.take_state_dict()
    del ck
    common = {"config": str(cfg), "local_files_only": True, "torch_dtype": prec.dtype}
    parts: dict[str, object] = {}
    try:
        unet = build(
            "UNet",
            name,
            lambda: UNet2DConditionModel.from_single_file(
                take_prefix(sd, "model.diffusion_model."), subfolder="unet", **common
            ),
        )
        parts["unet"] = finish(unet, "UNet", name, prec)
        del unet
        vae = build(
            "VAE",
            name,
            lambda: AutoencoderKL.from_single_file(take_prefix(sd, "first_stage_model."), subfolder="vae", **common),
        )
        parts["vae"] = finish(vae, "VAE", name, prec)
        del vae
        if role == "base":
            te = build(
                "CLIP-L text encoder",
                name,
                lambda: create_diffusers_clip_model_from_ldm(
                    CLIPTextModel, take_prefix(sd, "conditioner.embedders.0."), subfolder="text_encoder", **common
                ),
            )
            parts["text_encoder"] = finish(te, "CLIP-L text encoder", name, prec)
            big_g_prefix = "conditioner.embedders.1."
        else:
            big_g_prefix = "conditioner.embedders.0."
        te2 = build(
            "OpenCLIP-bigG text encoder",
            name,
            lambda: create_diffusers_clip_model_from_ldm(
                CLIPTextModelWithProjection, take_prefix(sd, big_g_prefix), subfolder="text_encoder_2", **common
            ),
        )
        parts["text_encoder_2"] = finish(te2, "OpenCLIP-bigG text encoder", name, prec)
        del te2
    finally:
        sd.clear()  # whatever is left (EMA, unused buffers) is not needed
        free_memory(prec.device)

    parts["tokenizer_2"] = build_tokenizer(cfg / "tokenizer_2", root)
    parts["scheduler"] = scheduler(cfg / "scheduler")
    kwargs: dict[str, object] = {
        "force_zeros_for_empty_prompt": bool(index.get("force_zeros_for_empty_prompt", role == "base")),
        "add_watermarker": False,
    }
    if role == "base":
        parts["tokenizer"] = build_tokenizer(cfg / "tokenizer", root)
    else:
        parts["text_encoder"] = None
        parts["tokenizer"] = None
        kwargs["requires_aesthetics_score"] = bool(index.get("requires_aesthetics_score", True))
    pipe = cls(**parts, **kwargs)
    return attach_info(pipe, src, kind)
