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

from .cache import ModelCache
from .checkpoint import Checkpoint, file_identity, load_weights_only, read_state_dict, tensor_bytes
from .configs import BUNDLED_CONFIGS, build_tokenizer, config_dir
from .detect import KINDS, ROLES, check_role, describe, detect_kind, folder_kind, yaml_unclip_override
from .info import ModelInfo
from .sdxl import load_sdxl
from .source import Source, resolve_source
from .unclip import KARLO_FILE, find_karlo_stats, load_karlo_stats, load_unclip

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
