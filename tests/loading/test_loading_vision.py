"""The unCLIP image-embedder mapping (embedder.model.visual.* -> CLIPVisionModelWithProjection) is verified numerically
against open_clip's own VisionTransformer holding the same weights."""

from __future__ import annotations

import pytest
import torch

from extension.errors import ModelLoadError
from extension.loading.clip_vision import VISUAL_PREFIX, build_image_encoder, convert_visual
from extension.loading.configs import read_json


def _open_clip_tower(cfg: dict) -> torch.nn.Module:
    from open_clip.transformer import QuickGELU, VisionTransformer

    return VisionTransformer(
        image_size=cfg["image_size"],
        patch_size=cfg["patch_size"],
        width=cfg["hidden_size"],
        layers=cfg["num_hidden_layers"],
        heads=cfg["num_attention_heads"],
        mlp_ratio=cfg["intermediate_size"] / cfg["hidden_size"],
        output_dim=cfg["projection_dim"],
        act_layer=QuickGELU if cfg["hidden_act"] == "quick_gelu" else torch.nn.GELU,
    )


@pytest.mark.parametrize("kind", ["unclip-h", "unclip-l"])
def test_visual_mapping_matches_open_clip(tiny, kind) -> None:
    sd = tiny[kind].state_dict
    folder = tiny.config_root / kind / "image_encoder"
    cfg = read_json(folder / "config.json")
    visual = {k[len(VISUAL_PREFIX) :]: v.clone() for k, v in sd.items() if k.startswith(VISUAL_PREFIX)}
    tower = _open_clip_tower(cfg)
    tower.load_state_dict(visual, strict=True)  # the checkpoint keys ARE open_clip's
    tower.eval()

    work = {k: v.clone() for k, v in sd.items()}
    ours = build_image_encoder(convert_visual(work), folder, dtype=torch.float32, device=torch.device("cpu"))
    assert not any(k.startswith(VISUAL_PREFIX) for k in work)  # converted entries were moved out

    pixels = torch.randn(3, 3, cfg["image_size"], cfg["image_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = tower(pixels)
        got = ours(pixel_values=pixels).image_embeds
    assert got.shape == expected.shape == (3, cfg["projection_dim"])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_unknown_visual_key_is_refused(tiny) -> None:
    sd = {k: v for k, v in tiny.unclip_h.state_dict.items() if k.startswith(VISUAL_PREFIX)}
    sd[VISUAL_PREFIX + "attnpool.weight"] = torch.zeros(1)
    with pytest.raises(ModelLoadError, match=r"unexpected image embedder weight embedder.model.visual.attnpool.weight"):
        convert_visual(sd)
    with pytest.raises(ModelLoadError, match=r"no image embedder weights"):
        convert_visual({})
