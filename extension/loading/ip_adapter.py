"""The IP-Adapter backend's files: the adapter, the OpenCLIP ViT-H image encoder and the base checkpoint — offline.

- **adapter** (h94/IP-Adapter): ``ip-adapter_sd15``, ``ip-adapter_sd15_light``, ``ip-adapter-plus_sd15``,
  ``ip-adapter_sdxl_vit-h``, ``ip-adapter-plus_sdxl_vit-h`` as ``.safetensors`` (flat ``image_proj.*`` /
  ``ip_adapter.*`` keys) or ``.bin``/``.pth`` (the released nested ``{"image_proj": ..., "ip_adapter": ...}`` pickle,
  read weights-only), in ``models/ipadapter``, ``models/ControlNet`` or the ControlNet extension's ``models``. The
  image projection tells the variant: ``proj.weight`` = plain (the projected image embedding), ``latents`` = plus
  (a Resampler over the encoder's penultimate hidden states);
- **image encoder** (OpenCLIP ViT-H-14 as ``CLIPVisionModelWithProjection``): a single file in ``models/clip_vision``
  (HF ``vision_model.*`` keys as ComfyUI/Forge/ControlNet ship it, or open_clip ``visual.*``), a diffusers/HF folder,
  or the ``embedder.model.visual.*`` of the unCLIP-H checkpoint itself (``loading/clip_vision.py``'s mapping) — or the
  encoder of an unCLIP-H pipeline already loaded (one encoder for both backends);
- **base**: an SD 1.5 (``loading/sd1.py``) or SDXL base (``loading/sdxl.py``) single file.

:func:`load_ip_adapter_pipeline` puts them together with diffusers' own ``load_ip_adapter`` (given the state dict).
A missing piece is one :class:`ModelLoadError` line naming the file and the folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..device.precision import pick
from ..errors import ModelLoadError
from ._common import quiet
from .checkpoint import Checkpoint, load_weights_only, read_state_dict, safetensors_shapes, take_prefix
from .clip_vision import VISUAL_PREFIX, build_image_encoder, convert_visual
from .configs import config_dir
from .detect import describe, detect_kind

ADAPTER_NAMES = (
    "ip-adapter_sd15",
    "ip-adapter_sd15_light",
    "ip-adapter-plus_sd15",
    "ip-adapter_sdxl_vit-h",
    "ip-adapter-plus_sdxl_vit-h",
)
ADAPTER_SUFFIXES = (".safetensors", ".bin", ".pth")
ADAPTER_FOLDERS = ("models/ipadapter", "models/ControlNet", "extensions/sd-webui-controlnet/models")
ENCODER_FOLDER = "models/clip_vision"
# The ViT-H encoder under the names ComfyUI (IPAdapter_plus, Comfy-Org), Forge and sd-webui-controlnet give it.
ENCODER_NAMES = (
    "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    "clip_vision_h.safetensors",
    "clip-vit-h-14-laion2b-s32b-b79k.safetensors",
    "clip_h.pth",
    "model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_model.safetensors",
)
BASE_KINDS = ("sd1", "sdxl-base")
ENCODER_CONFIG_KIND = "unclip-h"  # its image_encoder/ and feature_extractor/ describe OpenCLIP ViT-H-14
_HF_PREFIXES = ("vision_model.", "visual_projection.")
_CROSS_DIM_FAMILY = {768: "sd1", 2048: "sdxl-base"}

Adapter = dict[str, dict[str, torch.Tensor]]


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter file is: ``variant`` "plain" (projected embedding) or "plus" (hidden states), the UNet
    cross-attention width it targets, and the image feature width it takes."""

    name: str
    path: Path
    variant: str
    cross_attention_dim: int
    image_dim: int

    @property
    def uses_hidden_states(self) -> bool:
        """Whether the adapter takes the encoder's penultimate hidden states (plus) instead of its projection."""
        return self.variant == "plus"


# ---------------------------------------------------------------------------------------------------------------------
# Adapter files


def read_adapter(path: str | os.PathLike[str]) -> tuple[Adapter, AdapterInfo]:
    """Read an adapter file (safetensors, or a weights-only pickle) into diffusers' ``{"image_proj", "ip_adapter"}``
    dict and classify it. ModelLoadError naming the file when it is unsafe, broken or no IP-Adapter we support."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        flat = read_state_dict(path)
        adapter: Adapter = {"image_proj": {}, "ip_adapter": {}}
        for key, tensor in flat.items():
            group, _, rest = key.partition(".")
            if group in adapter:
                adapter[group][rest] = tensor
    else:
        obj = load_weights_only(path, what="IP-Adapter file")
        if not isinstance(obj, dict):
            raise ModelLoadError(f"{path.name} is not an IP-Adapter file (it holds a {type(obj).__name__}) ({path})")
        adapter = {group: dict(obj.get(group) or {}) for group in ("image_proj", "ip_adapter")}
    return adapter, classify_adapter(adapter, path)


def classify_adapter(adapter: dict[str, dict[str, Any]], path: Path) -> AdapterInfo:
    """Variant and widths from the image projection's weights or their shapes (never from the file name)."""
    proj = {k: tuple(getattr(v, "shape", v)) for k, v in adapter["image_proj"].items()}
    layers = adapter["ip_adapter"]
    if not proj or not any(k.endswith("to_k_ip.weight") for k in layers):
        raise ModelLoadError(
            f"{path.name} is not an IP-Adapter: it has no image_proj.* / ip_adapter.*.to_k_ip weights ({path})"
        )
    if "latents" in proj and "proj_in.weight" in proj and "proj_out.weight" in proj:
        variant, cross, image_dim = "plus", proj["proj_out.weight"][0], proj["proj_in.weight"][1]
    elif "proj.weight" in proj and "norm.weight" in proj:
        variant, cross, image_dim = "plain", proj["norm.weight"][0], proj["proj.weight"][1]
    else:
        raise ModelLoadError(
            f"{path.name} is an IP-Adapter kind we do not support (FaceID / full-face); use one of "
            f"{', '.join(ADAPTER_NAMES)} ({path})"
        )
    return AdapterInfo(path.stem, path, variant, int(cross), int(image_dim))


def adapter_info(path: str | os.PathLike[str]) -> AdapterInfo:
    """:func:`classify_adapter` of a file; a .safetensors file's header alone is read."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return read_adapter(path)[1]
    groups: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
    for key, shape in safetensors_shapes(path).items():
        group, _, rest = key.partition(".")
        if group in groups:
            groups[group][rest] = shape
    return classify_adapter(groups, path)


def find_adapters(webui_root: str | os.PathLike[str] | None, extra: Sequence[Path] = ()) -> list[Path]:
    """Adapter files by name (``ip-adapter*`` / ``ip_adapter*``, .safetensors/.bin/.pth) in the WebUI's adapter
    folders and ``extra`` folders; cheap: nothing is read."""
    folders = [Path(webui_root) / f for f in ADAPTER_FOLDERS] if webui_root else []
    found: dict[Path, Path] = {}
    for folder in [*folders, *map(Path, extra)]:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            stem = path.name.lower()
            if path.suffix.lower() in ADAPTER_SUFFIXES and stem.startswith(("ip-adapter", "ip_adapter")):
                found.setdefault(path.resolve(), path)
    return list(found.values())


def missing_adapter_message(webui_root: str | os.PathLike[str] | None, first: str = ADAPTER_NAMES[0]) -> str:
    """The one-line message when no (fitting) adapter file was found."""
    where = Path(webui_root) / ADAPTER_FOLDERS[0] if webui_root else Path(ADAPTER_FOLDERS[0])
    others = ", ".join(name for name in ADAPTER_NAMES if name != first)
    return f"No IP-Adapter found: put {first}.safetensors (or another of {others}) in {where}"


# ---------------------------------------------------------------------------------------------------------------------
# Image encoder


def find_image_encoder(
    webui_root: str | os.PathLike[str] | None, unclip_checkpoints: Sequence[Path] = (), extra: Sequence[Path] = ()
) -> Path | None:
    """Where the ViT-H encoder is: a known file or an HF folder in ``models/clip_vision`` (or ``extra``), an
    ``image_encoder`` folder next to the adapters (h94 layout), else the first unCLIP-H checkpoint; None if none."""
    roots = [Path(webui_root) / ENCODER_FOLDER] if webui_root else []
    roots += [Path(webui_root) / f / "image_encoder" for f in ADAPTER_FOLDERS] if webui_root else []
    for folder in [*map(Path, extra), *roots]:
        if _is_hf_folder(folder):
            return folder
        if not folder.is_dir():
            continue
        by_name = {p.name.lower(): p for p in folder.iterdir()}
        for name in ENCODER_NAMES:
            if name.lower() in by_name and by_name[name.lower()].is_file():
                return by_name[name.lower()]
        for child in sorted(folder.iterdir()):
            if _is_hf_folder(child):
                return child
    return next((Path(p) for p in unclip_checkpoints), None)


def missing_encoder_message(webui_root: str | os.PathLike[str] | None) -> str:
    """The one-line message when no image encoder was found."""
    where = Path(webui_root) / ENCODER_FOLDER if webui_root else Path(ENCODER_FOLDER)
    return (
        f"No image encoder for IP-Adapter found: put {ENCODER_NAMES[0]} in {where} "
        "(or keep sd21-unclip-h in models/Stable-diffusion: its encoder is used)"
    )


def _is_hf_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")
    )


def load_image_encoder(
    source: str | os.PathLike[str],
    *,
    config_root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> torch.nn.Module:
    """The ViT-H ``CLIPVisionModelWithProjection`` from an HF folder, an HF / open_clip single file or an unCLIP-H
    checkpoint (only its ``embedder.model.visual.*`` tensors are kept). ModelLoadError naming the file otherwise."""
    prec = pick(device, dtype)
    path = Path(source)
    if path.is_dir():
        return _from_folder(path, prec.dtype, prec.device)
    if not path.is_file():
        raise ModelLoadError(f"Image encoder not found: {path.name} in {path.parent}")
    cfg = config_dir(ENCODER_CONFIG_KIND, config_root) / "image_encoder"
    shapes = Checkpoint.open(path).shapes
    if any(k.startswith(VISUAL_PREFIX) for k in shapes):
        weights = convert_visual(_read_prefix(path, VISUAL_PREFIX))
    elif any(k.startswith("visual.") for k in shapes):
        weights = convert_visual(_read_prefix(path, "visual."), prefix="visual.")
    elif any(k.startswith(_HF_PREFIXES) for k in shapes):
        sd = read_state_dict(path)
        weights = {k: v for k, v in sd.items() if k.startswith(_HF_PREFIXES)}
    else:
        raise ModelLoadError(f"{path.name} holds no CLIP vision weights (expected OpenCLIP ViT-H-14) ({path.parent})")
    try:
        return build_image_encoder(weights, cfg, dtype=prec.dtype, device=prec.device)
    except ModelLoadError as e:
        raise ModelLoadError(f"{path.name}: {e} (the IP-Adapter encoder must be OpenCLIP ViT-H-14)") from None


def _read_prefix(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """Only the tensors under ``prefix`` (a .safetensors file is read key by key, never whole)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            keys = [k for k in f.keys() if k.startswith(prefix)]  # noqa: SIM118 - a safe_open handle, not a dict
            return {k: f.get_tensor(k) for k in keys}
    return take_prefix(read_state_dict(path), prefix)


def _from_folder(folder: Path, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    from transformers import CLIPVisionModelWithProjection

    try:
        with quiet():
            model = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype)
    except Exception as e:  # noqa: BLE001 - any failure is a one-line message naming the folder
        raise ModelLoadError(f"Cannot load the image encoder folder {folder}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()


def feature_extractor(config_root: str | os.PathLike[str] | None = None) -> Any:
    """The ViT-H encoder's image preprocessing (224², OpenAI CLIP mean/std), from the bundled config."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor.from_pretrained(str(config_dir(ENCODER_CONFIG_KIND, config_root) / "feature_extractor"))


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline


def base_kind(path: str | os.PathLike[str], config_root: str | os.PathLike[str] | None = None) -> str:
    """``sd1`` or ``sdxl-base`` for a base checkpoint file; ModelLoadError for anything else."""
    path = Path(path)
    kind = detect_kind(Checkpoint.open(path).shapes, config_root=config_root)
    if kind not in BASE_KINDS:
        raise ModelLoadError(f"{path.name} is {describe(kind)}; IP-Adapter needs an SD 1.5 or SDXL base checkpoint")
    return kind


def check_pairing(info: AdapterInfo, unet: Any, encoder: torch.nn.Module, base_name: str) -> None:
    """The adapter must fit the base's cross-attention width and the encoder's output width."""
    cross = int(unet.config.cross_attention_dim)
    if info.cross_attention_dim != cross:
        family = _CROSS_DIM_FAMILY.get(info.cross_attention_dim, f"width {info.cross_attention_dim}")
        raise ModelLoadError(
            f"{info.path.name} is an adapter for {family} models, but {base_name} has cross-attention width {cross}; "
            "use ip-adapter*_sd15 with SD 1.5 and ip-adapter*_sdxl_vit-h with SDXL"
        )
    config = encoder.config
    width = int(config.hidden_size if info.uses_hidden_states else config.projection_dim)
    if info.image_dim != width:
        raise ModelLoadError(
            f"{info.path.name} takes image features of width {info.image_dim}, the image encoder gives {width}: "
            "it needs the OpenCLIP ViT-H-14 encoder (use the _vit-h adapters with SDXL)"
        )


def load_ip_adapter_pipeline(
    base: str | os.PathLike[str],
    adapter: str | os.PathLike[str],
    encoder: str | os.PathLike[str] | torch.nn.Module,
    *,
    config_root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    text_tower: str | os.PathLike[str] | None = None,
) -> Any:
    """SD 1.5 / SDXL base + IP-Adapter + ViT-H encoder -> ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline``
    with the adapter loaded by diffusers' ``load_ip_adapter`` (from the state dict) and ``pipe.reimagine_adapter``
    (:class:`AdapterInfo`) set. ``encoder``: a path (:func:`load_image_encoder`) or an encoder module already loaded
    (e.g. an unCLIP-H pipeline's ``image_encoder``). The adapter and encoder are checked before the base is read.
    ``text_tower``: an sd21-unclip-h file for Edit by text (default: the encoder, when it is one);
    ``pipe.reimagine_text_source`` is set when there is one (``loading/unclip_text.py``)."""
    prec = pick(device, dtype)
    state, info = read_adapter(adapter)
    kind = base_kind(base, config_root)
    if isinstance(encoder, torch.nn.Module):
        image_encoder = encoder
    else:
        image_encoder = load_image_encoder(encoder, config_root=config_root, device=prec.device, dtype=prec.dtype)
    if kind == "sd1":
        from .sd1 import load_sd1

        pipe = load_sd1(base, config_root=config_root, device=prec.device, dtype=prec.dtype)
    else:
        from .sdxl import load_sdxl

        pipe = load_sdxl(base, role="base", config_root=config_root, device=prec.device, dtype=prec.dtype)
    check_pairing(info, pipe.unet, image_encoder, Path(base).name)
    pipe.register_modules(image_encoder=image_encoder, feature_extractor=feature_extractor(config_root))
    with quiet():
        pipe.load_ip_adapter(state, subfolder="", weight_name="", image_encoder_folder=None)
    pipe.reimagine_adapter = info
    from .unclip_text import UnclipTextSource, has_text_tower

    candidates = [text_tower] if text_tower else [] if isinstance(encoder, torch.nn.Module) else [encoder]
    for path in candidates:  # Edit by text: the same CLIP's text tower (sd21-unclip-h), loaded on first use
        if Path(path).is_file() and has_text_tower(path):
            pipe.reimagine_text_source = UnclipTextSource(path, config_root, prec)
    return pipe


def pick_adapter(
    base_kind_: str, name: str | None, webui_root: str | os.PathLike[str] | None, extra: Sequence[Path] = ()
) -> Path:
    """The adapter file to use: ``name`` as a path, or as a file name / stem among :func:`find_adapters`; without a
    name the first whose name says it fits the base (``sd15`` / ``sdxl``). One-line ModelLoadError otherwise."""
    if name and Path(name).is_file():
        return Path(name)
    found = find_adapters(webui_root, extra)
    if name:
        for path in found:
            if name in (path.name, path.stem):
                return path
        where = ", ".join(str(Path(webui_root) / f) for f in ADAPTER_FOLDERS) if webui_root else "the adapter folders"
        raise ModelLoadError(f"IP-Adapter {name} not found in {where}")
    family = "sd15" if base_kind_ == "sd1" else "sdxl"
    fitting = [path for path in found if family in path.stem.lower()]
    if not fitting:
        first = ADAPTER_NAMES[0] if family == "sd15" else "ip-adapter_sdxl_vit-h"
        raise ModelLoadError(missing_adapter_message(webui_root, first))
    return fitting[0]
