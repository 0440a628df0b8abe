"""The models the tab, the Refine tab and the API offer: unCLIP and SDXL refiner files and diffusers folders.

Finding them must be cheap, because a WebUI's ``models/Stable-diffusion`` may hold hundreds of checkpoints:

- ``.safetensors``: only the JSON header is read (key names and shapes), never the weights;
- ``.ckpt``: the pickle inside the zip is scanned for the key prefixes that unCLIP / SDXL checkpoints carry; only a
  candidate is opened (weights-only, memory-mapped) to read its shapes;
- diffusers folders: ``model_index.json`` and the component configs.

The kind of every file is remembered per (path, size, mtime), so a refresh re-reads only what changed.
"""

from __future__ import annotations

import logging
import os
import threading
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

UNCLIP_KINDS = ("unclip-h", "unclip-l")
REFINER_KINDS = ("sdxl-refiner",)
OFFERED_KINDS = UNCLIP_KINDS + REFINER_KINDS
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
MAX_DEPTH = 4  # folder levels searched below each models folder
# Byte strings one of which every unCLIP / SDXL checkpoint pickle contains (key prefixes of the original layout).
_CANDIDATE_MARKERS = (b"embedder.model.", b"noise_augmentor.", b"conditioner.embedders.")
# ... and an SD 1.x one: unpickled only when a scan asks for SD 1.x (the IP-Adapter backend's bases).
_SD1_MARKER = b"cond_stage_model.transformer."


@dataclass(frozen=True)
class ModelChoice:
    """One model offered to the user.

    ``name`` is what the dropdown shows and what API requests use (a file or folder name, never a path); ``path`` is
    relative to the models folder it was found in (forward slashes); ``location`` is the absolute path.
    """

    name: str
    kind: str
    path: str
    location: Path

    @property
    def stem(self) -> str:
        """File name without suffix (what the loader writes as infotext ``Model``)."""
        return self.location.stem if self.location.suffix.lower() in CHECKPOINT_SUFFIXES else self.location.name


_kind_cache: dict[tuple[str, int, int, tuple[bytes, ...]], str] = {}
_kind_lock = threading.Lock()


def _ckpt_is_candidate(path: Path, markers: tuple[bytes, ...] = _CANDIDATE_MARKERS) -> bool:
    """Whether a pickled checkpoint may be unCLIP or SDXL (cheap: scans the pickle, not the tensors)."""
    from .archive import ArchiveBombError, read_pickle

    try:
        data = read_pickle(path)  # bounded: a zip bomb is refused from its directory, never inflated
    except zipfile.BadZipFile:
        return True  # a legacy (non-zip) pickle: only a full read can tell
    except ArchiveBombError as error:
        log.warning("reimagine: skipping a model file: %s", error)
        return False
    return data is not None and any(marker in data for marker in markers)


def file_kind(path: Path, config_root: Path | None = None, *, sd1: bool = False) -> str:
    """The kind of a checkpoint file (``"unclip-h"``, ``"sdxl-refiner"``, ...; ``"unknown"`` when unreadable)."""
    from .checkpoint import Checkpoint, safetensors_shapes
    from .detect import detect_kind, yaml_unclip_override

    stat = path.stat()
    markers = (*_CANDIDATE_MARKERS, _SD1_MARKER) if sd1 else _CANDIDATE_MARKERS
    key = (str(path), stat.st_size, stat.st_mtime_ns, markers)
    with _kind_lock:
        if key in _kind_cache:
            return _kind_cache[key]
    try:
        if path.suffix.lower() == ".safetensors":
            shapes = safetensors_shapes(path)
        elif _ckpt_is_candidate(path, markers):
            shapes = Checkpoint.open(path).shapes
        else:
            shapes = {}
        kind = detect_kind(shapes, config_root=config_root) if shapes else "other"
        if kind in UNCLIP_KINDS:
            kind = yaml_unclip_override(path) or kind
    except Exception as error:  # noqa: BLE001 - a broken file is skipped, never breaks the list
        log.debug("reimagine: cannot classify %s: %s", path, error)
        kind = "unknown"
    with _kind_lock:
        _kind_cache[key] = kind
    return kind


def folder_kind(path: Path, config_root: Path | None = None) -> str:
    """The kind of a diffusers folder."""
    from .detect import folder_kind as loader_folder_kind

    try:
        return loader_folder_kind(path, config_root=config_root)
    except Exception:  # noqa: BLE001
        return "unknown"


def has_weights(folder: Path) -> bool:
    """Whether a diffusers folder holds weights (config-only folders, like our bundled configs, do not)."""
    return any(
        child.suffix in (".safetensors", ".bin") for sub in folder.iterdir() if sub.is_dir() for child in sub.iterdir()
    )


def _walk(root: Path) -> Iterable[tuple[Path, str]]:
    """(path, "file" | "folder") for every checkpoint file and diffusers folder under ``root``."""
    root_depth = len(root.parts)
    for current, dirs, files in os.walk(root, followlinks=True):
        here = Path(current)
        if "model_index.json" in files and here != root:
            dirs.clear()
            if has_weights(here):
                yield here, "folder"
            continue
        depth = len(here.parts) - root_depth
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < MAX_DEPTH)
        for name in sorted(files):
            if name.lower().endswith(CHECKPOINT_SUFFIXES) and not name.startswith("."):
                yield here / name, "file"


def scan(
    folders: Sequence[Path],
    *,
    kinds: Sequence[str] = OFFERED_KINDS,
    config_root: Path | None = None,
    extra: Sequence[Path] = (),
) -> list[ModelChoice]:
    """Every model of ``kinds`` in ``folders`` (searched recursively) plus the explicitly given ``extra`` paths.

    Names are file/folder names; a name seen twice gets `` (2)``, `` (3)``... so every name is unique.
    """
    found: list[ModelChoice] = []
    seen_locations: set[Path] = set()
    names: set[str] = set()

    def add(location: Path, base: Path | None, what: str) -> None:
        resolved = location.resolve()
        if resolved in seen_locations:
            return
        if what == "file":
            kind = file_kind(location, config_root, sd1=any(k.startswith("sd1") for k in kinds))
        else:
            kind = folder_kind(location, config_root)
        if kind not in kinds:
            return
        seen_locations.add(resolved)
        try:
            relative = location.relative_to(base).as_posix() if base else location.name
        except ValueError:
            relative = location.name
        name, number = location.name, 1
        while name in names:
            number += 1
            name = f"{location.name} ({number})"
        names.add(name)
        # the path as the user put it (a symlink stays itself: its name is what the infotext shows)
        found.append(ModelChoice(name=name, kind=kind, path=relative, location=location.absolute()))

    for path in extra:
        path = Path(path)
        if path.is_file():
            add(path, None, "file")
        elif (path / "model_index.json").is_file():
            add(path, None, "folder")
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for location, what in _walk(folder):
            add(location, folder, what)
    return found


def closest(choices: Sequence[ModelChoice], name: str | None) -> ModelChoice | None:
    """The choice an infotext's ``Model`` refers to (by name, file stem, or either case-insensitively)."""
    if not name:
        return None
    for test in (
        lambda c: c.name == name,
        lambda c: c.stem == name,
        lambda c: c.name.lower() == name.lower() or c.stem.lower() == name.lower(),
    ):
        for choice in choices:
            if test(choice):
                return choice
    return None
