"""Build a FULL-SIZE random SDXL base in the released single-file layout, plus the offline files the WebUIs need.

Test-only (real-WebUI runs, issue 23). Writes, without any download:

* ``sd_xl_base_1.0-random.safetensors``: every key, shape and dtype of ``sd_xl_base_1.0.safetensors`` (2515 keys, fp16,
  ~6.9 GB) from the committed table ``sdxl_base_keys.json`` (made by ``sdxl_table.py``). Random weights, seeded per key:
  1-D ``*.weight`` (every norm scale) = 1, ``logit_scale`` = log(100), ``position_ids`` = 0..76, everything else
  N(0, 0.02) -- no zero biases (see docs of the real-WebUI setup: zero ``ln_final`` bias gives NaN in the emphasis).
  The file is streamed tensor by tensor (peak memory: the largest tensor, ~250 MB), not built in RAM.
* ``vaeapprox-sdxl.pt``: a random ``VAEApprox`` state dict (the WebUIs' ``modules/sd_vae_approx.py``: conv1..conv8,
  latent 4 channels) that both WebUIs otherwise download on the first SDXL job (offline: HTTP 500). Saved in torch's
  legacy (non-zip) format, which A1111's safe unpickler accepts from any torch (it refuses torch >= 2.4 zip records).

    python tests/real_webui/make_sdxl_base.py --out $REAL_WEBUI_ROOT/models \
        --link $REAL_WEBUI_ROOT/a1111/webui/models $REAL_WEBUI_ROOT/forge/webui/models

``--link MODELS_DIR`` hard-links the checkpoint into ``MODELS_DIR/Stable-diffusion/`` and the approx file into
``MODELS_DIR/VAE-approx/`` (one copy on disk).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import struct
from pathlib import Path

import torch
from torch import nn

TABLE = Path(__file__).with_name("sdxl_base_keys.json")
NAME = "sd_xl_base_1.0-random.safetensors"
APPROX = "vaeapprox-sdxl.pt"
_ITEM = {"F16": 2, "I64": 8}


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (2**63 - 1)


def tensor_for(key: str, dtype: str, shape: list[int]) -> torch.Tensor:
    """The random value of one key (see the module docstring)."""
    if dtype == "I64":
        return torch.arange(shape[-1], dtype=torch.int64).reshape(shape)
    if key.endswith("logit_scale"):
        return torch.full(shape, math.log(100.0), dtype=torch.float16)
    if key.endswith(".weight") and len(shape) == 1:
        return torch.ones(shape, dtype=torch.float16)
    gen = torch.Generator().manual_seed(_seed(key))
    return (torch.randn(shape, generator=gen) * 0.02).to(torch.float16)


def write_base(path: Path, table: dict[str, list]) -> None:
    """Stream the safetensors file: 8-byte header length, JSON header, then each tensor's bytes in key order."""
    header: dict[str, object] = {"__metadata__": {"format": "pt", "note": "random weights, tests/real_webui"}}
    offset = 0
    for key, (dtype, shape) in table.items():
        size = math.prod(shape) * _ITEM[dtype]
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for key, (dtype, shape) in table.items():
            f.write(tensor_for(key, dtype, shape).contiguous().numpy().tobytes())
    os.replace(tmp, path)


class VAEApprox(nn.Module):
    """The layer layout of the WebUIs' ``VAEApprox`` (only the state-dict keys and shapes matter)."""

    def __init__(self, latent_channels: int = 4) -> None:
        super().__init__()
        chans = [latent_channels, 8, 16, 32, 64, 32, 16, 8, 3]
        kernels = [7, 5, 3, 3, 3, 3, 3, 3]
        for i, k in enumerate(kernels):
            setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], (k, k)))


def write_approx(path: Path) -> None:
    torch.manual_seed(0)
    torch.save(VAEApprox().state_dict(), path, _use_new_zipfile_serialization=False)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):
        return
    dst.unlink(missing_ok=True)
    os.link(src, dst)
    print(f"linked {dst}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the two files")
    ap.add_argument("--link", type=Path, nargs="*", default=[], help="WebUI models/ folders to hard-link into")
    ap.add_argument("--force", action="store_true", help="rebuild the checkpoint even if it exists")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = json.loads(TABLE.read_text())
    base, approx = args.out / NAME, args.out / APPROX
    if args.force or not base.exists():
        write_base(base, table)
    print(f"{base}: {len(table)} keys, {base.stat().st_size:,} bytes")
    if not approx.exists():
        write_approx(approx)
    for models in args.link:
        _link(base, models / "Stable-diffusion" / NAME)
        _link(approx, models / "VAE-approx" / APPROX)


if __name__ == "__main__":
    main()
