"""The post-pass on the WebUI's progress bar: one more job per batch, its steps, its text, its live previews."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from .controls import LABEL, Run


def webui_state() -> Any:
    from modules import shared

    return shared.state


def should_stop() -> bool:
    state = webui_state()
    return bool(state.interrupted or state.skipped)


def add_jobs(p: Any, run: Run) -> None:
    """Once per run, after the WebUI has set its job count (Hires fix doubles it during the first sampling): one
    more job per batch for the post-pass."""
    if run.jobs_added:
        return
    run.jobs_added = True
    state = webui_state()
    if int(getattr(state, "job_count", 0) or 0) > 0:
        state.job_count += int(getattr(p, "n_iter", 1) or 1)


def end_job(run: Run, batch: int) -> None:
    """The post-pass job of ``batch`` is over (whatever happened): one ``state.nextjob()``."""
    if run.jobs_added and batch not in run.accounted:
        run.accounted.add(batch)
        webui_state().nextjob()


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
