"""Writing result images: PNG with the infotext in the ``parameters`` text chunk, atomically."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, PngImagePlugin

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
TEMP_SUFFIX = ".png.tmp"
_OUR_TEMP = re.compile(r"^\..+?(?:-p(\d+))?-[a-z0-9_]+\.png\.tmp$")  # .<stem>-p<pid>-<mkstemp's 8 chars>.png.tmp
STALE_AGE_S = 3600.0  # a temp file this old is stale whoever wrote it (a PNG takes seconds to write)


def png_info(infotext: str) -> PngImagePlugin.PngInfo:
    """PNG metadata carrying ``infotext`` under ``parameters``, where the WebUI's PNG Info reads it."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    return info


def save_png(image: Image.Image, path: Path, infotext: str) -> Path:
    """Write ``image`` to ``path`` atomically: a crash leaves either the old file or none, never half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}-p{os.getpid()}-", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            image.save(temp_file, format="PNG", pnginfo=png_info(infotext))
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the hidden temp files :func:`save_png` left in ``folder`` when its process was killed (``kill -9``,
    power loss): those whose writer is no longer running here, or older than :data:`STALE_AGE_S`. Returns them."""
    removed = []
    try:
        candidates = [entry for entry in folder.iterdir() if entry.name.startswith(".") and entry.is_file()]
    except OSError:
        return removed
    for entry in candidates:
        found = _OUR_TEMP.match(entry.name)
        if found is None:
            continue
        try:
            if _writer_alive(found.group(1)) and time.time() - entry.stat().st_mtime < STALE_AGE_S:
                continue
            entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def _writer_alive(pid: str | None) -> bool:
    """Whether the process that named a temp file still runs on this machine (unknown: assume it does)."""
    if pid is None or sys.platform == "win32":  # no pid in the name (older versions); Windows: os.kill(p, 0) is Ctrl+C
        return pid is not None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):
        return True  # another user's process, or nothing we can tell
    return True


def read_infotext(path: Path) -> str | None:
    """The ``parameters`` text of an image file, if it has one."""
    with Image.open(path) as image:
        return image.info.get("parameters")


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given, folders replaced by the images in them (sorted by name)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found
