"""Neo: stand-in of ``backend/args.py`` (Haoming02/sd-webui-forge-classic, branch neo, commit
089030f11dd516c640cfedc359db2eebf48e8a0b): ComfyUI's flag names (its header cites ComfyUI v0.7.0 cli_args.py), not
Forge 2's ``--always-*`` / ``--*-in-*`` ones. ``args`` is the parsed namespace (``parser.parse_known_args()``); a test
sets a field to simulate a flag (``--lowvram`` -> ``args.lowvram = True``)."""

from __future__ import annotations

import argparse

parser = argparse.ArgumentParser(add_help=False)
for _flag in (
    "--disable-gpu-warning",
    "--force-fp32",
    "--force-fp16",
    "--fp32-unet",
    "--bf16-unet",
    "--fp16-unet",
    "--fp8_e4m3fn-unet",
    "--fp8_e5m2-unet",
    "--fp32-vae",
    "--bf16-vae",
    "--fp16-vae",
    "--cpu-vae",
    "--fp32-text-enc",
    "--bf16-text-enc",
    "--fp16-text-enc",
    "--cpu-text-enc",
    "--use-pytorch-cross-attention",
    "--force-upcast-attention",
    "--sage",
    "--flash",
    "--xformers",
    "--nunchaku",
    "--disable-sage",
    "--disable-flash",
    "--disable-xformers",
    "--deterministic",
    "--disable-smart-memory",
    "--force-non-blocking",
    "--cuda-malloc",
    "--pin-shared-memory",
    "--fast-fp16",
):
    parser.add_argument(_flag, action="store_true")
_vram = parser.add_mutually_exclusive_group()
for _flag in ("--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram", "--cpu"):
    _vram.add_argument(_flag, action="store_true")
parser.add_argument("--gpu-device-id", type=int, default=None)
parser.add_argument("--reserve-vram", type=float, default=None)
parser.add_argument("--cuda-stream", type=int, nargs="?", const=2, default=None)
parser.add_argument("--directml", type=int, nargs="?", const=-1, default=None)

args, _ = parser.parse_known_args([])


class dynamic_args:  # noqa: N801 -- the WebUI's name
    """Parameters used throughout the WebUI (``set in modules/sd_models/forge_model_reload``)."""

    embedding_dir = None
    forge_unet_storage_dtype = None
