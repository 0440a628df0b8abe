"""The engines: Stable unCLIP variations (:mod:`.unclip`) and the SDXL refiner post-pass (:mod:`.refiner`), with the
schedulers (:mod:`.samplers`) and dtype/device choice (:mod:`.precision`) they share.

What both engines share lives here: the result type, seeds, the progress/stop callback types, how numbers and the
version are written into infotexts. No torch, gradio or WebUI at import time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]


@dataclass
class Result:
    """Images with their infotexts and seeds; ``interrupted`` when a stop request cut the job short."""

    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    interrupted: bool = False
    steps: int = 0  # sampling steps run (what the progress callback counted)


@dataclass(frozen=True)
class ModelIdentity:
    """What the infotext says about the model."""

    name: str = ""
    hash: str = ""


def model_identity(pipe: Any) -> ModelIdentity:
    """Name and short hash of a loaded pipeline (set by the loader as ``pipe.reimagine_info``)."""
    info = getattr(pipe, "reimagine_info", None)
    return ModelIdentity(getattr(info, "name", "") or "", getattr(info, "hash", "") or "")


def seed_list(seed: int, count: int) -> list[int]:
    """Per-image seeds ``seed, seed+1, …``; seed −1 draws a random start."""
    start = random.randrange(2**32) if seed == -1 else seed
    return [(start + i) % 2**32 for i in range(count)]


def format_number(value: float) -> str:
    """A number as infotext writes it: ``7`` for 7.0, else the shortest form (``0.25``)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def version() -> str:
    """The extension's version (the infotext's ``Reimagine`` value)."""
    from .. import __version__

    return __version__
