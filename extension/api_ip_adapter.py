"""The REST API's IP-Adapter backend (``"backend": "ip-adapter"`` on ``/reimagine/v1/variations`` and
``/interpolate``): which "checkpoint + adapter" model a request means, its checked options, and the engine calls
(``engine/ip_adapter.py``). Everything is checked before the job runs: bad values are HTTP 422, a missing model 404."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .params import IP_ADAPTER
from .rest import ApiError

UNCLIP_KINDS = ("unclip-h", "unclip-l")
IP_ADAPTER_KINDS = ("ip-adapter-sd1", "ip-adapter-sdxl")  # runtime/ip_adapter.py's choice kinds
NO_MODEL = (
    "no 'checkpoint + IP-Adapter' model found: put an SD 1.5 / SDXL checkpoint in models/Stable-diffusion, an adapter "
    "(ip-adapter_sd15.safetensors, ip-adapter_sdxl_vit-h.safetensors, ...) in models/ipadapter and the ViT-H encoder "
    "(CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors) in models/clip_vision; see GET /reimagine/v1/models"
)


@dataclass
class IPAdapterJob:
    """One request's IP-Adapter settings."""

    entry: Any  # the host's IPAdapterChoice (``adapter``, ``encoder`` paths)
    options: Any  # engine.ip_adapter.IPAdapterOptions

    @classmethod
    def resolve(
        cls, backend: Any, name: str | None, fields: dict[str, Any], find_model: Callable[..., Any]
    ) -> tuple[Any, IPAdapterJob | None]:
        """(model entry, job or None for unCLIP) from the request's ``model`` and backend fields."""
        from .engine.ip_adapter import IPAdapterOptions

        values = IP_ADAPTER.validate(fields)
        entries = [entry for entry in backend.models() if entry.kind in IP_ADAPTER_KINDS]
        named_ip = bool(name) and any(entry.name == name for entry in entries)
        if values["backend"] != "ip-adapter" and not named_ip:
            return find_model(backend, name, UNCLIP_KINDS), None
        if not entries:
            raise ApiError(404, NO_MODEL)
        entry = find_model(backend, name, IP_ADAPTER_KINDS) if named_ip else _by_base(entries, name, values)
        options = IPAdapterOptions(values["image_strength"], values["variation_strength"]).validated()
        return entry, cls(entry, options)

    def check_edit(self, entry: Any, diff: Any, frames: int | None) -> None:
        """A text diff needs a plain adapter, and text strips the unCLIP backend (HTTP 422 before anything runs)."""
        from .engine.ip_adapter import PLUS_TEXT_DIFF
        from .loading.ip_adapter import adapter_info

        if diff is not None and frames:
            raise ApiError(422, "text_diff with frames (a strip) needs an unCLIP model; give frames only with unclip")
        if diff is not None and adapter_info(entry.adapter).uses_hidden_states:
            raise ApiError(422, PLUS_TEXT_DIFF.format(adapter=Path(entry.adapter).stem))

    def generate(self, pipe: Any, request: Any, **callbacks: Any) -> Any:
        """All variations of ``request`` (``IPAdapterVariation``)."""
        from .engine.ip_adapter import IPAdapterVariation

        return IPAdapterVariation(pipe)(request, self.options, **callbacks)

    def interpolate(self, pipe: Any, request: Any, **callbacks: Any) -> Any:
        """A slerp strip (``engine/ip_adapter.py`` ``interpolate``)."""
        from .engine.ip_adapter import interpolate

        return interpolate(pipe, request, self.options, **callbacks)

    def parameters(self) -> dict[str, Any]:
        """What the answer's ``parameters`` adds."""
        return {
            "backend": "ip-adapter",
            "ip_adapter": Path(self.entry.adapter).stem,
            "image_strength": self.options.image_strength,
            "variation_strength": self.options.variation_strength,
        }


def _by_base(entries: Sequence[Any], name: str | None, values: dict[str, Any]) -> Any:
    """The entry whose checkpoint is ``name`` (file name, path or stem; any when empty) and whose adapter is
    ``ip_adapter`` (file name or stem; the first fitting one when empty)."""
    if name and ("/" in name or "\\" in name or ".." in name):
        raise ApiError(422, f"model must be a name from GET /reimagine/v1/models, not a path: {name!r}")
    adapter = values["ip_adapter"]
    for entry in entries:
        base = Path(entry.location)
        if name and name not in (base.name, base.stem, entry.path):
            continue
        if adapter and adapter not in (Path(entry.adapter).name, Path(entry.adapter).stem):
            continue
        return entry
    names = ", ".join(entry.name for entry in entries)
    wanted = f"{name or 'any checkpoint'} with {adapter or 'any adapter'}"
    raise ApiError(404, f"no IP-Adapter model for {wanted}; available: {names}")
