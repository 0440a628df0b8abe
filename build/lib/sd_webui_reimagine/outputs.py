"""Writing result images: PNG with the infotext in the ``parameters`` text chunk, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image, PngImagePlugin

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def png_info(infotext: str) -> PngImagePlugin.PngInfo:
    """PNG metadata carrying ``infotext`` under ``parameters``, where the WebUI's PNG Info reads it."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    return info


def save_png(image: Image.Image, path: Path, infotext: str) -> Path:
    """Write ``image`` to ``path`` atomically: a crash leaves either the old file or none, never half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".png.tmp", dir=path.parent)
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
