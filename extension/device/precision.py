"""Device and dtype: decided here and nowhere else.

Policy:
- CUDA -> float16. The SDXL VAE overflows in fp16; its configs carry ``force_upcast: true``, so diffusers' SDXL
  pipelines run the VAE in fp32 around encode/decode (``Precision.vae_force_upcast``). SD 2.1 / unCLIP attention
  upcast is ``upcast_attention: true`` in the UNet config, so fp16 is safe there too.
- MPS -> float16.
- CPU -> float32 (bfloat16 when asked for: ``pick("cpu", "bf16")`` or ``pick(cpu_dtype=torch.bfloat16)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ParamError

_DTYPE_NAMES = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


@dataclass(frozen=True)
class Precision:
    """Where and in which dtype models run."""

    device: torch.device
    dtype: torch.dtype

    @property
    def vae_force_upcast(self) -> bool:
        """Whether an SDXL VAE (config ``force_upcast``) will be upcast to fp32 by diffusers for encode/decode."""
        return self.dtype == torch.float16

    def __str__(self) -> str:
        return f"{self.device.type} {str(self.dtype).replace('torch.', '')}"


def default_device() -> torch.device:
    """CUDA if available, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"fp16"``/``"bf16"``/``"fp32"``/``"auto"``/None or a torch dtype -> torch dtype (None = auto)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).lower().replace("torch.", "")
    if name in ("", "auto"):
        return None
    if name not in _DTYPE_NAMES:
        raise ParamError(f"Unknown precision {dtype!r}; use one of auto, fp16, bf16, fp32")
    return _DTYPE_NAMES[name]


def pick(
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    cpu_dtype: torch.dtype = torch.float32,
) -> Precision:
    """Decide device and dtype (``None`` = automatic, see module docstring)."""
    dev = torch.device(device) if device is not None else default_device()
    dt = parse_dtype(dtype)
    if dt is None:
        dt = torch.float16 if dev.type in ("cuda", "mps") else cpu_dtype
    return Precision(dev, dt)
