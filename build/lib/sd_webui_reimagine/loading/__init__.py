"""Model loading: SD 2.1 unCLIP and SDXL from single files, diffusers folders or hub ids — offline, safe, cached.

Public API::

    read_state_dict(path) -> dict[str, Tensor]           # .safetensors / weights-only .ckpt; ModelLoadError on bad files
    detect_kind(state_dict_or_keys, config_root=None)   # "unclip-h" | "unclip-l" | "sdxl-base" | "sdxl-refiner" | ...
    load_unclip(source, *, config_root, karlo_stats, models_dir, device, dtype) -> StableUnCLIPImg2ImgPipeline
    load_sdxl(source, *, role="refiner" | "base", config_root, device, dtype) -> SDXL img2img / txt2img pipeline
    ModelCache().get(role, source, **loader_kwargs)      # role "unclip" | "refiner" | "base"
    pipe.reimagine_info -> ModelInfo(name, kind, path, source; .hash lazily)

Heavy libraries (diffusers, transformers) are imported only when a model is loaded, and torch only when one of
these names is first used: the package resolves them lazily (PEP 562), so ``loading.discovery`` (model lists for
the UI) stays cheap to import.
    free_memory(device)                                   # gc + empty the device cache
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BUNDLED_CONFIGS": "configs",
    "Checkpoint": "checkpoint",
    "KARLO_FILE": "unclip",
    "KINDS": "detect",
    "ModelCache": "cache",
    "ModelInfo": "info",
    "ROLES": "detect",
    "Source": "source",
    "build_tokenizer": "configs",
    "check_role": "detect",
    "config_dir": "configs",
    "describe": "detect",
    "detect_kind": "detect",
    "file_identity": "checkpoint",
    "find_karlo_stats": "unclip",
    "folder_kind": "detect",
    "free_memory": "_common",
    "load_karlo_stats": "unclip",
    "load_sdxl": "sdxl",
    "load_unclip": "unclip",
    "load_weights_only": "checkpoint",
    "read_state_dict": "checkpoint",
    "resolve_source": "source",
    "tensor_bytes": "checkpoint",
    "yaml_unclip_override": "detect",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
