"""The runtime seam between the Reimagine jobs and where they run: the WebUI (``extension.webui``) or the standalone
app. Used by the tab, the WebUI's refiner hook and the REST API alike. A :class:`Host` answers:

- which models exist (:meth:`Host.models`) and how to load one with the right memory handling
  (:meth:`Host.pipeline`, a context manager that frees room first and always restores afterwards);
- how a job gets the device exclusively (:meth:`Host.job_slot`: the WebUI's queue lock and ``shared.state``, or a
  lock) and how it reports progress and learns it must stop (:meth:`Host.control` → :class:`~.control.Control`);
- what the user's settings say (default model, default noise preset, keep-resident / offload).

The tab's gradio-shaped surface (buttons, output panel, saving, gallery) is ``extension.ui.surface.TabSurface``; the
REST API's backend is ``extension.runtime.backend.ApiBackend``. This module imports neither gradio nor the WebUI.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..loading.discovery import OFFERED_KINDS, REFINER_KINDS, UNCLIP_KINDS, ModelChoice, scan
from .control import Control

log = logging.getLogger(__name__)

MEMORY_MODES = ("Keep resident", "Offload after each run")
"""Setting values: keep the Reimagine/refiner pipelines on the GPU between runs, or move them to RAM after each."""

ACTIVATION_MARGIN = 3 * 1024**3
"""Bytes kept free for activations and the VAE decode, on top of the weights, when deciding whether the WebUI's own
model has to leave the GPU (768² unCLIP in fp16 peaks at roughly 2–3 GiB above its weights)."""


def weights_bytes(pipe: Any, device: Any) -> int:
    """Bytes of ``pipe``'s parameters that are not on ``device`` yet."""
    import torch

    target = torch.device(device) if device is not None else None
    total = 0
    for component in getattr(pipe, "components", {}).values():
        if isinstance(component, torch.nn.Module):
            for tensor in list(component.parameters()) + list(component.buffers()):
                if target is None or tensor.device.type != target.type:
                    total += tensor.numel() * tensor.element_size()
    return total


def source_bytes(location: Path) -> int:
    """Size of a checkpoint file, or of the weight files of a diffusers folder."""
    if location.is_file():
        return location.stat().st_size
    return sum(p.stat().st_size for p in location.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())


class Host(ABC):
    """Where the jobs run. Subclasses: ``extension.webui.host.WebUIHost`` and
    ``extension.ui.standalone.StandaloneHost``."""

    def __init__(self, *, config_root: Path | None = None, cache: Any = None) -> None:
        self.config_root = Path(config_root) if config_root else None
        self._cache = cache
        self._models: list[ModelChoice] | None = None
        self._models_lock = threading.Lock()
        self._last_plan_line = ""

    # -- settings --------------------------------------------------------------------------------------------------
    @abstractmethod
    def model_folders(self) -> list[Path]:
        """Folders searched (recursively) for models."""

    def extra_models(self) -> list[Path]:
        """Model files / diffusers folders given explicitly (the standalone app's ``--model``)."""
        return []

    def default_model(self) -> str | None:
        """The setting "default model" (a model name), if any."""
        return None

    def default_noise_preset(self) -> str | None:
        """The setting "default noise preset", if any (None = the parameter table's default)."""
        return None

    def memory_mode(self) -> str:
        """One of :data:`MEMORY_MODES`."""
        return MEMORY_MODES[0]

    def karlo_stats(self) -> str | None:
        """The user's Karlo ViT-L-14 statistics path (None = look in models/karlo/)."""
        return None

    def models_dir(self) -> Path | None:
        """The WebUI-style ``models`` folder (for ``models/karlo``)."""
        return None

    def device(self) -> Any:
        """Torch device for our pipelines (None = automatic)."""
        return None

    def dtype(self) -> Any:
        """Torch dtype for our pipelines (None = automatic per device)."""
        return None

    # -- models ----------------------------------------------------------------------------------------------------
    def models(self, kinds: Sequence[str] = OFFERED_KINDS, refresh: bool = False) -> list[ModelChoice]:
        """The models of ``kinds`` (default: every kind offered, as ``GET /reimagine/v1/models`` lists them);
        ``refresh`` rescans the folders."""
        with self._models_lock:
            if self._models is None or refresh:
                self._models = scan(
                    self.model_folders(), kinds=OFFERED_KINDS, config_root=self.config_root, extra=self.extra_models()
                )
            return [choice for choice in self._models if choice.kind in kinds]

    def find(self, name: str | None, kinds: Sequence[str] = UNCLIP_KINDS) -> ModelChoice:
        """The model called ``name`` (a name from :meth:`models`, never a path); ModelLoadError otherwise."""
        choices = self.models(kinds)
        what = (
            "unCLIP" if tuple(kinds) == UNCLIP_KINDS else "SDXL refiner" if tuple(kinds) == REFINER_KINDS else "model"
        )
        if not name:
            raise ModelLoadError(f"No {what} model selected. {self._where_to_put(what)}")
        for choice in choices:
            if choice.name == name:
                return choice
        available = ", ".join(choice.name for choice in choices) or "none"
        raise ModelLoadError(
            f"Model {name!r} is not among the {what} models (available: {available}); a file added since the list "
            "was made appears after a refresh (🔄 next to the model list)."
        )

    def _where_to_put(self, what: str) -> str:
        folders = ", ".join(str(f) for f in self.model_folders()) or "a models folder"
        return f"Put {what} checkpoints (.safetensors/.ckpt) or diffusers folders into {folders}, then press 🔄."

    def choose_default(self, kinds: Sequence[str] = UNCLIP_KINDS) -> str | None:
        """The model selected when the tab opens: the setting, else the first one found."""
        names = [choice.name for choice in self.models(kinds)]
        wanted = self.default_model() if tuple(kinds) == UNCLIP_KINDS else None
        if wanted in names:
            return wanted
        return names[0] if names else None

    # -- loading and memory ----------------------------------------------------------------------------------------
    @property
    def cache(self) -> Any:
        """The pipeline cache (``extension.loading.ModelCache``), created on first use."""
        if self._cache is None:
            from ..loading import ModelCache

            self._cache = ModelCache(max_items=2)
        return self._cache

    def loader_kwargs(self, role: str) -> dict[str, Any]:
        """Keyword arguments for ``ModelCache.get`` / the loaders."""
        kwargs: dict[str, Any] = {"config_root": self.config_root, "device": self.device(), "dtype": self.dtype()}
        if role == "unclip":
            kwargs["karlo_stats"] = self.karlo_stats() or None
            kwargs["models_dir"] = self.models_dir()
        return kwargs

    def bytes_needed(self, choice: ModelChoice, role: str) -> int:
        """Device memory a run with ``choice`` needs beyond what it already holds (weights + activations)."""
        kwargs = self.loader_kwargs(role)
        try:
            key = self.cache.key(role, choice.location, **kwargs)
        except Exception:  # noqa: BLE001 - a vanished file fails properly in get()
            key = None
        if key is not None and key in self.cache:
            weights = weights_bytes(self.cache.get(role, choice.location, **kwargs), self.device())
        else:
            weights = source_bytes(choice.location)
        return weights + ACTIVATION_MARGIN

    def make_room(self, needed: int) -> Any:
        """Free device memory for a run needing ``needed`` bytes; returns a token for :meth:`restore` (None when
        nothing had to move)."""
        return None

    def restore(self, token: Any) -> None:
        """Undo :meth:`make_room` (always called, also after a failed run)."""
        return None

    @contextlib.contextmanager
    def pipeline(self, choice: ModelChoice, role: str = "unclip", job: dict[str, Any] | None = None) -> Iterator[Any]:
        """The loaded pipeline for ``choice``, with room made for it first and everything restored afterwards.

        ``role``: "unclip" or "refiner"; ``job``: the output ``width``, ``height`` and ``batch_size`` the memory plan
        is made for (missing: the model's native size, batch 1). The pipeline stays on the device between runs ("Keep resident") when it fits
        next to the WebUI's model; when room had to be made for it, or in "Offload after each run" mode, it goes back
        to RAM at the end, before the WebUI's model returns.
        """
        token = None
        pipe = None
        plan = self.memory_plan(choice, role, job)
        offloaded = plan.mode in ("model_offload", "sequential_offload")
        try:
            token = self.make_room(plan.estimate if offloaded else self.bytes_needed(choice, role))
            pipe = self.cache.get(role, choice.location, **self.loader_kwargs(role))
            pipe = self._place(pipe, plan, choice, role)
            pipe.reimagine_nan_check = self.nan_check()  # engine/text_encoding.py check_latents
            yield pipe
        finally:
            try:
                if pipe is not None and plan.mode == "model_offload":
                    pipe.maybe_free_model_hooks()  # the last component used leaves the GPU too
                elif (
                    pipe is not None and not offloaded and (token is not None or self.memory_mode() == MEMORY_MODES[1])
                ):
                    self._offload(pipe)
            finally:
                self.restore(token)

    def nan_check(self) -> Callable[[Any, str], None] | None:
        """The host's check of sampled latents (None: the engine's own, which refuses any NaN/inf)."""
        return None

    def memory_flags(self) -> Any:
        """The user's / WebUI's memory and precision flags (``extension.device.memory.MemoryFlags``; none here)."""
        from ..device.memory import MemoryFlags

        return MemoryFlags()

    def free_memory_estimate(self) -> int | None:
        """Free device bytes for the memory plan (None = ask the driver)."""
        return None

    def compile_unet(self) -> bool:
        """Whether to ``torch.compile`` resident UNets (a setting; off by default)."""
        return False

    def memory_plan(self, choice: ModelChoice, role: str, params: dict[str, Any] | None = None) -> Any:
        """The memory plan for a job with ``choice`` (``extension.device.memory.decide``), logged at INFO."""
        from ..device.memory import decide, job_for

        kind = choice.kind if choice.kind in ("unclip-h", "unclip-l") else role
        device = self.device()
        flags = self.memory_flags()
        job = job_for(kind, params)
        plan = decide(device if device is not None else "cpu", flags, job, free=self.free_memory_estimate())
        line = (
            f"sd-webui-reimagine: memory plan {choice.name} {job.width}x{job.height} x{job.batch}: {plan.describe()} "
            f"[flags: {', '.join(flags.flag(name) for name in flags.active()) or 'none'}]"
        )
        if line != self._last_plan_line:  # a new plan is announced; the same one again is not repeated
            self._last_plan_line = line
            self.announce(line)
        return plan

    def announce(self, line: str) -> None:
        """A line for the user's console (here the log at INFO; the WebUI prints it, as its own messages are)."""
        log.info(line)

    def _place(self, pipe: Any, plan: Any, choice: ModelChoice, role: str) -> Any:
        """Put ``pipe`` where ``plan`` says (``extension.device.memory.apply_plan``; a pipeline under sequential
        offload that needs another plan is reloaded)."""
        from ..device.memory import apply_plan

        if not hasattr(pipe, "enable_model_cpu_offload"):  # not a diffusers pipeline (test doubles)
            self._to_device(pipe)
            return pipe
        compile_unet = self.compile_unet()
        device = self.device()
        if device is None:
            from ..device.precision import pick

            device = pick().device
        try:
            return apply_plan(pipe, plan, device, compile_unet=compile_unet)
        except ValueError:
            self.cache.unload(role, choice.location, **self.loader_kwargs(role))
            pipe = self.cache.get(role, choice.location, **self.loader_kwargs(role))
            return apply_plan(pipe, plan, device, compile_unet=compile_unet)

    def _to_device(self, pipe: Any) -> None:
        device = self.device()
        if device is None:
            from ..device.precision import pick

            device = pick().device
        import torch

        if getattr(pipe, "device", None) is not None and torch.device(pipe.device).type != torch.device(device).type:
            pipe.to(device)

    def _offload(self, pipe: Any) -> None:
        import torch

        if getattr(pipe, "device", None) is not None and torch.device(pipe.device).type != "cpu":
            pipe.to("cpu")
            from ..loading import free_memory

            free_memory()

    # -- running ---------------------------------------------------------------------------------------------------
    @abstractmethod
    def control(self) -> Control:
        """The :class:`Control` of the job that runs now."""

    def interrupt(self) -> None:
        """The Interrupt button: the first click during a multi-batch run stops after the batch, as in txt2img."""
        control = self.control()
        if not control.stopping and control.jobs > 1 and self.interrupt_after_current():
            control.stop_generating()
            self.notify("Generation will stop after finishing this image, click again to stop immediately.")
        else:
            control.interrupt()

    def notify(self, message: str) -> None:
        """A short message for the user (the WebUI shows a toast; the standalone app logs it)."""
        log.info("reimagine: %s", message)

    def interrupt_after_current(self) -> bool:
        """The WebUI's "interrupt after current batch" behaviour (first click finishes the batch)."""
        return False

    def skip(self) -> None:
        """The Skip button."""
        self.control().skip()

    def release(self) -> None:
        """Drop every loaded pipeline and free its memory (Reload UI); the next job loads its model again."""
        if self._cache is not None:
            self._cache.clear()

    @abstractmethod
    def job_slot(self, description: str) -> contextlib.AbstractContextManager[Control]:
        """A context in which one job runs exclusively (the WebUI's ``queue_lock`` + ``shared.state``)."""
