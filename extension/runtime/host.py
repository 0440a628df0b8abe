"""The seam between the Reimagine tab and where it runs: the WebUI (``extension.webui``) or the standalone app.

The tab builder (:mod:`extension.ui.tab`) only talks to a :class:`Host`. A host answers five questions:

- which models exist (:meth:`Host.models`) and how to load one with the right memory handling
  (:meth:`Host.pipeline`, a context manager that frees room first and always restores afterwards);
- how a button's handler runs (:meth:`Host.run`: the WebUI's queue and progress bar, or a lock and gradio's progress);
- how a running job reports progress and learns it must stop (:meth:`Host.control` → :class:`Control`);
- what the output panel is (:meth:`Host.output_panel`) and where results are saved (:meth:`Host.save`);
- what the user's settings say (default model, default noise preset, keep-resident / offload).

The same host also serves the REST API (``extension.api.Backend``: ``models()``, ``load()``, ``run_job()``).
This module imports neither gradio nor the WebUI.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..loading.discovery import OFFERED_KINDS, REFINER_KINDS, UNCLIP_KINDS, ModelChoice, scan

log = logging.getLogger(__name__)

MEMORY_MODES = ("Keep resident", "Offload after each run")
"""Setting values: keep the Reimagine/refiner pipelines on the GPU between runs, or move them to RAM after each."""

ACTIVATION_MARGIN = 3 * 1024**3
"""Bytes kept free for activations and the VAE decode, on top of the weights, when deciding whether the WebUI's own
model has to leave the GPU (768² unCLIP in fp16 peaks at roughly 2–3 GiB above its weights)."""


class Control:
    """What a running job reports to and asks: progress, previews, and whether to stop.

    The base class keeps its own flags (the standalone app); the WebUI's subclass maps everything to
    ``shared.state``. ``jobs`` counts batches (or one interpolation strip); ``step/steps`` are within a job.
    """

    def __init__(self) -> None:
        self.jobs = 0
        self.job_no = 0
        self.step_no = 0
        self.steps = 0
        self.text = ""
        self.latest_preview: Any = None
        self.previews = 0  # previews shown since the app started
        self.preview_step = 0  # the step of the job's last live preview (0 = none yet)
        self.preview_every = 1  # live preview interval in steps (the cheap decode costs next to nothing)
        self._interrupted = False
        self._skipped = False
        self._stopping = False
        self.listeners: list[Callable[[Control], None]] = []

    # -- reporting -----------------------------------------------------------------------------------------------
    def begin(self, jobs: int, steps: int, text: str = "") -> None:
        """A run of ``jobs`` jobs of ``steps`` sampling steps each starts."""
        self.jobs, self.steps, self.job_no, self.step_no, self.text = jobs, steps, 0, 0, text
        self.preview_step = 0
        self._notify()

    def step(self, step: int, steps: int) -> None:
        """Sampling step ``step`` of ``steps`` in the current job is done."""
        self.step_no, self.steps = step, steps
        self._notify()

    def next_job(self, text: str = "") -> None:
        """The current job is finished; the next one starts."""
        self.job_no += 1
        self.step_no = self.preview_step = 0
        if text:
            self.text = text
        self._notify()

    def preview(self, image: Any) -> None:
        """Show ``image`` as the live preview."""
        self.latest_preview = image
        self.previews += 1
        self._notify()

    # -- live previews during sampling -----------------------------------------------------------------------------
    def previews_enabled(self) -> bool:
        """Whether live previews are shown at all."""
        return True

    def preview_interval(self) -> int:
        """Sampling steps between two live previews: −1 = only the finished batch, 0 = every step."""
        return self.preview_every

    def preview_grid(self) -> bool:
        """Preview the whole batch as a grid (else its first image)."""
        return True

    def preview_due(self) -> bool:
        """Whether the step just reported (:meth:`step`) gets a live preview (the WebUI's rule,
        ``engine.preview.due``)."""
        from ..engine.preview import due

        return due(self.step_no, self.preview_step, self.preview_interval(), self.previews_enabled())

    def previewed(self) -> None:
        """A live preview was made at the current step."""
        self.preview_step = self.step_no

    def latent_preview(self, family: str) -> Callable[[int, Any], None]:
        """The engines' ``preview(step, latents)`` callback for latents of ``family`` (``engine.preview.SD`` or
        ``SDXL``): when a preview is due, the latents are decoded with the cheap linear map and shown."""

        def preview(_step: int, latents: Any) -> None:
            if self.preview_due():
                from ..engine.preview import preview_image

                self.preview(preview_image(latents, family, self.preview_grid()))
                self.previewed()

        return preview

    @property
    def fraction(self) -> float:
        """Overall progress 0..1."""
        if self.jobs <= 0:
            return 0.0
        within = self.step_no / self.steps if self.steps else 0.0
        return min(1.0, (self.job_no + within) / self.jobs)

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self)

    # -- stopping ------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear every stop request (at the start of a run)."""
        self._interrupted = self._skipped = self._stopping = False

    def interrupt(self) -> None:
        """Stop after the current sampling step; what finished is kept."""
        self._interrupted = True

    def skip(self) -> None:
        """Abandon the current job (batch) and go on with the next."""
        self._skipped = True

    def stop_generating(self) -> None:
        """Stop after the current job (batch) finishes."""
        self._stopping = True

    @property
    def interrupted(self) -> bool:
        """Stop now."""
        return self._interrupted

    @property
    def skipped(self) -> bool:
        """Abandon the current job."""
        return self._skipped

    @property
    def stopping(self) -> bool:
        """Stop once the current job is done."""
        return self._stopping

    def clear_skip(self) -> None:
        """The skip request was honoured."""
        self._skipped = False

    def should_stop_step(self) -> bool:
        """The engine's per-step ``should_stop``: interrupt or skip."""
        return self.interrupted or self.skipped


@dataclass
class OutputPanel:
    """The components of an output panel (txt2img's shape): the handler returns values for the last four, in order
    ``gallery, generation_info, infotext, html_log``."""

    gallery: Any
    generation_info: Any
    infotext: Any
    html_log: Any
    extra: dict[str, Any] = field(default_factory=dict)


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
    """Where the tab runs. Subclasses: ``extension.webui.WebUIHost`` and ``extension.ui.standalone.StandaloneHost``."""

    tabname = "reimagine"
    tooltips = False  # whether components accept the WebUI's ``tooltip=`` keyword
    submit_js: str | None = None  # JavaScript run on Generate before the handler (the WebUI's task id + progress)
    interrupt_js: str | None = None  # JavaScript run on Interrupt (the WebUI's "Interrupting..." placeholder)
    show_progress: bool | str = False  # gradio's own progress display on the outputs
    refine_area = 1024 * 1024  # "Refine with SDXL" resizes the selected output to this many pixels (SDXL's size)

    def __init__(self, *, config_root: Path | None = None, cache: Any = None) -> None:
        self.config_root = Path(config_root) if config_root else None
        self._cache = cache
        self._models: list[ModelChoice] | None = None
        self._models_lock = threading.Lock()
        self._run_stack = threading.local()
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
    def run(self, fn: Callable[..., tuple], n_inputs: int) -> Callable[..., Any]:
        """Wrap a Generate-like handler ``fn(task_id, *inputs) -> (gallery, generation_info, infotext_html,
        log_html)`` taking ``n_inputs`` arguments (task id included): serialise it with other jobs, show progress,
        turn unexpected errors into an error message."""

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

    # -- outputs ---------------------------------------------------------------------------------------------------
    @abstractmethod
    def tool_button(self, symbol: str, elem_id: str, tooltip: str) -> Any:
        """A small emoji button (the WebUI's ToolButton look: class ``tool``) in the current gradio context."""

    @abstractmethod
    def output_panel(self, tabname: str = "reimagine") -> OutputPanel:
        """Build the output panel (gallery, generation info, buttons) in the current gradio context; element ids
        follow txt2img's (``<tabname>_gallery`` inside ``<tabname>_gallery_container``, ...)."""

    @abstractmethod
    def save(self, images: list[Any], infotexts: list[str], info: Any) -> list[Any]:
        """Save finished images (infotext in PNG ``parameters``) as the user's settings say; returns gallery items.

        ``info`` is the run's :class:`extension.runtime.jobs.GenerationInfo` (a ``p``-like object)."""

    @abstractmethod
    def gallery_image(self, value: Any, index: int) -> Any:
        """Image ``index`` of a gallery value (as gradio hands it to a handler) as a PIL image, or None."""

    # -- REST API backend (extension.api.Backend) ------------------------------------------------------------------
    def load(self, entry: Any, job: dict[str, Any] | None = None) -> Any:
        """The pipeline for an API model entry; inside :meth:`run_job` with memory handling until the job ends,
        planned for ``job`` (see :meth:`pipeline`)."""
        choice = entry if isinstance(entry, ModelChoice) else self.find(entry.name, OFFERED_KINDS)
        role = "refiner" if choice.kind in REFINER_KINDS else "unclip"
        stack: contextlib.ExitStack | None = getattr(self._run_stack, "stack", None)
        if stack is None:
            return self.cache.get(role, choice.location, **self.loader_kwargs(role))
        return stack.enter_context(self.pipeline(choice, role, job))

    def run_job(self, description: str, job: Callable[[Callable[[int, int], None], Callable[[], bool]], Any]) -> Any:
        """Run ``job(progress, should_stop)`` serialised with the tab's jobs (the API's entry point)."""
        with self.job_slot(description) as control, contextlib.ExitStack() as stack:
            self._run_stack.stack = stack
            try:
                control.begin(1, 0, description)
                return job(control.step, control.should_stop_step)
            finally:
                self._run_stack.stack = None

    @abstractmethod
    def job_slot(self, description: str) -> contextlib.AbstractContextManager[Control]:
        """A context in which one job runs exclusively (the WebUI's ``queue_lock`` + ``shared.state``)."""
