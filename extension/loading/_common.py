"""Helpers shared by the unCLIP and SDXL loaders."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..device.precision import Precision
from ..errors import HubUnreachableError, ModelLoadError
from .checkpoint import StateDict, take_prefix
from .configs import read_json
from .detect import check_role, describe, folder_kind, pipeline_kind
from .info import ModelInfo
from .source import Source, hub_offline, is_network_error

T = TypeVar("T")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence diffusers/transformers warnings that are expected while converting (e.g. unused text layer 23)."""
    loggers = [logging.getLogger(n) for n in ("diffusers", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def build(what: str, name: str, fn: Callable[[], T]) -> T:
    """Run one component build; any failure becomes a ModelLoadError naming the file and the component."""
    try:
        with quiet():
            return fn()
    except ModelLoadError as e:
        raise ModelLoadError(f"{name}: cannot load the {what}: {e}") from None
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "appear to be missing" in msg or "does not seem to contain" in msg:
            raise ModelLoadError(
                f"{name} has no {what} weights (the file is incomplete or not this model type)"
            ) from None
        raise ModelLoadError(f"{name}: cannot load the {what}: {msg}") from None


def finish(model: T, what: str, name: str, prec: Precision) -> T:
    """Check that every weight was loaded (nothing left on 'meta'), then move to the target device/dtype."""
    missing = [n for n, p in model.named_parameters() if p.is_meta]  # type: ignore[attr-defined]
    if missing:
        raise ModelLoadError(
            f"{name}: the {what} weights are incomplete ({len(missing)} missing, e.g. {missing[0]}); "
            "the file is damaged or not this model type"
        )
    return model.to(device=prec.device, dtype=prec.dtype).eval()  # type: ignore[attr-defined]


@dataclasses.dataclass
class SingleFileParts:
    """Builds diffusers components from the original-layout state dict ``sd`` of the file ``name``, with the configs
    of the folder ``cfg``. Each component's keys are moved out of ``sd`` before its conversion; each component is
    checked complete and moved to ``prec``'s device/dtype; failures are ModelLoadErrors naming file and component."""

    sd: StateDict
    cfg: Path
    name: str
    prec: Precision

    def _build(self, what: str, fn: Callable[[], T]) -> T:
        return finish(build(what, self.name, fn), what, self.name, self.prec)

    def _kwargs(self, subfolder: str) -> dict[str, Any]:
        return {
            "config": str(self.cfg),
            "subfolder": subfolder,
            "local_files_only": True,
            "torch_dtype": self.prec.dtype,
        }

    def unet(self) -> Any:
        """The UNet (``model.diffusion_model.*``), with the model-level ``from_single_file``."""
        from diffusers import UNet2DConditionModel

        return self._build(
            "UNet",
            lambda: UNet2DConditionModel.from_single_file(
                take_prefix(self.sd, "model.diffusion_model."), **self._kwargs("unet")
            ),
        )

    def vae(self) -> Any:
        """The VAE (``first_stage_model.*``), with the model-level ``from_single_file``."""
        from diffusers import AutoencoderKL

        return self._build(
            "VAE",
            lambda: AutoencoderKL.from_single_file(take_prefix(self.sd, "first_stage_model."), **self._kwargs("vae")),
        )

    def text_encoder(self, cls: type, what: str, prefix: str, subfolder: str) -> Any:
        """A ``CLIPTextModel[WithProjection]`` from the keys under ``prefix`` (``create_diffusers_clip_model_from_ldm``,
        config ``cfg / subfolder``)."""
        from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

        return self._build(
            what,
            lambda: create_diffusers_clip_model_from_ldm(cls, take_prefix(self.sd, prefix), **self._kwargs(subfolder)),
        )


def scheduler(folder: Path) -> Any:
    """Scheduler from ``folder/scheduler_config.json`` (class from its ``_class_name``)."""
    import diffusers

    cfg = read_json(folder / "scheduler_config.json")
    cls = getattr(diffusers, cfg.get("_class_name", ""), None)
    if cls is None:
        raise ModelLoadError(f"Unknown scheduler class in {folder}")
    return cls.from_config(cfg)


def attach_info(pipe: Any, src: Source, kind: str) -> Any:
    """Set ``pipe.reimagine_info``."""
    pipe.reimagine_info = ModelInfo(name=src.name, kind=kind, path=src.location, source=src.type)
    return pipe


def load_folder(cls: type, src: Source, role: str, prec: Precision, config_root: Path | None) -> Any:
    """``cls.from_pretrained(folder, local_files_only=True)`` after checking the folder's kind for ``role``."""
    read_json(src.path / "model_index.json")  # a broken index is reported as such, not as a wrong model type
    kind = folder_kind(src.path, config_root=config_root)
    check_role(kind, role, src.path.name)
    try:
        with quiet():
            pipe = cls.from_pretrained(src.location, local_files_only=True, torch_dtype=prec.dtype)
    except Exception as e:
        raise ModelLoadError(f"Cannot load the model folder {src.location}: {_first_line(e)}") from None
    return attach_info(pipe.to(prec.device), src, kind)


def load_hub(cls: type, src: Source, role: str, prec: Precision) -> Any:
    """``cls.from_pretrained(hub_id)``; offline only from the local hub cache, with a clear error otherwise."""
    offline = hub_offline()
    try:
        with quiet():
            pipe = cls.from_pretrained(src.location, torch_dtype=prec.dtype, local_files_only=offline)
    except Exception as e:
        if offline or is_network_error(e):
            raise HubUnreachableError(hub_unreachable_message(src.location, offline=offline)) from None
        raise ModelLoadError(f"Could not download {src.location} from the Hugging Face hub: {_first_line(e)}") from None
    kind = pipeline_kind(pipe)
    try:
        check_role(kind, role, src.location)
    except ModelLoadError:
        del pipe
        gc.collect()
        raise
    return attach_info(pipe.to(prec.device), src, kind)


def hub_unreachable_message(hub_id: str, *, offline: bool) -> str:
    """What to do about a hub id that cannot be loaded without the hub (offline mode, or no network)."""
    why = "downloading is off (offline mode)" if offline else "the Hugging Face hub cannot be reached (no network)"
    return (
        f"{hub_id} looks like a Hugging Face hub id, but it is not a local file or folder and {why}. "
        "Download it while online, or choose a local .safetensors/.ckpt file or diffusers folder."
    )


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def free_memory(device: torch.device | None = None) -> None:
    """Collect garbage and return cached CUDA memory (``device`` given and not CUDA: nothing to return, skip)."""
    if device is not None and device.type != "cuda":
        return
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = [
    "SingleFileParts",
    "attach_info",
    "build",
    "describe",
    "finish",
    "free_memory",
    "hub_unreachable_message",
    "load_folder",
    "load_hub",
    "quiet",
    "scheduler",
]
