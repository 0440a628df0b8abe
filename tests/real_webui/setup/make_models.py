#!/usr/bin/env python3
"""Models and offline files for a real WebUI on a CPU machine, built from this project's own test builders.

usage: python make_models.py sd15 OUT.safetensors    random-weight SD 1.5 base checkpoint, original layout, fp16
       python make_models.py tiny OUT_BASE           the tiny unCLIP / SDXL test models (prints their root last)
       python make_models.py clip-l-cache HF_HOME    offline hub entry for openai/clip-vit-large-patch14 (no weights)

Needs torch, transformers, diffusers, safetensors and open_clip (the BPE vocabulary); the WebUI's venv has all but
sometimes diffusers (see setup/common.sh). Weights come from ``tests/tiny_models.py`` (``randomize_`` and the
diffusers -> original key converters), so a checkpoint here has exactly the keys of the real files.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the project checkout
sys.path.insert(0, str(ROOT))

# SD 1.5's published sizes (UNet, VAE, CLIP ViT-L/14 text tower)
SD15_UNET = {
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "layers_per_block": 2,
    "sample_size": 64,
}
SD15_VAE = {
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "latent_channels": 4,
    "layers_per_block": 2,
    "sample_size": 512,
}
CLIP_L_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "vocab_size": 49408,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
CLIP_L_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}


def sd15(out: Path) -> None:
    """A random SD 1.5 in the single-file layout the WebUIs load (ldm keys + HF CLIP text keys), fp16."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.tiny_models import (
        hf_clip_text_to_sgm,
        ldm_schedule_buffers,
        randomize_,
        unet_to_original,
        vae_to_original,
    )

    t0 = time.time()
    sd: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        unet = randomize_(UNet2DConditionModel(**SD15_UNET), 15001)
        sd.update(unet_to_original(unet.state_dict(), unet.config))
        del unet
        vae = randomize_(AutoencoderKL(**SD15_VAE), 15002)
        sd.update(vae_to_original(vae.state_dict(), vae.config))
        del vae
        text = randomize_(CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT)), 15003)
        sd.update(hf_clip_text_to_sgm(text, "cond_stage_model.transformer."))
        del text
        sd.update(ldm_schedule_buffers())
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sorted(sd.items())}
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    save_file(sd, str(part), metadata={"format": "pt"})
    part.rename(out)
    print(f"{out}: {len(sd)} tensors, {out.stat().st_size / 2**30:.2f} GiB in {time.time() - t0:.0f} s")


def tiny(base: Path) -> None:
    from tests.tiny_models import build_tiny_models

    models = build_tiny_models(base)
    for m in models.models:
        print(m.kind, m.safetensors)
    print(models.root)


def clip_l_cache(home: Path) -> None:
    """Hub cache entry the WebUIs' SD 1.x/SDXL text encoders read offline: tokenizer files + config, no weights."""
    from tests.tiny_models import write_clip_tokenizer

    repo = home / "hub" / "models--openai--clip-vit-large-patch14"
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    write_clip_tokenizer(snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    config = {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": 768,
        "logit_scale_init_value": 2.6592,
        "text_config": {"model_type": "clip_text_model", **CLIP_L_TEXT},
        "vision_config": {"model_type": "clip_vision_model", **CLIP_L_VISION},
    }
    (snapshot / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    import os

    os.environ.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    import open_clip
    from transformers import CLIPTokenizer

    text = "a photograph of an astronaut riding a horse"
    ids = CLIPTokenizer.from_pretrained(str(snapshot))(text)["input_ids"]
    expected = [t for t in open_clip.tokenize([text])[0].tolist() if t]
    if ids != expected:
        raise SystemExit(f"tokenizer mismatch: {ids} != {expected}")
    print(f"{snapshot}: CLIP-L tokenizer agrees with open_clip")


COMMANDS = {"sd15": sd15, "tiny": tiny, "clip-l-cache": clip_l_cache}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](Path(sys.argv[2]).resolve())
