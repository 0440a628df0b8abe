"""The two engines and what they share.

- :mod:`.unclip`: image variations and interpolation with Stable unCLIP 2.1;
- :mod:`.refiner`: the SDXL refiner pass over images or SDXL latents;
- :mod:`.samplers`: the WebUI's sampler / schedule names → diffusers schedulers;
- :mod:`.preview`: cheap live previews of latents.

This module holds what both engines return and report: :class:`Result`, per-image seeds, the progress / preview /
stop callback types, the infotext's number format and version. It imports nothing heavy (no torch).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ProgressFn = Callable[[int, int], None]
"""``progress(step, total)``: called after every sampling step."""

PreviewFn = Callable[[int, Any], None]
"""``preview(step, latents)``: called after every sampling step with the batch's current latents (``[B, 4, h, w]`` as
the UNet sees them; the denoised estimate where the sampler gives one); ``step`` counts as ``progress`` does. The
callee decides whether to decode them (:mod:`.preview`)."""

StopFn = Callable[[], bool]
"""``should_stop()``: polled between steps; True ends the job (Interrupt / Skip)."""


@dataclass
class Result:
    """Images with their infotexts and seeds; ``interrupted`` when a stop request cut the job short."""

    images: list[Any] = field(default_factory=list)  # PIL images
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
    """A number as the infotext writes it: ``7`` not ``7.0``, ``0.25`` as is."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def version() -> str:
    """This extension's version, written to every infotext as ``Reimagine: <version>``."""
    from .. import __version__

    return __version__
