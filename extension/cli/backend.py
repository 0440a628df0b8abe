"""``--backend unclip|ip-adapter`` for ``vary`` and ``interpolate``: the IP-Adapter backend's flags, its files and its
engine functions (``engine/ip_adapter.py``). With ``ip-adapter``, ``--model`` is the SD 1.5 / SDXL base checkpoint."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ParamError, ReimagineError
from ..params import IP_ADAPTER
from .common import add_param


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--ip-adapter``, ``--image-encoder``, ``--image-strength``, ``--variation-strength`` (Keep
    composition is a table option of both backends, ``--keep-composition``)."""
    add_param(parser, IP_ADAPTER["backend"])
    add_param(parser, IP_ADAPTER["ip_adapter"], "--ip-adapter", default=None)
    parser.add_argument(
        "--image-encoder",
        type=Path,
        default=None,
        help="IP-Adapter's OpenCLIP ViT-H encoder: a models/clip_vision file, an HF folder or sd21-unclip-h "
        "(default: found in the models folder's clip_vision/, else its unCLIP-H checkpoint)",
    )
    add_param(parser, IP_ADAPTER["image_strength"])
    add_param(parser, IP_ADAPTER["variation_strength"])


def is_ip_adapter(args: argparse.Namespace) -> bool:
    """Whether the run uses the IP-Adapter backend."""
    return getattr(args, "backend", "unclip") == "ip-adapter"


def options(args: argparse.Namespace) -> Any:
    """The checked :class:`IPAdapterOptions` (a ParamError, one line and exit 2, before any model is loaded)."""
    from ..engine.ip_adapter import IPAdapterOptions

    return IPAdapterOptions(args.image_strength, args.variation_strength).validated()


def load(args: argparse.Namespace, edit: Any = None) -> Any:
    """Base + adapter + encoder -> the pipeline; each missing piece is one line naming the file and the folder. An
    ``edit`` (text diff) with a plus adapter is refused before anything heavy is read."""
    from ..engine.ip_adapter import PLUS_TEXT_DIFF
    from ..loading.defaults import model_folders
    from ..loading.discovery import scan
    from ..loading.ip_adapter import (
        adapter_info,
        base_kind,
        find_image_encoder,
        load_ip_adapter_pipeline,
        missing_encoder_message,
        pick_adapter,
    )

    if not args.model:
        raise ReimagineError("--backend ip-adapter needs --model: your SD 1.5 or SDXL checkpoint (.safetensors)")
    models_dir = model_folders(args.models_dir, os.environ, Path.cwd())[0]
    webui_root = Path(models_dir).parent
    kind = base_kind(args.model, args.config_root)
    extra = [Path(models_dir) / "ipadapter", Path(models_dir) / "ControlNet"]
    adapter = pick_adapter(kind, args.ip_adapter, webui_root, extra)
    if edit is not None and adapter_info(adapter).uses_hidden_states:
        raise ParamError(PLUS_TEXT_DIFF.format(adapter=adapter.stem))
    unclips = [choice.location for choice in scan([Path(models_dir)], kinds=("unclip-h",))]
    encoder = args.image_encoder or find_image_encoder(webui_root, unclips, [Path(models_dir) / "clip_vision"])
    if encoder is None:
        raise ReimagineError(missing_encoder_message(webui_root))
    return load_ip_adapter_pipeline(
        args.model,
        adapter,
        encoder,
        config_root=args.config_root,
        device=args.device,
        text_tower=unclips[0] if unclips else None,
    )


def batches(args: argparse.Namespace) -> Callable[..., Any] | None:
    """The engine function ``make_outputs`` runs (None = unCLIP's own)."""
    if not is_ip_adapter(args):
        return None
    from ..engine.ip_adapter import ip_adapter_batches

    return ip_adapter_batches(options(args))


def interpolate(args: argparse.Namespace) -> Callable[..., Any]:
    """The strip function: unCLIP's, or the IP-Adapter one with these options."""
    if not is_ip_adapter(args):
        from ..engine.unclip import interpolate as unclip_interpolate

        return unclip_interpolate
    from ..engine import ip_adapter

    chosen = options(args)

    def strip(pipe: Any, request: Any, **callbacks: Any) -> Any:
        return ip_adapter.interpolate(pipe, request, chosen, **callbacks)

    return strip
