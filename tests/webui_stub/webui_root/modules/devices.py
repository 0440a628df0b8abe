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


class NansException(Exception):
    pass


def test_for_nans(x, where):
    """Raise ``NansException`` when the first element of ``x`` is NaN (devices.py:242-265; same in Forge), unless
    ``--disable-nan-check``."""
    import torch

    from modules import shared

    if getattr(shared.cmd_opts, "disable_nan_check", False):
        return
    if not torch.isnan(x[(0,) * len(x.shape)]):
        return
    if where == "unet":
        message = "A tensor with NaNs was produced in Unet."
    elif where == "vae":
        message = "A tensor with NaNs was produced in VAE."
    else:
        message = "A tensor with NaNs was produced."
    message += " Use --disable-nan-check commandline argument to disable this check."
    raise NansException(message)
