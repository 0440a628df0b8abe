"""Reading uploaded or on-disk images the way the WebUI does: EXIF orientation applied, 16-bit scaled to 8-bit.

The WebUI opens every input through ``modules/images.py`` ``read`` / ``fix_image`` (``ImageOps.exif_transpose``) and
scales 16-bit greyscale by 1/257 before converting (``save_image_with_geninfo``: ``image.point(lambda p: p *
0.0038910505836576)``), see https://github.com/AUTOMATIC1111/stable-diffusion-webui/blob/v1.10.1/modules/images.py.
Pillow opens a 16-bit greyscale PNG as mode ``I`` (or ``I;16``); a plain ``convert("RGB")`` clips it at 255.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_WHITESPACE = re.compile(rb"\s+")


def normalized(image: Any) -> Any:
    """An RGB copy of ``image`` upright (EXIF orientation applied) with 16-bit values scaled to 8-bit; ``info``
    (the PNG ``parameters`` infotext) is kept."""
    from PIL import ImageOps

    info = dict(getattr(image, "info", {}) or {})
    upright = ImageOps.exif_transpose(image)
    if upright.mode in SIXTEEN_BIT_MODES:
        upright = upright.convert("I").point(lambda value: value * (1 / 257)).convert("L")
    elif upright.mode == "F":
        upright = upright.point(lambda value: value * 255).convert("L")
    rgb = upright.convert("RGB")
    rgb.info.update(info)
    return rgb


def decode_base64(text: str) -> bytes:
    """Bytes of a base64 string or ``data:...;base64,`` URL; whitespace (line-wrapped ``base64 FILE`` output) is
    ignored, as ``/sdapi`` accepts it. Raises ``ValueError`` for anything else."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = _WHITESPACE.sub(b"", text.encode("ascii"))
        return base64.b64decode(data, validate=True)
    except (UnicodeEncodeError, binascii.Error) as error:
        raise ValueError(str(error)) from None


def gallery_entry(item: Any) -> Any:
    """A gallery value's entry as an output value again, without its caption: its path or URL (gradio 3 dicts, gradio
    4+ tuples and ``{"image": {...}}`` models), or the image itself."""
    if isinstance(item, (list, tuple)) and item:
        item = item[0]
    if isinstance(item, dict):
        item = item.get("image", item)
        item = item.get("path") or item.get("name") or item.get("url") if isinstance(item, dict) else item
    if isinstance(item, str) and "?" in item and os.path.isfile(item.rsplit("?", 1)[0]):
        item = item.rsplit("?", 1)[0]  # A1111 names saved outputs "<path>?<mtime>" (ui_tempdir.save_pil_to_file)
    return item
