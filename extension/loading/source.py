"""What a model "source" string is: a checkpoint file, a diffusers folder, or a Hugging Face hub id."""

from __future__ import annotations

import importlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError
from .checkpoint import CHECKPOINT_SUFFIXES, file_identity

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Source:
    """A resolved model source."""

    type: str  # "file" | "folder" | "hub"
    location: str  # resolved path, or the hub id

    @property
    def path(self) -> Path:
        """The path (file/folder sources)."""
        return Path(self.location)

    @property
    def name(self) -> str:
        """Short display name: file stem, folder name, or hub id."""
        if self.type == "file":
            return self.path.stem
        if self.type == "folder":
            return self.path.name
        return self.location

    def identity(self) -> tuple:
        """Cache identity: changes when the file (size/mtime) or the folder's model_index.json changes."""
        if self.type == "file":
            return ("file", *file_identity(self.path))
        if self.type == "folder":
            idx = self.path / "model_index.json"
            try:
                mtime = idx.stat().st_mtime_ns
            except OSError:
                mtime = 0
            return ("folder", self.location, mtime)
        return ("hub", self.location)


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "on", "yes", "true"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:
        return False


def _network_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions a missing network surfaces as, in whichever HTTP stack this huggingface_hub uses: the OS's
    (refused / reset / DNS / timeout), requests' (hub < 1.0), httpx's (hub 1.x) and httpx2's (hub 2.x) transport
    errors, and the hub's own "not in the cache and the hub could not be asked" / "offline mode" errors."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError, socket.gaierror]
    for module, names in (
        ("huggingface_hub.errors", ("LocalEntryNotFoundError", "OfflineModeIsEnabled")),
        ("huggingface_hub.utils", ("LocalEntryNotFoundError", "OfflineModeIsEnabled")),
        ("requests.exceptions", ("ConnectionError", "Timeout")),
        ("httpx", ("TransportError",)),
        ("httpx2", ("TransportError",)),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        found += [t for t in (getattr(mod, name, None) for name in names) if isinstance(t, type)]
    return tuple(dict.fromkeys(found))


def is_network_error(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it was raised from or while handling: diffusers and transformers wrap the
    hub's errors in their own ``OSError``/``EnvironmentError``) comes from a missing network or offline mode."""
    types = _network_error_types()
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, types):
            return True
        todo += [current.__cause__, current.__context__]
    return False


def resolve_source(source: str | os.PathLike[str]) -> Source:
    """Classify ``source``; ModelLoadError for paths that do not exist (and are not hub ids) or unreadable folders."""
    text = os.fspath(source).strip() if source is not None else ""
    if not text:
        raise ModelLoadError("No model selected")
    p = Path(text).expanduser()
    if p.is_file():  # absolute but not symlink-resolved: a .yaml / models/karlo next to a symlink counts
        return Source("file", os.path.abspath(p))
    if p.is_dir():
        try:
            names = os.listdir(p)
        except OSError as e:
            raise ModelLoadError(f"Cannot read model folder {p}: {e.strerror or e}") from None
        if "model_index.json" not in names:
            raise ModelLoadError(
                f"{p} is not a diffusers model folder (it has no model_index.json); "
                "choose a .safetensors/.ckpt file or a folder saved by diffusers"
            )
        return Source("folder", os.path.abspath(p))
    if p.exists():
        raise ModelLoadError(f"{p} is neither a file nor a folder")
    if _HUB_ID.match(text) and not text.lower().endswith(CHECKPOINT_SUFFIXES) and not text.startswith("."):
        return Source("hub", text)
    raise ModelLoadError(f"Model file not found: {p}")
