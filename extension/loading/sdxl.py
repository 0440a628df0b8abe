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

from ..device.precision import Precision, pick
from ._common import SingleFileParts, attach_info, free_memory, load_folder, load_hub, scheduler
from .checkpoint import Checkpoint
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
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    name = path.name
    ck = Checkpoint.open(path)
    kind = detect_kind(ck.shapes, config_root=root)
    check_role(kind, role, name)
    cfg = config_dir(kind, root)
    index = read_json(cfg / "model_index.json")
    sd = ck.take_state_dict()
    del ck
    parts: dict[str, object] = {}
    try:
        single = SingleFileParts(sd, cfg, name, prec)
        parts["unet"], parts["vae"] = single.unet(), single.vae()
        if role == "base":
            parts["text_encoder"] = single.text_encoder(
                CLIPTextModel, "CLIP-L text encoder", "conditioner.embedders.0.", "text_encoder"
            )
            big_g_prefix = "conditioner.embedders.1."
        else:
            big_g_prefix = "conditioner.embedders.0."
        parts["text_encoder_2"] = single.text_encoder(
            CLIPTextModelWithProjection, "OpenCLIP-bigG text encoder", big_g_prefix, "text_encoder_2"
        )
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
