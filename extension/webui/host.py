"""The WebUI as a :class:`~extension.runtime.host.Host`: its queue lock and state, settings, model folders and memory
handling (AUTOMATIC1111 1.10, Forge 2 and Forge Neo; docs/webui-contract.md §4–§6, §12). The tab's side (output
panel, saving, handler wrapping) is :mod:`.surface`, mixed into the same :class:`WebUIHost`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import random
import string
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import NonFiniteError
from ..loading.configs import config_root_from_env
from ..runtime.control import Control
from ..runtime.host import MEMORY_MODES, Host
from .surface import WebUISurface

log = logging.getLogger(__name__)

FORGE_UNLOADED = object()
"""Token of :meth:`WebUIHost.make_room` on Forge: its memory manager unloaded its models (and reloads them itself)."""

OPT_MODELS_DIRS = "reimagine_models_dirs"
OPT_DEFAULT_MODEL = "reimagine_default_model"
OPT_KARLO_STATS = "reimagine_karlo_stats"
OPT_MEMORY = "reimagine_memory"
OPT_NOISE_PRESET = "reimagine_noise_preset"
OPT_PRECISION = "reimagine_precision"
OPT_COMPILE = "reimagine_compile"
PRECISIONS = ("fp16", "bf16")  # on CUDA; --no-half / --precision full still mean fp32


def is_forge() -> bool:
    """Whether this WebUI is Forge 2 or Forge Neo (its ``backend`` package with ``memory_management``; Neo has no
    ``sd_models.send_model_to_cpu``/``send_model_to_device`` any more, so the A1111 path must never run there)."""
    try:
        return importlib.util.find_spec("backend.memory_management") is not None
    except (ImportError, ValueError):
        return False


def opt(key: str, default: Any = None) -> Any:
    """A setting's current value (its default before the settings are registered)."""
    from modules import shared

    value = shared.opts.data.get(key, None) if hasattr(shared.opts, "data") else None
    if value is None:
        value = getattr(shared.opts, key, default)
    return default if value is None else value


class WebUIControl(Control):
    """:class:`Control` on ``shared.state`` (the WebUI's progress endpoint, Interrupt and Skip buttons read it).

    Live previews follow Settings → Live previews (on/off, every N steps, grid) and are always decoded with our own
    "Approx cheap" map (``engine.preview``) whatever the chosen method: the WebUI's decoders pick their weights or
    factors from *its* checkpoint (A1111 ``sd_vae_approx.model()`` / ``cheap_approximation`` and
    ``sd_vae_taesd.decoder_model()`` by ``shared.sd_model.is_sdxl``; Forge from its ``latent_format``), and "Full"
    decodes with its VAE, which may be an SD 1.5 one while our latents are unCLIP (SD 2.x) or SDXL ones, or off the
    GPU while we run. The image goes to the page through ``state.assign_current_image``, as the WebUI's own do.
    """

    def __init__(self) -> None:
        super().__init__()

    @staticmethod
    def _state() -> Any:
        from modules import shared

        return shared.state

    def begin(self, jobs: int, steps: int, text: str = "") -> None:
        """Set ``job_count``, ``sampling_steps``; job 0, step 0."""
        self.jobs = jobs
        state = self._state()
        state.job_count = jobs
        state.job_no = 0
        state.sampling_step = 0
        state.sampling_steps = steps
        state.current_image_sampling_step = 0
        state.textinfo = text or None
        super().begin(jobs, steps, text)

    def step(self, step: int, steps: int) -> None:
        """``sampling_step`` / ``sampling_steps`` of the current job."""
        state = self._state()
        state.sampling_step = step
        state.sampling_steps = steps
        super().step(step, steps)

    def next_job(self, text: str = "") -> None:
        """``state.nextjob()``."""
        state = self._state()
        state.nextjob()
        if text:
            state.textinfo = text
        self.job_no = state.job_no
        self.step_no = 0
        self._notify()

    def preview(self, image: Any) -> None:
        """The live preview under the gallery (``assign_current_image``), when live previews are on."""
        if not self.previews_enabled():
            return
        super().preview(image)
        with contextlib.suppress(Exception):
            self._state().assign_current_image(image)

    def previews_enabled(self) -> bool:
        """Settings → Live previews → "Show live previews of the created image"."""
        return bool(opt("live_previews_enable", True))

    def preview_interval(self) -> int:
        """Settings → Live previews → "Live preview display period" (−1 = after each batch only)."""
        try:
            return int(opt("show_progress_every_n_steps", 10))
        except (TypeError, ValueError):
            return 10

    def preview_grid(self) -> bool:
        """ "Show previews of all images generated in a batch as a grid"."""
        return bool(opt("show_progress_grid", True))

    def preview_due(self) -> bool:
        """The WebUI's own counters: ``state.sampling_step`` and ``state.current_image_sampling_step`` (which
        ``state.nextjob`` resets), so our previews and the WebUI's polling follow one interval."""
        from ..engine.preview import due

        state = self._state()
        step = int(state.sampling_step or 0)
        last = int(getattr(state, "current_image_sampling_step", 0) or 0)
        return due(step, last, self.preview_interval(), self.previews_enabled())

    def previewed(self) -> None:
        """``state.current_image_sampling_step = state.sampling_step``, as ``State.do_set_current_image`` does."""
        state = self._state()
        state.current_image_sampling_step = state.sampling_step

    def reset(self) -> None:
        """The WebUI resets the flags itself (``state.begin`` / ``wrap_gradio_call``)."""

    def interrupt(self) -> None:
        """``state.interrupt()``."""
        self._state().interrupt()

    def skip(self) -> None:
        """``state.skip()``."""
        self._state().skip()

    def stop_generating(self) -> None:
        """``state.stop_generating()``."""
        self._state().stop_generating()

    @property
    def interrupted(self) -> bool:
        """``state.interrupted``."""
        return bool(self._state().interrupted)

    @property
    def skipped(self) -> bool:
        """``state.skipped``."""
        return bool(self._state().skipped)

    @property
    def stopping(self) -> bool:
        """``state.stopping_generation``."""
        return bool(getattr(self._state(), "stopping_generation", False))

    def clear_skip(self) -> None:
        """``state.skipped = False`` (processing does the same at each batch)."""
        self._state().skipped = False


class WebUIHost(WebUISurface, Host):
    """Reimagine inside AUTOMATIC1111 / Forge: the runtime here, the tab's surface in :mod:`.surface`."""

    def __init__(self, *, config_root: Path | None = None, cache: Any = None) -> None:
        super().__init__(config_root=config_root, cache=cache)
        self.forge = is_forge()
        self._control = WebUIControl()

    # -- settings --------------------------------------------------------------------------------------------------
    def model_folders(self) -> list[Path]:
        """``models/Stable-diffusion``, ``--ckpt-dir`` (Neo: every ``--ckpt-dirs``) and the folders of the "Reimagine"
        settings."""
        from modules import sd_models, shared

        folders = [Path(sd_models.model_path)]
        ckpt_dir = getattr(shared.cmd_opts, "ckpt_dir", None)
        if ckpt_dir:
            folders.append(Path(ckpt_dir))
        for ckpt_dirs in getattr(shared.cmd_opts, "ckpt_dirs", None) or []:  # Neo: --ckpt-dirs, repeatable
            folders.append(Path(ckpt_dirs))
        for line in str(opt(OPT_MODELS_DIRS, "") or "").splitlines():
            if line.strip():
                folders.append(Path(line.strip()).expanduser())
        unique: list[Path] = []
        for folder in folders:
            if folder not in unique:
                unique.append(folder)
        return unique

    def default_model(self) -> str | None:
        """Setting "Default unCLIP model"."""
        return opt(OPT_DEFAULT_MODEL, "") or None

    def default_noise_preset(self) -> str | None:
        """Setting "Default noise preset"."""
        return opt(OPT_NOISE_PRESET, None)

    def memory_mode(self) -> str:
        """Setting "Reimagine and refiner models between runs"."""
        value = opt(OPT_MEMORY, MEMORY_MODES[0])
        return value if value in MEMORY_MODES else MEMORY_MODES[0]

    def karlo_stats(self) -> str | None:
        """Setting "Karlo statistics file"."""
        return opt(OPT_KARLO_STATS, "") or None

    def models_dir(self) -> Path | None:
        """The WebUI's models folder (``models/karlo/ViT-L-14_stats.th`` lives there)."""
        from modules import paths

        return Path(paths.models_path)

    def device(self) -> Any:
        """The WebUI's device (Forge: ``memory_management.get_torch_device()``)."""
        if self.forge:
            from backend import memory_management

            return memory_management.get_torch_device()
        from modules import devices

        return devices.device

    def dtype(self) -> Any:
        """float32 under ``--no-half`` / ``--precision full`` (Forge ``--all-in-fp32``); bfloat16 on CUDA under
        Forge's ``--unet-in-bf16`` or the setting "Reimagine weights on the GPU"; otherwise automatic (fp16 on
        CUDA), as the memory plan assumes (``device.memory``)."""
        import torch

        flags = self.memory_flags()
        if flags.no_half:
            return torch.float32
        if flags.bf16 and torch.device(self.device()).type == "cuda":
            return torch.bfloat16
        return None

    def compile_unet(self) -> bool:
        """Setting "Compile the UNet with torch.compile"."""
        return bool(opt(OPT_COMPILE, False))

    def announce(self, line: str) -> None:
        """Printed, as the WebUI prints its own messages: its Python logging stays at WARNING unless started with
        ``--loglevel``."""
        print(line, flush=True)

    def notify(self, message: str) -> None:
        """``gr.Info`` toast, as txt2img's Interrupt button shows."""
        import gradio as gr

        with contextlib.suppress(Exception):  # outside a gradio request there is nobody to tell
            gr.Info(message)

    def interrupt_after_current(self) -> bool:
        """Setting "Don't Interrupt in the middle"."""
        return bool(opt("interrupt_after_current", True))

    # -- memory ----------------------------------------------------------------------------------------------------
    def free_device_memory(self) -> int | None:
        """Free bytes on our device (None = not a CUDA device: nothing to make room on)."""
        import torch

        device = torch.device(self.device())
        if device.type != "cuda" or not torch.cuda.is_available():
            return None
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)

    def nan_check(self) -> Callable[[Any, str], None] | None:
        """The WebUI's own NaN check (``devices.test_for_nans``; ``--disable-nan-check`` turns it off), raising our
        :class:`~extension.errors.NonFiniteError` so the tab shows it and the REST API answers 422."""
        from modules import devices

        def check(latents: Any, where: str) -> None:
            try:
                devices.test_for_nans(latents, "unet")
            except devices.NansException as error:
                raise NonFiniteError(f"{error} ({where}; the all-black image was not saved)") from None

        return check

    def memory_flags(self) -> Any:
        """``--medvram``/``--lowvram``/``--no-half-vae``... (A1111 ``shared.cmd_opts``; Forge also ``backend.args``)."""
        from modules import shared

        from ..device.memory import flags_from_args

        forge_args = None
        if self.forge:
            with contextlib.suppress(Exception):
                from backend.args import args as forge_args
        return flags_from_args(shared.cmd_opts, forge_args, bf16=opt(OPT_PRECISION, PRECISIONS[0]) == "bf16")

    def free_memory_estimate(self) -> int | None:
        """Forge: its own estimate (``memory_management.get_free_memory``: driver free + torch's reserved-unused)."""
        if not self.forge or self.free_device_memory() is None:
            return None
        from backend import memory_management

        return int(memory_management.get_free_memory(self.device()))

    def make_room(self, needed: int) -> Any:
        """Move the WebUI's model off the GPU only when our run would not fit next to it (after its first load)."""
        _wait_for_startup_model_load()
        free = self.free_device_memory()
        if free is None or free >= needed:
            return None
        if self.forge:
            from backend import memory_management

            # Forge's own way first: unload its models, last loaded first, until ``needed`` bytes are free
            # (backend/memory_management.py free_memory(memory_required, device)); everything only if that was short.
            # Neo: never the UNet its built-in Refiner must put the main weights back into (see _neo_refiner_unet).
            keep = _neo_refiner_unet(memory_management)
            memory_management.free_memory(needed, self.device(), **({"keep_loaded": keep} if keep else {}))
            after = self.free_device_memory()
            if after is not None and after >= needed:
                return FORGE_UNLOADED
            if keep:
                memory_management.free_memory(1e30, self.device(), keep_loaded=keep)
            else:
                memory_management.unload_all_models()
            memory_management.soft_empty_cache()
            return FORGE_UNLOADED  # Forge loads its models back on demand; ours must leave the GPU after the run
        from modules import sd_models

        model = self._main_model()
        if model is None:
            return None
        log.info("reimagine: moving the WebUI's model to RAM to make room (%.1f GiB free)", free / 1024**3)
        sd_models.send_model_to_cpu(model)
        return model

    def restore(self, token: Any) -> None:
        """Put the WebUI's model back on its device (A1111 never does it by itself, docs/webui-contract.md §6)."""
        if token is None or token is FORGE_UNLOADED:
            return
        from modules import sd_models

        sd_models.send_model_to_device(token)

    @staticmethod
    def _main_model() -> Any:
        """The loaded checkpoint, without triggering a load (``shared.sd_model`` would load one in A1111)."""
        from modules import sd_models, shared

        data = getattr(sd_models, "model_data", None)
        if data is not None and hasattr(data, "sd_model"):
            return data.sd_model
        return getattr(shared, "sd_model", None)

    # -- running ---------------------------------------------------------------------------------------------------
    def control(self) -> Control:
        """``shared.state``."""
        return self._control

    @contextlib.contextmanager
    def job_slot(self, description: str) -> Iterator[Control]:
        """A job outside gradio (the REST API), as ``text2imgapi`` runs one: queued task, ``queue_lock``,
        ``state.begin/end``, so ``/internal/progress`` reports it and it serialises with the UI's jobs."""
        from modules import call_queue, progress, shared

        task_id = "task(" + "".join(random.choices(string.ascii_lowercase + string.digits, k=15)) + ")"
        progress.add_task_to_queue(task_id)
        with call_queue.queue_lock:
            shared.state.begin(job=task_id)
            progress.start_task(task_id)
            try:
                yield self._control
            finally:
                progress.finish_task(task_id)
                shared.state.end()
                shared.state.skipped = shared.state.interrupted = shared.state.stopping_generation = False


_shared: WebUIHost | None = None


def shared_host() -> WebUIHost:
    """The one WebUI host of this process, shared by the tab, the refiner hook and the REST API (one model list,
    one pipeline cache)."""
    global _shared
    if _shared is None:
        _shared = WebUIHost(config_root=config_root_from_env())
    return _shared


def release_shared_host() -> None:
    """Drop the shared host's loaded pipelines and free their memory (nothing to do before the first use)."""
    if _shared is not None:
        _shared.release()


def _neo_refiner_unet(memory_management: Any) -> list[Any]:
    """Forge Neo: the UNet entries of ``memory_management.current_loaded_models`` while its built-in Refiner has
    swapped the UNet's weights in place (setting "Reload state_dict Only": ``sd_samplers_common.ORIGINAL_CHECKPOINT``
    is set). Its ``postprocess`` finds that entry again to load the main checkpoint's weights back, and fails with
    ``UnboundLocalError`` when it is gone (``free_memory`` removes what it unloads from the list), leaving the
    refiner's weights in the main model (docs/webui-contract.md §12). Empty everywhere else."""
    common = sys.modules.get("modules.sd_samplers_common")
    if common is None or getattr(common, "ORIGINAL_CHECKPOINT", None) is None:
        return []
    try:
        from backend.patcher.unet import UnetPatcher
    except ImportError:
        return []
    loaded = getattr(memory_management, "current_loaded_models", None) or []
    return [entry for entry in loaded if isinstance(getattr(entry, "model", None), UnetPatcher)]


def _wait_for_startup_model_load() -> None:
    """A1111 loads its first checkpoint in a background thread at startup, holding ``sd_models.model_data.lock``
    (``SdModelData.get_sd_model``), and during that load replaces ``torch.nn.Module.load_state_dict`` process-wide
    (``sd_disable_initialization.LoadStateDictOnMeta``). Loading our models meanwhile would go through that patch
    (a REST request right after startup failed on ``load_state_dict(assign=True)``), so wait until it is done. Later
    checkpoint switches run under the WebUI's queue lock, as our jobs do."""
    from modules import sd_models

    lock = getattr(getattr(sd_models, "model_data", None), "lock", None)
    if lock is not None:
        with lock:
            pass
