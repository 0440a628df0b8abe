"""The few non-tensor objects that training checkpoints pickle, allowed by name and never imported.

Stable Diffusion 1.x/2.x ``.ckpt`` files are PyTorch Lightning training checkpoints: beside the weights they pickle
``global_step``/``epoch`` (plain ints) and Lightning's ``ModelCheckpoint`` callback (the class as a dictionary key,
or an instance with its state). AUTOMATIC1111's own restricted unpickler allows exactly these
(https://github.com/AUTOMATIC1111/stable-diffusion-webui/blob/v1.10.1/modules/safe.py). We allow the same few names
and map Lightning's class to an inert stand-in (Lightning is never imported, no code from the file runs).

torch >= 2.6 does this with its own weights-only unpickler (``torch.serialization.safe_globals`` with
``(object, "module.name")`` pairs). Older torch (A1111 ships 2.1, Forge 2.3) has no way to extend that unpickler, so
there the file is read by :class:`RestrictedUnpickler`: Python's unpickler whose ``find_class`` answers only the
names below (the approach of https://docs.python.org/3/library/pickle.html#restricting-globals), which is what
``modules/safe.py`` does too.
"""

from __future__ import annotations

import codecs
import collections
import pickle
from typing import Any

import torch

LIGHTNING_CHECKPOINT = "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"


class LightningModelCheckpoint:
    """Inert stand-in for ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``: it only keeps its state."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def training_globals() -> dict[str, Any]:
    """``"module.name"`` → the object it stands for: the non-tensor globals a training checkpoint may hold."""
    import numpy

    found: dict[str, Any] = {
        LIGHTNING_CHECKPOINT: LightningModelCheckpoint,
        "_codecs.encode": codecs.encode,  # numpy scalars pickled with protocol 2 encode their bytes with it
        "builtins.set": set,
        "__builtin__.set": set,
        "numpy.dtype": numpy.dtype,
    }
    try:  # numpy 2 renamed numpy.core to numpy._core; pickles name the one they were written with
        from numpy._core.multiarray import scalar
    except ImportError:
        from numpy.core.multiarray import scalar
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[f"{module}.scalar"] = scalar
    for kind in ("bool", "uint8", "int32", "int64", "float16", "float32", "float64"):  # numpy >= 1.25 builds these
        dtype_class = type(numpy.dtype(kind))
        if dtype_class.__module__ == "numpy.dtypes":
            found[f"numpy.dtypes.{dtype_class.__name__}"] = dtype_class
    return found


def _tensor_globals() -> dict[str, Any]:
    """What a plain state dict needs (the names torch's weights-only unpickler allows for tensors)."""
    found: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "torch.Size": torch.Size,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch.serialization._get_layout": torch.serialization._get_layout,
    }
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"):
        if hasattr(torch._utils, name):
            found[f"torch._utils.{name}"] = getattr(torch._utils, name)
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype) or (name.endswith("Storage") and isinstance(value, type)):
            found[f"torch.{name}"] = value
    return found


class RestrictedUnpickler(pickle.Unpickler):
    """Python's unpickler that resolves only tensor rebuilders and :func:`training_globals`; anything else is refused
    before it is imported or called."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed()
        full = f"{module}.{name}"
        if full not in allowed:
            raise pickle.UnpicklingError(f"Weights only load failed: Unsupported global: GLOBAL {full}")
        return allowed[full]


_ALLOWED: dict[str, Any] = {}


def _allowed() -> dict[str, Any]:
    if not _ALLOWED:
        _ALLOWED.update({**_tensor_globals(), **training_globals()})
    return _ALLOWED


class _RestrictedPickleModule:
    """The ``pickle_module`` torch.load takes: its ``Unpickler`` (and ``load``, for the legacy format) are restricted."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def has_safe_globals() -> bool:
    """torch >= 2.6: ``safe_globals`` takes ``(object, "module.name")`` pairs, so the stand-in can carry Lightning's
    name."""
    version = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
    return version >= (2, 6) and hasattr(torch.serialization, "safe_globals")


def load_training_checkpoint(path: str, *, mmap: bool) -> object:
    """Unpickle ``path`` allowing tensors plus :func:`training_globals` only; raises like torch's weights-only load."""
    load = torch.serialization.load  # NOT torch.load: the WebUI monkeypatches that one
    if has_safe_globals():
        pairs = [(value, name) for name, value in training_globals().items()]
        with torch.serialization.safe_globals(pairs):
            return load(path, map_location="cpu", weights_only=True, mmap=mmap)
    return load(path, map_location="cpu", weights_only=False, mmap=mmap, pickle_module=_RestrictedPickleModule)
