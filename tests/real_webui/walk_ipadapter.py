#!/usr/bin/env python3
"""The IP-Adapter backend in a REAL WebUI: two walk steps, and the files the setup places for them.

usage: python walk_ipadapter.py place WEBUI_DIR [CONFIG_ROOT]   (WEBUI_DIR holds models/; the setup's python)

Steps (``steps(walk, image)``, run by ``walk.py`` after its own generation steps, on the same page):

- ``ip-adapter``: in the Reimagine tab, the "random-sd15 + ip-adapter_sd15" model, 2 steps, 64x64, batch count 1,
  Image strength 0.6, Generate: one image, an infotext with ``Backend: IP-Adapter``, ``IP-Adapter: ip-adapter_sd15``
  and ``Image strength: 0.6``.
- ``ip-adapter-keep-composition``: the same with Keep composition 0.5: ``Keep composition: 0.5`` in the infotext. The
  tab is put back to the unCLIP model and Keep composition 0 afterwards.

What the WebUI needs (:func:`place`): an adapter fitting the random full-size SD 1.5 base, in the released
``ip-adapter_sd15`` key layout at full size (``image_proj.proj`` 1024 -> 4 x 768 tokens, ``ip_adapter.{1,3,...,31}
.to_{k,v}_ip`` for the UNet's 16 cross-attentions), random fp16 weights, in ``models/ipadapter/``; an image encoder in
``models/clip_vision/`` that loads as OpenCLIP ViT-H's stand-in: a ``CLIPVisionModelWithProjection`` folder with
projection dim 1024 (what the adapter takes) and the smallest tower, at the image size of the encoder preprocessing the
extension reads (``CONFIG_ROOT/unclip-h/feature_extractor``: 32 with the tiny config root, else 224); and, when the
WebUI runs with a ``REIMAGINE_CONFIG_ROOT`` that lacks it, the bundled ``sd1`` config copied there (the base is loaded
with it). Only the standard library (and playwright, through ``walk``) is used by the steps; ``place`` needs torch,
transformers, diffusers and safetensors.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the project checkout
ADAPTER = "ip-adapter_sd15"
ENCODER_FOLDER = "CLIP-ViT-H-14-stand-in"  # an HF folder in models/clip_vision
SEED = 1234
IMAGE_STRENGTH = 0.6
KEEP = 0.5
WAIT_S = 900  # a full-size SD 1.5 loaded next to the WebUI's own, on a loaded CPU


# ---------------------------------------------------------------------------------------------------------------------
# The files


def place(webui_dir: Path, config_root: Path | None = None) -> list[Path]:
    """Write the adapter and the encoder under ``webui_dir/models`` (and ``sd1`` into ``config_root``); the paths."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    sys.path.insert(0, str(ROOT))
    from tests.tiny_ipadapter import adapter_layers, image_projection

    written = []
    bundled = ROOT / "extension" / "configs"
    if config_root is not None and not (Path(config_root) / "sd1" / "model_index.json").is_file():
        shutil.copytree(bundled / "sd1", Path(config_root) / "sd1", dirs_exist_ok=True)
        written.append(Path(config_root) / "sd1")
    # the adapter: the shapes of SD 1.5's UNet (built on the meta device: no memory), random weights
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads((bundled / "sd1" / "unet" / "config.json").read_text()))
    cross = int(unet.config.cross_attention_dim)
    weights = {**image_projection("plain", cross, 1024, 15), **adapter_layers(unet, 16)}
    adapter = Path(webui_dir) / "models" / "ipadapter" / f"{ADAPTER}.safetensors"
    adapter.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.float16).contiguous() for k, v in weights.items()}, str(adapter))
    written.append(adapter)
    # the encoder: projection dim 1024, the smallest tower, at the preprocessing's image size
    processor = (Path(config_root) if config_root else bundled) / "unclip-h" / "feature_extractor"
    size = int(json.loads((processor / "preprocessor_config.json").read_text())["crop_size"]["height"])
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=size,
        patch_size=size // 4, projection_dim=1024, hidden_act="gelu",
    )  # fmt: skip
    torch.manual_seed(17)
    encoder = Path(webui_dir) / "models" / "clip_vision" / ENCODER_FOLDER
    CLIPVisionModelWithProjection(config).save_pretrained(str(encoder), safe_serialization=True)
    written.append(encoder)
    return written


# ---------------------------------------------------------------------------------------------------------------------
# The steps


def ip_model(walk: Any) -> str:
    """The "checkpoint + ip-adapter_sd15" choice the extension lists (``GET /reimagine/v1/models``)."""
    import urllib.request

    with urllib.request.urlopen(f"{walk.url}/reimagine/v1/models", timeout=60) as answer:  # noqa: S310 - local
        models = json.loads(answer.read())
    if not isinstance(models, list):
        raise AssertionError(f"GET /reimagine/v1/models: {str(models)[:300]}")
    names = [m.get("name", "") for m in models if str(m.get("kind", "")).startswith("ip-adapter")]
    walk.note(f"IP-Adapter choices: {names}")
    name = next((n for n in names if n.endswith(f"+ {ADAPTER}")), "")
    if not name:
        raise AssertionError(f"no '<checkpoint> + {ADAPTER}' model listed (kinds: {[m.get('kind') for m in models]})")
    return name


def _generate(walk: Any, image: Path, keep: float) -> dict[str, str]:
    """One IP-Adapter run from the tab; the infotext's pairs."""
    p = walk.page
    walk.top_tab("Reimagine")
    if p.locator("#reimagine_image_1 img").count() == 0:
        p.set_input_files("#reimagine_image_1 input[type=file]", str(image))
        p.wait_for_selector("#reimagine_image_1 img", timeout=60_000)
    walk.choose("reimagine_model", ip_model(walk))
    for elem_id, value in (("steps", 2), ("width", 64), ("height", 64), ("batch_count", 1), ("batch_size", 1)):
        walk.number(f"reimagine_{elem_id}", value)
    walk.number("reimagine_seed", SEED)
    walk.number("reimagine_keep_composition", keep or 0)  # the box reads "0", not "0.0"
    walk.open_accordion("reimagine_ip_adapter_accordion")
    walk.number("reimagine_image_strength", IMAGE_STRENGTH)
    before = p.locator("#generation_info_reimagine textarea").first.input_value()
    p.click("#reimagine_generate")
    walk.wait_info_change("reimagine", before, timeout_s=WAIT_S)
    walk.wait_idle("reimagine", timeout_s=WAIT_S)
    log = p.inner_text("#html_log_reimagine") if p.locator("#html_log_reimagine").count() else ""
    info = walk.generation_info("reimagine")
    texts = info.get("infotexts", [])
    walk.note(f"gallery {walk.gallery_count('reimagine')} image(s); html log {log[:300]!r}")
    walk.note(f"infotext: {texts[:1]!r}")
    if "Error" in log or not texts:
        raise AssertionError(f"no IP-Adapter output: {log[:500]!r}")
    pairs = dict(part.split(": ", 1) for part in texts[0].splitlines()[-1].split(", ") if ": " in part)
    want = {"Backend": "IP-Adapter", "IP-Adapter": ADAPTER, "Image strength": str(IMAGE_STRENGTH)}
    wrong = {key: pairs.get(key) for key, value in want.items() if pairs.get(key) != value}
    if wrong:
        raise AssertionError(f"the infotext says {wrong}, expected {want}")
    return pairs


def step_variation(walk: Any, image: Path) -> None:
    pairs = _generate(walk, image, 0.0)
    if "Keep composition" in pairs:
        raise AssertionError(f"Keep composition {pairs['Keep composition']} in a run from pure noise")


def step_keep_composition(walk: Any, image: Path) -> None:
    try:
        pairs = _generate(walk, image, KEEP)
        if pairs.get("Keep composition") != str(KEEP):
            raise AssertionError(f"Keep composition reads {pairs.get('Keep composition')!r}, expected {KEEP}")
    finally:  # the tab as the other steps expect it
        walk.number("reimagine_keep_composition", 0)
        if walk.unclip:
            walk.choose("reimagine_model", walk.unclip)


def steps(walk: Any, image: Path) -> list[tuple[str, str, Callable[[], None]]]:
    """``(key, title, fn)`` for ``walk.step``."""
    return [
        ("ip-adapter", f"checkpoint + {ADAPTER}: one IP-Adapter variation", lambda: step_variation(walk, image)),
        (
            "ip-adapter-keep-composition",
            f"checkpoint + {ADAPTER} with Keep composition {KEEP}",
            lambda: step_keep_composition(walk, image),
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "place":
        sys.exit(__doc__.split("\n\n")[1])
    for path in place(Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) == 4 else None):
        print(path)
