"""Tell model families apart by key names and shapes (no weights needed), and reject the wrong model for a role."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ..errors import ModelLoadError

# kind -> how to call it in a message ("<file> is <this>")
KIND_DESCRIPTIONS: dict[str, str] = {
    "unclip-h": "an SD 2.1 unCLIP-H checkpoint (image variations, OpenCLIP ViT-H image embedder)",
    "unclip-l": "an SD 2.1 unCLIP-L checkpoint (image variations, OpenAI CLIP ViT-L image embedder)",
    "sdxl-base": "an SDXL base checkpoint",
    "sdxl-refiner": "an SDXL refiner checkpoint",
    "sdxl-inpaint": "an SDXL inpainting checkpoint",
    "sd1": "an SD 1.x checkpoint",
    "sd1-inpaint": "an SD 1.x inpainting checkpoint",
    "sd2": "an SD 2.x checkpoint",
    "sd2-depth": "an SD 2.0 depth-to-image checkpoint",
    "sd2-inpaint": "an SD 2.x inpainting checkpoint",
    "sd2-upscale": "an SD 2.x x4 upscaler checkpoint",
    "sd3": "an SD 3 checkpoint",
    "flux": "a FLUX checkpoint",
    "unknown": "not a Stable Diffusion checkpoint that we recognise",
}
KINDS = tuple(KIND_DESCRIPTIONS)

# role -> (accepted kinds, what the role is for, what it needs)
ROLES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "unclip": (
        ("unclip-h", "unclip-l"),
        "Reimagine (unCLIP image variations)",
        "an SD 2.1 unCLIP checkpoint (e.g. sd21-unclip-h.ckpt or sd21-unclip-l.ckpt)",
    ),
    "refiner": (
        ("sdxl-refiner",),
        "the refiner post-pass",
        "an SDXL refiner (e.g. sd_xl_refiner_1.0.safetensors)",
    ),
    "base": (
        ("sdxl-base",),
        "the SDXL base role",
        "an SDXL base checkpoint (e.g. sd_xl_base_1.0.safetensors)",
    ),
    "ip-adapter": (
        ("sd1", "sdxl-base"),
        "Reimagine with an IP-Adapter",
        "an SD 1.5 or SDXL base checkpoint (or a finetune of one)",
    ),
}
ROLE_ALIASES = {"sdxl-refiner": "refiner", "sdxl-base": "base", "unclip-h": "unclip", "unclip-l": "unclip"}

# the real models' image-embedding widths (A1111 sd_models_config.py: embedder.model.ln_final.weight)
_UNCLIP_WIDTH = {1024: "unclip-h", 768: "unclip-l"}
_UNET = "model.diffusion_model."


def normalize_role(role: str) -> str:
    """Map aliases ("sdxl-refiner") to the canonical role names "unclip", "refiner", "base"."""
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; expected one of {sorted(ROLES)}")
    return role


def describe(kind: str) -> str:
    """Human description of a kind ("an SDXL base checkpoint")."""
    return KIND_DESCRIPTIONS.get(kind, KIND_DESCRIPTIONS["unknown"])


def _shapes(sd: Mapping[str, object] | Iterable[str]) -> dict[str, tuple[int, ...] | None]:
    if isinstance(sd, Mapping):
        out: dict[str, tuple[int, ...] | None] = {}
        for k, v in sd.items():
            if isinstance(v, torch.Tensor):
                out[k] = tuple(v.shape)
            elif isinstance(v, (tuple, list, torch.Size)):
                out[k] = tuple(int(x) for x in v)
            else:
                out[k] = None
        return out
    return dict.fromkeys(sd)


def _embedding_dims(config_root: Path | None) -> dict[int, str]:
    """Image-embedding width -> unCLIP variant, from a config root's image_normalizer configs (tiny test configs)."""
    out: dict[int, str] = {}
    if config_root is None:
        return out
    for kind in ("unclip-h", "unclip-l"):
        p = Path(config_root) / kind / "image_normalizer" / "config.json"
        try:
            out.setdefault(int(json.loads(p.read_text())["embedding_dim"]), kind)
        except (OSError, ValueError, KeyError):
            continue
    return out


def detect_kind(sd: Mapping[str, object] | Iterable[str], *, config_root: str | Path | None = None) -> str:
    """Classify a checkpoint from its keys (and shapes, when given tensors or shapes).

    unCLIP -h/-l is told apart as the WebUI does, by the width of ``embedder.model.ln_final.weight`` (1024 / 768).
    Widths other than those (tiny test models) are matched against ``config_root``'s unCLIP configs; without shapes
    the embedder's structure decides (-l keeps the whole OpenAI CLIP incl. its text transformer, -h drops it).
    """
    shapes = _shapes(sd)
    keys = shapes.keys()

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    def shape(key: str) -> tuple[int, ...] | None:
        return shapes.get(key)

    in_shape = shape(_UNET + "input_blocks.0.0.weight")
    in_ch = in_shape[1] if in_shape and len(in_shape) > 1 else None

    if "model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias" in keys:
        return "sd3"
    if has("double_blocks.0.img_attn") or has(_UNET + "double_blocks.0.img_attn"):
        return "flux"
    if has("conditioner.embedders.1.model.") or has("conditioner.embedders.0.transformer."):
        return "sdxl-inpaint" if in_ch == 9 else "sdxl-base"
    if has("conditioner.embedders.0.model."):
        return "sdxl-refiner"
    if has("embedder.model.") or (has(_UNET + "label_emb.") and has("noise_augmentor.")):
        return _unclip_variant(shapes, has, config_root)
    if has("cond_stage_model.model."):
        return {5: "sd2-depth", 9: "sd2-inpaint", 7: "sd2-upscale"}.get(in_ch or 4, "sd2")
    if has("cond_stage_model.transformer."):
        return "sd1-inpaint" if in_ch == 9 else "sd1"
    return "unknown"


def _unclip_variant(shapes: Mapping[str, tuple[int, ...] | None], has, config_root: str | Path | None) -> str:
    ln = shapes.get("embedder.model.ln_final.weight")
    label = shapes.get(_UNET + "label_emb.0.0.weight")
    widths: list[int] = []
    if ln:
        widths.append(ln[0])
    if label and len(label) == 2:
        widths.append(label[1] // 2)  # UNet projection input = image embedding + noise-level embedding
    for w in widths:
        if w in _UNCLIP_WIDTH:
            return _UNCLIP_WIDTH[w]
    dims = _embedding_dims(Path(config_root) if config_root else None)
    for w in widths:
        if w in dims:
            return dims[w]
    return "unclip-l" if has("embedder.model.transformer.") else "unclip-h"


def yaml_unclip_override(checkpoint: str | Path) -> str | None:
    """The unCLIP variant named by a WebUI-style ``<checkpoint>.yaml`` next to the file, if there is one.

    Recognises the Stability configs (v2-1-stable-unclip-h/-l-inference.yaml): FrozenOpenCLIPImageEmbedder or
    ``adm_in_channels: 2048`` -> unclip-h; ClipImageEmbedder or ``adm_in_channels: 1536`` -> unclip-l.
    """
    p = Path(checkpoint)
    yml = p.with_suffix(".yaml")
    try:
        text = yml.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if "FrozenOpenCLIPImageEmbedder" in text or "adm_in_channels: 2048" in text:
        return "unclip-h"
    if "ClipImageEmbedder" in text or "adm_in_channels: 1536" in text:
        return "unclip-l"
    return None


def check_role(kind: str, role: str, name: str) -> None:
    """Raise ModelLoadError unless a model of ``kind`` can serve ``role``; the message names both."""
    role = normalize_role(role)
    accepted, purpose, needs = ROLES[role]
    if kind in accepted:
        return
    raise ModelLoadError(f"{name} is {describe(kind)}; {purpose} needs {needs}")


def folder_kind(folder: str | Path, *, config_root: str | Path | None = None) -> str:
    """Classify a diffusers folder from its model_index.json and component configs."""
    folder = Path(folder)

    def cfg(rel: str) -> dict:
        try:
            return json.loads((folder / rel).read_text())
        except (OSError, ValueError):
            return {}

    index = cfg("model_index.json")
    cls = index.get("_class_name", "")
    unet = cfg("unet/config.json")
    if cls.startswith("StableUnCLIP") or (unet.get("class_embed_type") == "projection" and "image_encoder" in index):
        emb = cfg("image_normalizer/config.json").get("embedding_dim")
        if emb is None:
            emb = cfg("image_encoder/config.json").get("projection_dim")
        if emb in _UNCLIP_WIDTH:
            return _UNCLIP_WIDTH[emb]
        dims = _embedding_dims(Path(config_root) if config_root else None)
        return dims.get(emb, "unclip-h") if emb is not None else "unclip-h"
    if unet.get("addition_embed_type") == "text_time" or cls.startswith("StableDiffusionXL"):
        te = index.get("text_encoder")
        if not te or te[0] is None:
            return "sdxl-refiner"
        return "sdxl-inpaint" if unet.get("in_channels") == 9 else "sdxl-base"
    if cls.startswith("StableDiffusion") or unet:
        cross = unet.get("cross_attention_dim")
        in_ch = unet.get("in_channels", 4)
        if cross == 1024:
            return {5: "sd2-depth", 9: "sd2-inpaint", 7: "sd2-upscale"}.get(in_ch, "sd2")
        if cross == 768:
            return "sd1-inpaint" if in_ch == 9 else "sd1"
    return "unknown"


def pipeline_kind(pipe: object) -> str:
    """Classify a loaded diffusers pipeline (hub downloads, folders) by its components."""
    name = type(pipe).__name__
    if name.startswith("StableUnCLIP"):
        norm = getattr(pipe, "image_normalizer", None)
        emb = getattr(getattr(norm, "config", None), "embedding_dim", None)
        return _UNCLIP_WIDTH.get(emb, "unclip-h")
    if name.startswith("StableDiffusionXL"):
        return "sdxl-refiner" if getattr(pipe, "text_encoder", None) is None else "sdxl-base"
    return "unknown"
