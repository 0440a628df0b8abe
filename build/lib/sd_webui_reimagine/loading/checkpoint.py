"""Safe reading of single-file checkpoints (.safetensors and pickled .ckpt/.pt) without running any code.

``.ckpt`` files are pickles. They are read with ``torch.serialization.load(..., weights_only=True)`` — the function
itself, not ``torch.load``: inside AUTOMATIC1111 ``torch.load`` is replaced by ``modules/safe.py``'s filter, which
returns ``None`` instead of raising. The weights-only unpickler refuses every global that is not a tensor/container
type *before* calling it, so a malicious pickle is rejected without executing anything.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .allowlist import load_training_checkpoint

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".th")
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES

StateDict = dict[str, torch.Tensor]


def _name(path: Path) -> str:
    return path.name or str(path)


def _check_file(path: Path) -> None:
    """Raise ModelLoadError unless ``path`` is an existing, readable regular file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelLoadError(f"Model file not found: {path}") from None
    except OSError as e:
        raise ModelLoadError(f"Cannot access model file {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelLoadError(f"{path} is a folder, not a checkpoint file (.safetensors or .ckpt)")
    if not os.access(path, os.R_OK):
        raise ModelLoadError(f"Cannot read model file {path}: permission denied")
    if st.st_size == 0:
        raise ModelLoadError(f"{_name(path)} is empty (0 bytes): the download or copy is incomplete ({path})")


def _is_safetensors(path: Path) -> bool:
    return path.suffix.lower() in SAFETENSORS_SUFFIXES


def _safetensors_error(path: Path, err: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"{_name(path)} is not a valid .safetensors file — it is truncated or corrupt "
        f"(the download may be incomplete): {err} ({path})"
    )


# torch >= 2.4 says "Unsupported global: GLOBAL a.b", torch 2.1-2.3 "Unsupported class a.b"
_GLOBAL_RE = re.compile(r"(?:GLOBAL|Unsupported class) ([\w.]+)")


def load_weights_only(path: str | os.PathLike[str], *, what: str = "checkpoint") -> object:
    """Unpickle ``path`` with weights-only semantics (tensors, containers, numbers only); never executes code.

    Returns whatever plain object the file holds (dict, tuple, ...). Raises ModelLoadError with a clear message for
    unsafe pickles, files that are not PyTorch files, truncated files, or when a patched loader returns ``None``.
    """
    path = Path(path)
    _check_file(path)
    name = _name(path)
    with open(path, "rb") as f:
        head = f.read(4)
    is_zip = head.startswith(b"PK\x03\x04")
    is_pickle = head[:1] == b"\x80"
    if not (is_zip or is_pickle):
        raise ModelLoadError(f"{name} is not a {what}: it is neither a PyTorch file nor a .safetensors file ({path})")
    if is_zip:
        from .archive import check_file

        check_file(path)  # a zip bomb is refused from the zip directory before torch inflates anything
    load = torch.serialization.load  # NOT torch.load: the WebUI monkeypatches that one (see module docstring)
    try:
        try:
            obj = load(str(path), map_location="cpu", weights_only=True, mmap=is_zip)
        except Exception as e:
            if not _is_refusal(e):
                raise
            try:  # a training checkpoint (Lightning callback state, numpy scalars): allowed by name only
                obj = load_training_checkpoint(str(path), mmap=is_zip)
            except Exception:
                raise e from None
    except Exception as e:
        msg = str(e)
        if _is_refusal(e):
            m = _GLOBAL_RE.search(msg)
            if m or "Unsupported global" in msg or "Unsupported class" in msg:
                asked = m.group(1).removeprefix("builtins.").removeprefix("__builtin__.") if m else ""
                detail = f" (it asks for {asked})" if m else ""
                raise ModelLoadError(
                    f"{name} is unsafe: it is not a plain checkpoint — its pickle wants to import and call "
                    f"code{detail}. It was refused without running anything. Use a .safetensors version of this "
                    f"model from a trusted source. ({path})"
                ) from None
            raise ModelLoadError(
                f"{name} is not a plain checkpoint: its pickle holds data other than tensors, or it is corrupt. "
                f"Nothing was executed. ({path})"
            ) from None
        raise ModelLoadError(
            f"{name} is truncated or corrupt and cannot be read as a PyTorch {what}: {e} ({path})"
        ) from None
    if obj is None:
        raise ModelLoadError(
            f"{name} could not be read: the checkpoint loader returned nothing (in the WebUI this happens when its safe "
            f"unpickler rejects the file). Use a .safetensors version of this model. ({path})"
        )
    return obj


def _is_refusal(e: Exception) -> bool:
    """Whether the weights-only unpickler refused the file (as opposed to a truncated or foreign file)."""
    return "Weights only load failed" in str(e) or isinstance(e, _unpickling_errors())


def _unpickling_errors() -> tuple[type[BaseException], ...]:
    import pickle

    return (pickle.UnpicklingError,)


def _unwrap_state_dict(obj: object, path: Path) -> StateDict:
    while isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ModelLoadError(
            f"{_name(path)} is not a model checkpoint: it holds a {type(obj).__name__}, not a dictionary of weights "
            f"({path})"
        )
    sd = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not sd:
        raise ModelLoadError(f"{_name(path)} contains no weights ({path})")
    return sd


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Read a single-file checkpoint into ``{key: tensor}`` on the CPU (at most one copy of the weights, no code run).

    ``.safetensors`` is read with ``safetensors.torch.load_file`` and pickles as weights-only, memory-mapped when they
    are zip checkpoints: either way the tensors are backed by a private mapping of the file, so pages become resident
    only when used and models built from these tensors (same dtype and device) share them instead of copying.
    A top-level ``"state_dict"`` wrapper is removed. Raises ModelLoadError naming the file on any problem.
    """
    path = Path(path)
    _check_file(path)
    if _is_safetensors(path):
        import safetensors.torch

        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except Exception as e:
            raise _safetensors_error(path, e) from None
    return _unwrap_state_dict(load_weights_only(path), path)


@dataclass
class Checkpoint:
    """A single-file checkpoint opened for inspection: key shapes are available before the weights are read.

    For .safetensors the shapes come from the header alone (cheap), so a wrong file is rejected before gigabytes are
    read; pickles are memory-mapped, so reading them up front costs little. ``take_state_dict()`` hands the weights
    over exactly once (the Checkpoint keeps no reference, so the caller controls their lifetime).
    """

    path: Path
    shapes: dict[str, tuple[int, ...]]
    _sd: StateDict | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Open ``path`` and read its key names and shapes."""
        path = Path(path)
        _check_file(path)
        if _is_safetensors(path):
            return cls(path, safetensors_shapes(path))
        sd = read_state_dict(path)
        return cls(path, {k: tuple(v.shape) for k, v in sd.items()}, sd)

    def take_state_dict(self) -> StateDict:
        """Return the full state dict (read now for .safetensors) and drop this object's reference to it."""
        sd, self._sd = self._sd, None
        return sd if sd is not None else read_state_dict(self.path)

    def keys(self) -> Iterator[str]:
        """Key names."""
        return iter(self.shapes)


_SAFETENSORS_DTYPES = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}


def safetensors_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Key -> shape from a .safetensors header alone (no tensor data read), validating that the file is complete."""
    import json
    import struct

    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(size - 8, 100_000_000):
                raise ValueError("header size is larger than the file")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        shapes: dict[str, tuple[int, ...]] = {}
        end = 0
        for key, info in header.items():
            if key == "__metadata__":
                continue
            if info.get("dtype") not in _SAFETENSORS_DTYPES:
                raise ValueError(f"unknown dtype {info.get('dtype')!r} for {key}")
            shapes[key] = tuple(int(x) for x in info["shape"])
            end = max(end, int(info["data_offsets"][1]))
    except (struct.error, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise _safetensors_error(path, e) from None  # RecursionError: a deeply nested JSON header
    if 8 + n + end > size:
        raise _safetensors_error(path, ValueError("the data section is shorter than the header says"))
    return shapes


def take_prefix(sd: StateDict, prefix: str) -> StateDict:
    """Move every entry whose key starts with ``prefix`` out of ``sd`` into a new dict (keys unchanged)."""
    keys = [k for k in sd if k.startswith(prefix)]
    return {k: sd.pop(k) for k in keys}


def tensor_bytes(sd: Mapping[str, torch.Tensor]) -> int:
    """Total bytes of the tensors in ``sd``."""
    return sum(t.numel() * t.element_size() for t in sd.values())


def file_identity(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """(resolved path, size, mtime_ns): changes whenever the file is replaced or rewritten."""
    p = Path(path).resolve()
    st = p.stat()
    return (str(p), st.st_size, st.st_mtime_ns)
