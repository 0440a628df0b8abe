"""The IP-Adapter backend in the hosts (tab, REST): "checkpoint + adapter" model choices, offered only when an
adapter fitting the checkpoint and the ViT-H image encoder are found (``loading/ip_adapter.py``), and the engine
function a job runs with them (``engine/ip_adapter.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..loading.discovery import ModelChoice

BASE_KINDS = ("sd1", "sdxl-base")
IP_ADAPTER_KINDS = ("ip-adapter-sd1", "ip-adapter-sdxl")  # the choices' kinds (and memory plan kinds)
ROLE = "ip-adapter"


@dataclass(frozen=True)
class IPAdapterChoice(ModelChoice):
    """A base checkpoint with an adapter and the image encoder; ``name`` is ``"<base> + <adapter stem>"``."""

    adapter: Path = Path()
    encoder: Path = Path()
    text_tower: Path | None = None  # sd21-unclip-h, for Edit by text

    @property
    def loader_kwargs(self) -> dict[str, str | None]:
        """What the cache's ``ip-adapter`` loader takes besides the base (``load_ip_adapter_pipeline``)."""
        tower = str(self.text_tower) if self.text_tower else None
        return {"adapter": str(self.adapter), "encoder": str(self.encoder), "text_tower": tower}


def is_ip_adapter(choice: Any) -> bool:
    """Whether a model choice is a "checkpoint + adapter" one."""
    return getattr(choice, "kind", None) in IP_ADAPTER_KINDS


def search_folders(
    models_dir: Path | None, model_folders: Sequence[Path]
) -> tuple[Path | None, list[Path], list[Path]]:
    """(WebUI root, extra adapter folders, extra encoder folders): the WebUI layout around ``models_dir``, plus
    ``ipadapter``/``clip_vision`` next to or inside each models folder (the standalone app's ``./models``)."""
    root = Path(models_dir).parent if models_dir else None
    near = [p for folder in map(Path, model_folders) for p in (folder, folder.parent)]
    return root, [p / "ipadapter" for p in near], [p / "clip_vision" for p in near]


def choices(
    bases: Sequence[ModelChoice], unclips: Sequence[ModelChoice], models_dir: Path | None, model_folders: Sequence[Path]
) -> list[IPAdapterChoice]:
    """One choice per base × fitting adapter (by name: ``sd15`` adapters for SD 1.5, ``sdxl`` ones for SDXL), none
    when there is no adapter or no encoder (the unCLIP-H checkpoint's own counts)."""
    from ..loading.ip_adapter import find_adapters, find_image_encoder

    if not bases:
        return []
    root, adapter_folders, encoder_folders = search_folders(models_dir, model_folders)
    adapters = find_adapters(root, adapter_folders)
    unclip_h = [u.location for u in unclips if u.kind == "unclip-h"]
    encoder = find_image_encoder(root, unclip_h, encoder_folders)
    if not adapters or encoder is None:
        return []
    found = []
    for base in bases:
        family = "sd15" if base.kind == "sd1" else "sdxl"
        kind = IP_ADAPTER_KINDS[0] if base.kind == "sd1" else IP_ADAPTER_KINDS[1]
        for adapter in adapters:
            if family in adapter.stem.lower():
                name = f"{base.name} + {adapter.stem}"
                tower = unclip_h[0] if unclip_h else None
                found.append(IPAdapterChoice(name, kind, base.path, base.location, adapter, encoder, tower))
    return found


def unavailable_message(models_dir: Path | None, model_folders: Sequence[Path], unclips: Sequence[Any]) -> str:
    """Why no "checkpoint + adapter" choice is offered: the missing file and its folder, in one line."""
    from ..loading.ip_adapter import find_adapters, find_image_encoder, missing_adapter_message, missing_encoder_message

    root, adapter_folders, encoder_folders = search_folders(models_dir, model_folders)
    if not find_adapters(root, adapter_folders):
        return missing_adapter_message(root)
    if find_image_encoder(root, [u.location for u in unclips if u.kind == "unclip-h"], encoder_folders) is None:
        return missing_encoder_message(root)
    return "No SD 1.5 or SDXL checkpoint (.safetensors) found for IP-Adapter in the models folder"


def batches(options: Any) -> Callable[..., Any]:
    """The engine function for a job with these :class:`IPAdapterOptions` (``iter_batches``'s signature)."""
    from ..engine.ip_adapter import ip_adapter_batches

    return ip_adapter_batches(options)


def strip(options: Any) -> Callable[..., Any]:
    """The slerp strip function for these options, with the unCLIP ``interpolate``'s signature."""
    from ..engine.ip_adapter import interpolate

    return lambda pipe, request, **callbacks: interpolate(pipe, request, options, **callbacks)


def extra_params(extra: dict[str, Any], pipe: Any, options: Any) -> dict[str, Any]:
    """A run's own infotext keys (``GenerationInfo.extra_generation_params``): ``extra`` as the unCLIP run writes
    them, with ``options`` the IP-Adapter backend's instead of unCLIP's (``engine/ip_adapter.py`` ``infotext_items``)."""
    if options is None:
        return extra
    from ..engine.ip_adapter import infotext_items

    merged = {**extra, **infotext_items(pipe, options)}
    return {key: value for key, value in merged.items() if value is not None}


# ---------------------------------------------------------------------------------------------------------------------
# Latents kept for "Refine with SDXL" (latent mode on an SDXL base's outputs)

KEPT_LATENTS = "reimagine_kept_latents"  # the host attribute: {infotext: [1, 4, h, w] latents} of the last batch
LATENTS_NOT_KEPT = "latents not kept"
"""Why an SDXL base's output is refined as Pixel: it is not from the last batch (``Refiner post-pass mode: Pixel
(latents not kept)``, as the txt2img hook says ``Pixel (Hires fix)``)."""


def forget_latents(host: Any) -> None:
    """Drop the kept latents (a new job starts)."""
    setattr(host, KEPT_LATENTS, {})


def keep_latents(host: Any, result: Any) -> None:
    """Keep the latents of ``result`` (an SDXL base's batch, ``engine/ip_adapter.py`` ``IPAdapterResult``) by
    infotext, in place of any kept before: memory stays bounded by one batch."""
    latents = getattr(result, "latents", None)
    if latents is None or getattr(result, "latent_family", "") != "sdxl":
        return
    setattr(host, KEPT_LATENTS, {text: latents[i : i + 1] for i, text in enumerate(result.infotexts)})


def kept_latents(host: Any, text: str) -> Any:
    """The kept SDXL latents ``[1, 4, h, w]`` of the output whose infotext is ``text``, or None."""
    return getattr(host, KEPT_LATENTS, {}).get(text) if text else None


def from_sdxl_adapter(text: str) -> bool:
    """Whether an infotext is an IP-Adapter output of an SDXL base (its adapter is an ``sdxl`` one)."""
    from .. import infotext

    return "sdxl" in (infotext.parse(text).get("IP-Adapter") or "").lower() if text else False


def with_refiner_mode(text: str, mode: str) -> str:
    """``text`` with its refiner mode set to ``mode`` (``Pixel (latents not kept)``: why latent mode did not run)."""
    from .. import infotext
    from ..params import REFINER

    params = infotext.parse(text)
    prompt, negative = params.pop("Prompt"), params.pop("Negative prompt")
    params[str(REFINER["mode"].infotext)] = mode
    return infotext.build(prompt, negative, params)
