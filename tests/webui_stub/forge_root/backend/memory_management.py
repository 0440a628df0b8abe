"""F: stand-in of Forge's ``backend/memory_management.py`` (docs/webui-contract.md §6).

Stand-in only: ``calls`` records ``("unload_all_models",)``, ``("soft_empty_cache", force)``,
``("load_models_gpu", models)``, ``("free_memory", memory_required, device)`` in order.
"""

from __future__ import annotations

calls: list[tuple] = []
current_loaded_models: list = []


def get_torch_device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def unload_all_models() -> None:
    """Move every model Forge manages off the accelerator."""
    calls.append(("unload_all_models",))
    current_loaded_models.clear()


def soft_empty_cache(force: bool = False) -> None:
    calls.append(("soft_empty_cache", force))
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_models_gpu(models, memory_required=0, hard_memory_preservation=0) -> None:
    calls.append(("load_models_gpu", list(models)))
    current_loaded_models.extend(models)


def free_memory(memory_required, device, keep_loaded=()) -> None:
    calls.append(("free_memory", memory_required, device))


def get_free_memory(dev=None, torch_free_too=False):
    import os

    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return (free, free) if torch_free_too else free
