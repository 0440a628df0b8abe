"""Model loading: SD 2.1 unCLIP and SDXL from single files, diffusers folders or hub ids — offline, safe, cached.

Public API::

    read_state_dict(path) -> dict[str, Tensor]           # .safetensors / weights-only .ckpt; ModelLoadError on bad files
    detect_kind(state_dict_or_keys, config_root=None)   # "unclip-h" | "unclip-l" | "sdxl-base" | "sdxl-refiner" | ...
    load_unclip(source, *, config_root, karlo_stats, models_dir, device, dtype) -> StableUnCLIPImg2ImgPipeline
    load_sdxl(source, *, role="refiner" | "base", config_root, device, dtype) -> SDXL img2img / txt2img pipeline
    ModelCache().get(role, source, **loader_kwargs)      # role "unclip" | "refiner" | "base"
    pipe.reimagine_info -> ModelInfo(name, kind, path, source; .hash lazily)

Heavy libraries (diffusers, transformers) are imported only when a model is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy (PEP 562): ``loading.discovery`` is imported when the WebUI loads the script, which must not import torch.
_SOURCES = {
    "ModelCache": "cache",
    "Checkpoint": "checkpoint",
    "file_identity": "checkpoint",
    "load_weights_only": "checkpoint",
    "read_state_dict": "checkpoint",
    "tensor_bytes": "checkpoint",
    "BUNDLED_CONFIGS": "configs",
    "build_tokenizer": "configs",
    "config_dir": "configs",
    "KINDS": "detect",
    "ROLES": "detect",
    "check_role": "detect",
    "describe": "detect",
    "detect_kind": "detect",
    "folder_kind": "detect",
    "yaml_unclip_override": "detect",
    "ModelInfo": "info",
    "load_sdxl": "sdxl",
    "Source": "source",
    "resolve_source": "source",
    "KARLO_FILE": "unclip",
    "find_karlo_stats": "unclip",
    "load_karlo_stats": "unclip",
    "load_unclip": "unclip",
}


__all__ = [
    "BUNDLED_CONFIGS",
    "KARLO_FILE",
    "KINDS",
    "ROLES",
    "Checkpoint",
    "ModelCache",
    "ModelInfo",
    "Source",
    "build_tokenizer",
    "check_role",
    "config_dir",
    "describe",
    "detect_kind",
    "file_identity",
    "find_karlo_stats",
    "folder_kind",
    "load_karlo_stats",
    "load_sdxl",
    "load_unclip",
    "load_weights_only",
    "read_state_dict",
    "resolve_source",
    "tensor_bytes",
    "yaml_unclip_override",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use (keeps ``import extension.loading`` torch-free)."""
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value
    return value
