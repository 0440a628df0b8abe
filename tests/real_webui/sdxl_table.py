"""Write ``sdxl_base_keys.json``: key -> [dtype, shape] of a FULL-SIZE SDXL base in the released single-file layout.

One-off generator (test-only): builds diffusers' SDXL UNet/VAE/text encoders on the ``meta`` device from the configs
in ``extension/configs/sdxl-base`` (no download, no weights) and renames them with the converters of
``tests/tiny/keys.py`` -- the same ones the tiny SDXL files use. ``make_sdxl_base.py`` reads only the JSON.

    python tests/real_webui/sdxl_table.py   # rewrites tests/real_webui/sdxl_base_keys.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
TABLE = Path(__file__).with_name("sdxl_base_keys.json")


def build_table() -> dict[str, list]:
    """The key table, sorted by key."""
    sys.path.insert(0, str(ROOT))
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from tests.tiny import keys as tm

    cfg = ROOT / "extension" / "configs" / "sdxl-base"
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
        te1 = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(cfg / "text_encoder_2"))
    sd = {}
    sd.update(tm.unet_to_original(dict(unet.state_dict()), unet.config))
    sd.update(tm.vae_to_original(dict(vae.state_dict()), vae.config))
    emb = "conditioner.embedders.1.model."
    sd.update(tm.clip_text_to_open_clip(te2, emb))
    sd[emb + "logit_scale"] = torch.tensor(math.log(100.0))
    sd.update(tm.hf_clip_text_to_sgm(te1))
    table = {}
    for key in sorted(sd):
        value = sd[key]
        dtype = "F16" if value.is_floating_point() else "I64"
        table[key] = [dtype, list(value.shape)]
    return table


def main() -> None:
    table = build_table()
    TABLE.write_text(json.dumps(table, separators=(",", ":"), sort_keys=True) + "\n")
    n = sum(math.prod(shape) for _, shape in table.values())
    print(f"{TABLE}: {len(table)} keys, {n:,} values")


if __name__ == "__main__":
    main()
