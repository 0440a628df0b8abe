"""The model a command uses when none is named: the only one of its kind in the models folders, else the hub id.

Folders, first found wins: ``--models-dir``, ``$REIMAGINE_MODELS`` (``os.pathsep``-separated), ``./models``.
Offline (or without a network) with nothing local, :func:`missing_model_message` names the file to download and the
folder to put it in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import HubUnreachableError, ReimagineError

MODELS_ENV = "REIMAGINE_MODELS"
T = TypeVar("T")


@dataclass(frozen=True)
class DefaultModel:
    """What a role falls back to: its model kinds, the hub id and the single file users download."""

    kinds: tuple[str, ...]
    hub_id: str
    file_name: str
    subfolder: str = "Stable-diffusion"

    @property
    def file_url(self) -> str:
        """Where the single file is published."""
        return f"https://huggingface.co/{self.hub_id}/blob/main/{self.file_name}"


DEFAULTS: dict[str, DefaultModel] = {
    "unclip": DefaultModel(("unclip-h", "unclip-l"), "stabilityai/stable-diffusion-2-1-unclip", "sd21-unclip-h.ckpt"),
    "refiner": DefaultModel(
        ("sdxl-refiner",), "stabilityai/stable-diffusion-xl-refiner-1.0", "sd_xl_refiner_1.0.safetensors"
    ),
}


def model_folders(models_dir: Path | None, env: Mapping[str, str], cwd: Path) -> list[Path]:
    """The folders searched for a default model, in order (only the first source that is given counts)."""
    if models_dir is not None:
        return [Path(models_dir)]
    if env.get(MODELS_ENV):
        return [Path(part) for part in env[MODELS_ENV].split(os.pathsep) if part]
    return [cwd / "models"]


def choose(role: str, found: Sequence[Path]) -> str:
    """The model for ``role`` given the local models of its kinds: the only one, else the hub id.

    Several local models are ambiguous: the message lists them so that the user picks one with ``--model``.
    """
    if role not in DEFAULTS:
        raise ValueError(f"role must be one of {sorted(DEFAULTS)}, got {role!r}")
    if len(found) == 1:
        return str(found[0])
    if len(found) > 1:
        names = ", ".join(str(path) for path in found)
        raise ReimagineError(f"several {role} models found ({names}): choose one with --model")
    return DEFAULTS[role].hub_id


def missing_model_message(role: str, folders: Sequence[Path], *, offline: bool = True) -> str:
    """One line for users with no local model who cannot download (offline mode, or no network): the file to
    download and where to put it."""
    default = DEFAULTS[role]
    folder = (folders[0] / default.subfolder) if folders else Path("models") / default.subfolder
    why = "downloading is off (offline)" if offline else "the Hugging Face hub cannot be reached (no network)"
    return (
        f"no {role} model found and {why}: download {default.file_name} from "
        f"{default.file_url} into {folder}/ (or pass --model / --models-dir)"
    )


def default_model(role: str, models_dir: Path | None = None, *, config_root: Path | None = None) -> str:
    """``--model`` when it is not given: scans the folders (cheap: headers only) and applies :func:`choose`.

    Offline, a hub id that is not in the local hub cache raises :class:`ReimagineError` with
    :func:`missing_model_message`.
    """
    from .discovery import scan
    from .source import hub_offline

    folders = model_folders(models_dir, os.environ, Path.cwd())
    found = [choice.location for choice in scan(folders, kinds=DEFAULTS[role].kinds, config_root=config_root)]
    chosen = choose(role, found)
    if chosen == DEFAULTS[role].hub_id and hub_offline() and not _in_hub_cache(chosen):
        raise ReimagineError(missing_model_message(role, folders))
    return chosen


def load_model(
    role: str,
    model: str | None,
    models_dir: Path | None,
    load: Callable[[str], T],
    *,
    config_root: Path | None = None,
) -> T:
    """``load(model)``, or ``load(default_model(role, ...))`` when no model is named. When that default is the hub id
    and the hub cannot be reached (no network, or offline mode with an empty cache), the error is
    :func:`missing_model_message`, as in offline mode, instead of the hub client's own."""
    from .source import hub_offline

    chosen = model or default_model(role, models_dir, config_root=config_root)
    try:
        return load(chosen)
    except HubUnreachableError:
        if model or chosen != DEFAULTS[role].hub_id:
            raise
        folders = model_folders(models_dir, os.environ, Path.cwd())
        raise ReimagineError(missing_model_message(role, folders, offline=hub_offline())) from None


def _in_hub_cache(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with diffusers
        return False
    return isinstance(try_to_load_from_cache(hub_id, "model_index.json"), str)
