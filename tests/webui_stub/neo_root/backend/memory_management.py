"""Neo: stand-in of Forge Neo's ``backend/memory_management.py`` (branch neo, commit
000feeed77d3f7492587da9919579c149720c08c; "Cherry-picked some good parts from ComfyUI" v0.7.0).

What differs from Forge 2 and matters to an extension: ``free_memory(memory_required, device, keep_loaded=[])``
unloads Neo's models (last loaded first, those in ``keep_loaded`` excepted) and **removes them from
``current_loaded_models``**, returning them; ``unload_all_models()`` is ``free_memory(1e30, get_torch_device())``.
Neo's built-in refiner (``modules/processing_scripts/refiner.py``, ``postprocess``) later looks for the UNet's entry in
that list to restore the main checkpoint's weights, so an extension that empties the list meanwhile breaks it.

Stand-in only: there is no memory accounting, so ``free_memory`` unloads every model not in ``keep_loaded``;
``calls`` records ``("free_memory", memory_required, device, kept)``, ``("unload_all_models",)``,
``("soft_empty_cache", force)``, ``("load_models_gpu", models)`` in order.
"""

from __future__ import annotations

calls: list[tuple] = []
current_loaded_models: list[LoadedModel] = []


class LoadedModel:
    """One model Neo manages (``model`` is its ModelPatcher)."""

    def __init__(self, model) -> None:
        self.model = model
        self.device = getattr(model, "load_device", None)
        self.currently_used = True

    def model_memory(self) -> int:
        return int(getattr(self.model, "size", 0) or 0)

    def model_unload(self, memory_to_free=None, unpatch_weights=True) -> bool:
        return True

    def __eq__(self, other) -> bool:
        return isinstance(other, LoadedModel) and self.model is other.model

    __hash__ = object.__hash__


def get_torch_device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def get_free_memory(dev=None, torch_free_too=False):
    import os

    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return (free, free) if torch_free_too else free


def free_memory(memory_required, device, keep_loaded=[]):  # noqa: B006 -- the WebUI's signature
    """Unload (and drop from ``current_loaded_models``) every model not in ``keep_loaded``; return them."""
    calls.append(("free_memory", memory_required, device, list(keep_loaded)))
    unloaded = []
    for i in range(len(current_loaded_models) - 1, -1, -1):
        if current_loaded_models[i] not in keep_loaded and current_loaded_models[i].model_unload():
            unloaded.append(current_loaded_models.pop(i))
    if unloaded:
        soft_empty_cache()
    return unloaded


def load_models_gpu(
    models, memory_required=0, force_patch_weights=False, minimum_memory_required=None, force_full_load=False
):
    calls.append(("load_models_gpu", list(models)))
    for model in models:
        loaded = LoadedModel(model)
        if loaded not in current_loaded_models:
            current_loaded_models.insert(0, loaded)


def load_model_gpu(model):
    return load_models_gpu([model])


def soft_empty_cache(force=False) -> None:
    calls.append(("soft_empty_cache", force))
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def unload_all_models() -> None:
    """``free_memory(1e30, get_torch_device())``."""
    calls.append(("unload_all_models",))
    free_memory(1e30, get_torch_device())
