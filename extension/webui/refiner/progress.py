"""The post-pass on the WebUI's progress bar: its steps, its text, its live previews (its jobs: :mod:`.jobs`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from .controls import LABEL
from .jobs import webui_state


def should_stop() -> bool:
    state = webui_state()
    return bool(state.interrupted or state.skipped)


@contextlib.contextmanager
def job_text() -> Iterator[None]:
    """Say "Refiner post-pass (SDXL)" under the progress bar while the pass runs; the WebUI's text afterwards."""
    state = webui_state()
    saved = getattr(state, "textinfo", None)
    state.textinfo = LABEL
    try:
        yield
    finally:
        state.textinfo = saved


def reporter(offset: int, total: int) -> Callable[[int, int], None]:
    def progress(step: int, _steps: int) -> None:
        state = webui_state()
        state.sampling_steps = total
        state.sampling_step = min(total, offset + step)

    return progress


def live_preview(offset: int) -> Callable[[int, Any], None]:
    """The refiner's ``preview`` callback: SDXL latents, cheaply decoded, every N steps of the WebUI's setting, on its
    counters (``state.sampling_step`` as :func:`reporter` sets it). At ``offset`` 0 the pass starts counting from 0:
    the base's last preview step (pixel mode runs before the WebUI's ``nextjob``) is forgotten."""
    from ...engine.preview import SDXL
    from ..host import shared_host

    if offset == 0:
        webui_state().current_image_sampling_step = 0
    return shared_host().control().latent_preview(SDXL)
