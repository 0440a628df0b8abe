"""Every gradio difference the tab and the standalone app meet, in one place: gradio 3.41 (AUTOMATIC1111 1.10),
3.43 (Forge Neo), 4.40 (Forge 2), 5.x and 6.x (the standalone app's unpinned install).

Forge shims some gradio-3 spellings (``_js``, ``source=``), but the standalone app runs on plain gradio, so the tab
always uses the spelling of the installed version. Where a keyword moved or went away, the choice is made by looking
at the installed gradio's signatures (feature detection), not at its version number.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

GRADIO_MAJOR = int(gr.__version__.split(".", 1)[0])
GRADIO_4 = GRADIO_MAJOR >= 4


def accepts(fn: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """The named parameters of ``fn`` (a gradio function or method)."""
    return inspect.signature(fn).parameters


# gradio 6 moved ``css`` (with ``theme``, ``js``, ``head``) from ``gr.Blocks()`` to ``launch()`` (Blocks() still takes
# it, with a warning); it dropped ``launch(show_api=)`` for ``footer_links`` (the links under the page, "api" one of
# them); gradio 4 replaced ``queue(concurrency_count=)`` with ``default_concurrency_limit``.
CSS_AT_LAUNCH = "css" in accepts(gr.Blocks.launch)
LAUNCH_SHOW_API = "show_api" in accepts(gr.Blocks.launch)
LAUNCH_FOOTER_LINKS = "footer_links" in accepts(gr.Blocks.launch)
QUEUE_DEFAULT_LIMIT = "default_concurrency_limit" in accepts(gr.Blocks.queue)
FOOTER_WITHOUT_API = ["gradio", "settings"]


def blocks_kwargs(*, title: str, css: str) -> dict[str, Any]:
    """Keywords of the app's ``gr.Blocks(...)``: ``css`` here unless this gradio takes it at ``launch()``."""
    kwargs: dict[str, Any] = {"title": title, "analytics_enabled": False}
    if not CSS_AT_LAUNCH:
        kwargs["css"] = css
    return kwargs


def launch_kwargs(*, css: str, **kwargs: Any) -> dict[str, Any]:
    """Keywords of ``demo.launch(...)``: ``kwargs`` plus the page CSS where launch takes it, and no link to gradio's
    API page (``show_api=False``; gradio 6: a footer without "api")."""
    if CSS_AT_LAUNCH:
        kwargs["css"] = css
    if LAUNCH_SHOW_API:
        kwargs["show_api"] = False
    elif LAUNCH_FOOTER_LINKS:
        kwargs["footer_links"] = list(FOOTER_WITHOUT_API)
    return kwargs


def queue_limit(limit: int) -> dict[str, Any]:
    """Keywords of ``demo.queue(...)`` for at most ``limit`` jobs at once."""
    return {"default_concurrency_limit": limit} if QUEUE_DEFAULT_LIMIT else {"concurrency_count": limit}


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


def update(**kwargs: Any) -> Any:
    """``gr.update`` (same in both)."""
    return gr.update(**kwargs)


def queue_kwargs() -> dict[str, Any]:
    """Event keywords for a handler that must run at once, even while a job holds the queue (Interrupt / Skip)."""
    return {"queue": False}
