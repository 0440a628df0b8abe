"""SD 1.x single-file checkpoints (the user's own finetunes) -> diffusers ``StableDiffusionPipeline``, offline.

Assembled per component from one read of the checkpoint, as ``loading/sdxl.py`` does: UNet and VAE with the
model-level ``from_single_file(<dict>, config=...)``, the CLIP-L text encoder (``cond_stage_model.transformer.*``) with
``create_diffusers_clip_model_from_ldm``, tokenizer and scheduler from the bundled ``configs/sd1`` folder. No safety
checker (the WebUI has none either). Used as the base of the IP-Adapter backend (``loading/ip_adapter.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..device.precision import pick
from ..errors import ModelLoadError
from ._common import SingleFileParts, attach_info, free_memory, scheduler
from .checkpoint import Checkpoint
from .configs import build_tokenizer, config_dir
from .detect import describe, detect_kind
from .source import resolve_source

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

SD1_KINDS = ("sd1",)


def load_sd1(
    source: str | os.PathLike[str],
    *,
    config_root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> StableDiffusionPipeline:
    """Load an SD 1.x single file (.safetensors / weights-only .ckpt) as a ``StableDiffusionPipeline`` with
    ``pipe.reimagine_info`` set. Raises ModelLoadError naming the file when it is missing, unsafe or not SD 1.x."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    src = resolve_source(source)
    if src.type != "file":
        raise ModelLoadError(f"{src.name}: the IP-Adapter backend loads SD 1.5 bases from single files (.safetensors)")
    prec = pick(device, dtype)
    root = Path(config_root) if config_root is not None else None
    name = src.path.name
    ck = Checkpoint.open(src.path)
    kind = detect_kind(ck.shapes, config_root=root)
    if kind not in SD1_KINDS:
        raise ModelLoadError(f"{name} is {describe(kind)}; this needs an SD 1.5 checkpoint (or a finetune of it)")
    cfg = config_dir(kind, root)
    sd = ck.take_state_dict()
    del ck
    try:
        single = SingleFileParts(sd, cfg, name, prec)
        unet, vae = single.unet(), single.vae()
        text_encoder = single.text_encoder(CLIPTextModel, "CLIP-L text encoder", "cond_stage_model.", "text_encoder")
    finally:
        sd.clear()
        free_memory(prec.device)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_tokenizer(cfg / "tokenizer", root),
        unet=unet,
        scheduler=scheduler(cfg / "scheduler"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return attach_info(pipe, src, kind)
