"""Telling the user: our infotext keys on ``p`` and the warning shown when the post-pass did not run."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from ...errors import ReimagineError
from ...params import REFINER
from .controls import ERROR_KEY, MODE_KEY, PREFIX, Run, mode_text


def clear_keys(p: Any, *, error_too: bool = False) -> None:
    """Remove our infotext keys (the error key only with ``error_too``)."""
    params = p.extra_generation_params
    for key in [key for key in params if isinstance(key, str) and key.startswith(PREFIX)]:
        if key != ERROR_KEY or error_too:
            del params[key]


def set_keys(p: Any, items: Mapping[str, str] | None) -> None:
    """Our keys for the images whose infotext is written next (None: this image is not refined)."""
    clear_keys(p)
    if items:
        p.extra_generation_params.update(items)


@contextlib.contextmanager
def without_keys(p: Any) -> Iterator[None]:
    """Temporarily none of our keys (the pre-refiner image's infotext)."""
    saved = {k: v for k, v in p.extra_generation_params.items() if isinstance(k, str) and k.startswith(PREFIX)}
    clear_keys(p, error_too=True)
    try:
        yield
    finally:
        p.extra_generation_params.update(saved)


def warn(p: Any, message: str, *, exc_info: bool = False) -> None:
    """Tell the user the post-pass did not run: infotext key, a comment under the image, the log, a toast."""
    from modules import errors

    p.extra_generation_params[ERROR_KEY] = message
    text = f"Refiner post-pass skipped: {message}"
    with contextlib.suppress(Exception):
        p.comment(text)
    errors.report(f"[sd-webui-reimagine] {text}", exc_info=exc_info)
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # outside a page request gradio would only repeat it as a Python warning
        import gradio as gr

        gr.Warning(text)  # a toast in the page, where gradio can reach the request


def fail(p: Any, run: Run, error: BaseException) -> None:
    """A pass failed: warn (with the traceback unless it is a user-fixable error) and stop refining this run."""
    run.failed = True
    if isinstance(error, ReimagineError):
        warn(p, str(error))
    else:
        warn(p, f"{type(error).__name__}: {error}", exc_info=True)


def refiner_keys(result: Any, run: Run) -> dict[str, str]:
    """The engine's ``Refiner post-pass …`` keys of ``result`` (:class:`RefineResult.items`), the mode as
    :func:`mode_text` says it, + keep_original when the table gives it a key."""
    items = dict(result.items)
    items[MODE_KEY] = mode_text(run.values["mode"], result.mode, run.fallback)
    key = REFINER["keep_original"].infotext
    if key and run.values.get("keep_original"):
        items[key] = "True"
    return items
