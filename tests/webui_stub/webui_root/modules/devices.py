"""Stand-in of modules/devices.py (docs/webui-contract.md §6). torch is imported on first use of a torch-valued attribute.

``device`` is CUDA when available, else CPU; ``dtype`` is float16 on CUDA and float32 on CPU (a CPU WebUI runs with
``--no-half``/``--use-cpu``). Tests may assign any of them. F: ``torch_gc()`` is
``backend.memory_management.soft_empty_cache()`` and ``device`` is ``memory_management.get_torch_device()``.
Stand-in only: ``gc_calls`` counts ``torch_gc()`` calls.
"""

from __future__ import annotations

import contextlib
import sys

from modules import _stub

gc_calls = 0


def get_optimal_device_name() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def get_optimal_device():
    import torch

    return torch.device(get_optimal_device_name())


def torch_gc() -> None:
    """Free cached accelerator memory (devices.py:77-92)."""
    global gc_calls
    gc_calls += 1
    if _stub.is_forge():
        from backend import memory_management

        memory_management.soft_empty_cache()
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


class NansException(Exception):
    """devices.py: raised by :func:`test_for_nans`."""


def test_for_nans(x, where: str) -> None:
    """As the real one (A1111 and Forge ``modules/devices.py``): unless ``--disable-nan-check``, a tensor that is all
    NaN raises :class:`NansException` (the generation is lost)."""
    import torch

    from modules import shared

    if getattr(shared.cmd_opts, "disable_nan_check", False):
        return
    if not torch.all(torch.isnan(x)).item():
        return
    raise NansException(f"A tensor with all NaNs was produced in {where.capitalize()}.")


def autocast(disable: bool = False):
    return contextlib.nullcontext()


def without_autocast(disable: bool = False):
    return contextlib.nullcontext()


def __getattr__(name: str):
    import torch

    if name == "cpu":
        value = torch.device("cpu")
    elif name in ("device", "device_interrogate", "device_gfpgan", "device_esrgan", "device_codeformer"):
        if _stub.is_forge():
            from backend import memory_management

            value = memory_management.get_torch_device()
        else:
            value = get_optimal_device()
    elif name in ("dtype", "dtype_vae", "dtype_unet", "dtype_inference"):
        value = torch.float16 if get_optimal_device_name() == "cuda" else torch.float32
    else:
        raise AttributeError(f"module 'modules.devices' has no attribute {name!r}")
    globals()[name] = value
    return value
