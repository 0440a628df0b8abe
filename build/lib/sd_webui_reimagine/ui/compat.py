"""The gradio 3.41 (AUTOMATIC1111 1.10) / 4.40 (Forge 2) differences the tab meets, in one place.

Forge shims some gradio-3 spellings (``_js``, ``source=``), but the standalone app runs on plain gradio, so the tab
always uses the spelling of the installed major version.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

GRADIO_MAJOR = int(gr.__version__.split(".", 1)[0])
GRADIO_4 = GRADIO_MAJOR >= 4


def js(code: str | None) -> dict[str, Any]:
    """Event keyword for JavaScript run in the browser before the handler (``_js`` in gradio 3, ``js`` in 4)."""
    if code is None:
        return {}
    return {"js": code} if GRADIO_4 else {"_js": code}


def image_input(**kwargs: Any) -> gr.Image:
    """An image upload (drag & drop, click; paste from the clipboard too in gradio 4), delivered as PIL RGB."""
    if GRADIO_4:
        kwargs.setdefault("sources", ["upload", "clipboard"])
    else:
        kwargs.setdefault("source", "upload")
    return gr.Image(type="pil", image_mode="RGB", **kwargs)


def gallery(**kwargs: Any) -> gr.Gallery:
    """An output gallery; gradio 4 would re-encode PIL outputs as WebP (dropping the PNG infotext) unless told PNG."""
    if GRADIO_4:
        kwargs.setdefault("format", "png")
        kwargs.setdefault("interactive", False)  # used as an event input, gradio 4 would offer uploads into it
    return gr.Gallery(**kwargs)


def file_paths(value: Any) -> list[str]:
    """Paths of a ``gr.File(file_count="multiple")`` value (gradio 3: temp-file objects; gradio 4: strings)."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    paths = []
    for item in items:
        if isinstance(item, str):
            paths.append(item)
        elif isinstance(item, dict) and "name" in item:
            paths.append(item["name"])
        elif hasattr(item, "name"):
            paths.append(item.name)
    return paths


def gallery_entry(item: Any) -> Any:
    """One gallery value entry without its caption: a path/URL string, a dict or an image."""
    if isinstance(item, (list, tuple)) and item:
        item = item[0]
    if isinstance(item, dict):
        if isinstance(item.get("image"), dict):  # gradio 4 GalleryImage model dumped to dict
            item = item["image"]
        return item.get("path") or item.get("name") or item.get("url")
    return item


def update(**kwargs: Any) -> Any:
    """``gr.update`` (same in both)."""
    return gr.update(**kwargs)


def queue_kwargs() -> dict[str, Any]:
    """Event keywords for a handler that must run at once, even while a job holds the queue (Interrupt / Skip)."""
    return {"queue": False}
