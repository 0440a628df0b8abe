"""The files ``walk_ipadapter.py place`` puts into a real WebUI for its IP-Adapter steps: the released
``ip-adapter_sd15`` key layout at SD 1.5's full size (h94/IP-Adapter: ``image_proj.proj`` 1024 -> 4 x 768,
``ip_adapter.{1,3,...,31}.to_{k,v}_ip`` for the 16 cross-attentions), and an encoder folder that transformers itself
loads with projection dim 1024 at the preprocessing's image size."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
import walk_ipadapter  # noqa: E402

# SD 1.5's cross-attention widths, in the released files' processor order (down, up, mid)
SD15_WIDTHS = [320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320, 1280]


def test_place_writes_the_released_layout_at_full_size(tiny, tmp_path: Path) -> None:
    from transformers import CLIPVisionModelWithProjection

    config_root = tmp_path / "configs"
    shutil.copytree(tiny.config_root, config_root)
    written = walk_ipadapter.place(tmp_path / "webui", config_root)
    adapter = tmp_path / "webui" / "models" / "ipadapter" / "ip-adapter_sd15.safetensors"
    assert adapter in written and (config_root / "sd1" / "model_index.json").is_file()
    with safe_open(str(adapter), framework="pt") as f:
        shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    expected = {"image_proj.proj.weight": (3072, 1024), "image_proj.proj.bias": (3072,)}
    expected.update({"image_proj.norm.weight": (768,), "image_proj.norm.bias": (768,)})
    for index, width in zip(range(1, 32, 2), SD15_WIDTHS):
        for which in ("to_k_ip", "to_v_ip"):
            expected[f"ip_adapter.{index}.{which}.weight"] = (width, 768)
    assert shapes == expected
    folder = tmp_path / "webui" / "models" / "clip_vision" / walk_ipadapter.ENCODER_FOLDER
    encoder = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True)
    crop = json.loads((config_root / "unclip-h" / "feature_extractor" / "preprocessor_config.json").read_text())
    assert encoder.config.projection_dim == 1024
    assert encoder.config.image_size == crop["crop_size"]["height"]
