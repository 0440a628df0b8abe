"""Stand-in of modules/sd_models.py (docs/webui-contract.md §6): checkpoint registry and the model memory calls extensions use.

A1111: ``send_model_to_cpu(m)`` moves the model to ``devices.cpu`` (or ``lowvram.send_everything_to_cpu()``) then
``torch_gc``; ``send_model_to_device(m)`` runs ``lowvram.apply(m)`` then ``m.to(shared.device)``;
``unload_model_weights`` = ``send_model_to_cpu`` only; ``reload_model_weights`` returns early for the current
checkpoint WITHOUT moving it back to the device. F: all of these are no-ops, except ``unload_model_weights`` ->
``backend.memory_management.unload_all_models()``.
Neo (Forge Neo's sd_models.py, commit 030519a02d676778056893f62b5ea0233a7497b7): ``send_model_to_cpu``,
``send_model_to_device``, ``send_model_to_trash``, ``reload_model_weights`` and ``load_model_weights`` no longer
exist (the stand-in deletes them); checkpoints come from ``--ckpt-dirs`` (``cmd_opts.ckpt_dirs``, a list) and
``models/Stable-diffusion``, ``.gguf`` files included; ``SdModelData`` has no lock.
``model_data.lock``: A1111's ``SdModelData`` holds it while ``get_sd_model`` loads the first checkpoint at startup (a
background thread), the time ``sd_disable_initialization.LoadStateDictOnMeta`` patches ``load_state_dict``.
Stand-in only: ``calls`` records ``("send_model_to_cpu", m)``, ``("send_model_to_device", m)``,
``("unload_model_weights", m)``, ``("reload_model_weights", m)``, ``("list_models",)``; ``StubSdModel``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading

from modules import _stub, devices, lowvram, paths, shared

model_dir = "Stable-diffusion"
model_path = os.path.abspath(os.path.join(paths.models_path, model_dir))

checkpoints_list: dict[str, CheckpointInfo] = {}
checkpoint_aliases: dict[str, CheckpointInfo] = {}
checkpoints_loaded: dict = {}
calls: list[tuple] = []


class SdModelData:
    """The real class's lock (modules/sd_models.py ``SdModelData.__init__``) and ``sd_model``, which here is the
    stand-in's ``shared.sd_model`` (in the WebUI, ``shared.sd_model`` reads it through ``get_sd_model``)."""

    def __init__(self) -> None:
        self.was_loaded_at_least_once = True
        self.lock = threading.Lock()

    @property
    def sd_model(self):
        return getattr(shared, "sd_model", None)


model_data = SdModelData()


class StubSdModel:
    """Stand-in only: the WebUI's loaded model as far as an extension sees it (``.to()`` is recorded)."""

    def __init__(self, checkpoint_info: CheckpointInfo | None = None, *, is_sdxl: bool = False) -> None:
        self.sd_checkpoint_info = checkpoint_info
        self.sd_model_checkpoint = checkpoint_info.filename if checkpoint_info else None
        self.sd_model_hash = checkpoint_info.calculate_shorthash() if checkpoint_info else None
        self.is_sdxl = is_sdxl
        self.is_sd2 = False
        self.is_sd1 = not is_sdxl
        self.is_ssd = False
        self.lowvram = False
        self.device = None
        self.moves: list = []
        self.decode_calls = 0
        self.latent_channels = 4

    def to(self, device):
        """Record the move; return self like ``torch.nn.Module.to``."""
        self.moves.append(device)
        self.device = device
        return self


class FakeInitialModel:
    """F: what ``shared.sd_model`` is until Forge loads a model for the first generation (F:sd_models.py:385-408)."""

    def __init__(self) -> None:
        self.cond_stage_model = None
        self.chunk_length = 75

    def get_prompt_lengths_on_ui(self, prompt):
        return 0, 75


def model_hash(filename: str) -> str:
    """Old 8-hex hash: sha256 of 64 KiB at offset 1 MiB."""
    try:
        with open(filename, "rb") as file:
            m = hashlib.sha256()
            file.seek(0x100000)
            m.update(file.read(0x10000))
            return m.hexdigest()[0:8]
    except FileNotFoundError:
        return "NOFILE"


def _ckpt_dirs() -> list[str]:
    """``--ckpt-dir`` (A1111, Forge) or every ``--ckpt-dirs`` (Neo)."""
    if _stub.is_neo():
        return [str(d) for d in shared.cmd_opts.ckpt_dirs]
    return [shared.cmd_opts.ckpt_dir] if shared.cmd_opts.ckpt_dir else []


class CheckpointInfo:
    """A checkpoint file: ``.filename .name .title .short_title .model_name .name_for_extra .hash .sha256``."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        abspath = os.path.abspath(filename)
        name = os.path.basename(filename)
        for directory in [model_path, *(os.path.abspath(d) for d in _ckpt_dirs())]:
            if abspath.startswith(directory + os.sep):
                name = abspath.replace(directory, "")
                break
        if name.startswith(("\\", "/")):
            name = name[1:]
        self.name = name
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = os.path.splitext(name.replace("/", "_").replace("\\", "_"))[0]
        self.hash = model_hash(filename)
        self.sha256: str | None = None
        self.shorthash: str | None = None
        self.title = name
        self.short_title = self.name_for_extra
        self.ids = [self.hash, self.model_name, self.title, name, self.name_for_extra]
        self.metadata: dict = {}

    def register(self) -> None:
        checkpoints_list[self.title] = self
        for id_ in self.ids:
            checkpoint_aliases[id_] = self

    def calculate_shorthash(self) -> str:
        with open(self.filename, "rb") as file:
            self.sha256 = hashlib.sha256(file.read()).hexdigest()
        self.shorthash = self.sha256[0:10]
        if self.title in checkpoints_list and checkpoints_list[self.title] is self:
            del checkpoints_list[self.title]
        self.title = f"{self.name} [{self.shorthash}]"
        self.short_title = f"{self.name_for_extra} [{self.shorthash}]"
        self.ids += [self.shorthash, self.sha256, f"{self.name} [{self.shorthash}]"]
        self.register()
        return self.shorthash


def list_models() -> None:
    """Rescan ``models/Stable-diffusion`` and ``--ckpt-dir`` (Neo: ``--ckpt-dirs``, .gguf too) for checkpoints."""
    calls.append(("list_models",))
    checkpoints_list.clear()
    checkpoint_aliases.clear()
    dirs = [model_path, *_ckpt_dirs()]
    found = []
    for directory in dirs:
        for ext in ("ckpt", "safetensors", *(("gguf",) if _stub.is_neo() else ())):
            found += glob.glob(os.path.join(directory, "**", f"*.{ext}"), recursive=True)
    for filename in sorted(found, key=str.lower):
        CheckpointInfo(filename).register()


def checkpoint_tiles(use_short=False) -> list[str]:
    return [x.short_title if use_short else x.title for x in checkpoints_list.values()]


def get_closet_checkpoint_match(search_string: str) -> CheckpointInfo | None:
    if not search_string:
        return None
    info = checkpoint_aliases.get(search_string)
    if info is not None:
        return info
    found = sorted(
        [info for info in checkpoints_list.values() if search_string in info.title], key=lambda x: len(x.title)
    )
    return found[0] if found else None


def send_model_to_cpu(m) -> None:
    calls.append(("send_model_to_cpu", m))
    if _stub.is_forge():
        return
    if m is not None:
        if getattr(m, "lowvram", False):
            lowvram.send_everything_to_cpu()
        else:
            m.to(devices.cpu)
    devices.torch_gc()


def model_target_device(m):
    return devices.device


def send_model_to_device(m) -> None:
    calls.append(("send_model_to_device", m))
    if _stub.is_forge():
        return
    lowvram.apply(m)
    if not m.lowvram:
        m.to(shared.device)


def send_model_to_trash(m) -> None:
    calls.append(("send_model_to_trash", m))
    if _stub.is_forge():
        return
    devices.torch_gc()


def unload_model_weights(sd_model=None, info=None):
    calls.append(("unload_model_weights", sd_model))
    if _stub.is_forge():
        from backend import memory_management

        memory_management.unload_all_models()
        return None
    send_model_to_cpu(sd_model or shared.sd_model)
    return sd_model


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    """Returns early (no move back to the device!) when ``info`` is already the loaded checkpoint."""
    calls.append(("reload_model_weights", sd_model))
    if _stub.is_forge():
        return None
    sd_model = sd_model or shared.sd_model
    current = getattr(sd_model, "sd_checkpoint_info", None)
    if info is None or (current is not None and current.filename == info.filename and not forced_reload):
        return sd_model
    new_model = StubSdModel(info, is_sdxl=getattr(sd_model, "is_sdxl", False))
    shared.sd_model = new_model
    return new_model


class SkipWritingToConfig:
    """Context manager: a checkpoint change inside it does not change the user's selected checkpoint."""

    skip = False
    previous = None

    def __enter__(self):
        self.previous = SkipWritingToConfig.skip
        SkipWritingToConfig.skip = True
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        SkipWritingToConfig.skip = self.previous


if _stub.is_neo():
    # Neo removed them (see the module docstring); an extension calling them gets AttributeError, as in Neo.
    del send_model_to_cpu, send_model_to_device, send_model_to_trash, reload_model_weights

    class SdModelData:  # noqa: F811 -- Neo's: no lock, ``forge_loading_parameters`` / ``forge_hash``
        def __init__(self) -> None:
            self.forge_loading_parameters: dict = {}
            self.forge_hash = ""

        @property
        def sd_model(self):
            return getattr(shared, "sd_model", None)

    model_data = SdModelData()
