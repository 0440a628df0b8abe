"""What a running job reports to and asks: progress, live previews, and whether to stop (:class:`Control`).

Each :class:`~.host.Host` hands its jobs one (:meth:`~.host.Host.control`); the WebUI's subclass
(``extension.webui.host.WebUIControl``) maps everything to ``shared.state``. Imports neither gradio nor the WebUI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Control:
    """What a running job reports to and asks: progress, previews, and whether to stop.

    The base class keeps its own flags (the standalone app); the WebUI's subclass maps everything to
    ``shared.state``. ``jobs`` counts batches (or one interpolation strip); ``step/steps`` are within a job.
    """

    def __init__(self) -> None:
        self.jobs = 0
        self.job_no = 0
        self.step_no = 0
        self.steps = 0
        self.text = ""
        self.latest_preview: Any = None
        self.previews = 0  # previews shown since the app started
        self.preview_step = 0  # the step of the job's last live preview (0 = none yet)
        self.preview_every = 1  # live preview interval in steps (the cheap decode costs next to nothing)
        self._interrupted = False
        self._skipped = False
        self._stopping = False
        self.listeners: list[Callable[[Control], None]] = []

    # -- reporting -----------------------------------------------------------------------------------------------
    def begin(self, jobs: int, steps: int, text: str = "") -> None:
        """A run of ``jobs`` jobs of ``steps`` sampling steps each starts."""
        self.jobs, self.steps, self.job_no, self.step_no, self.text = jobs, steps, 0, 0, text
        self.preview_step = 0
        self._notify()

    def step(self, step: int, steps: int) -> None:
        """Sampling step ``step`` of ``steps`` in the current job is done."""
        self.step_no, self.steps = step, steps
        self._notify()

    def next_job(self, text: str = "") -> None:
        """The current job is finished; the next one starts."""
        self.job_no += 1
        self.step_no = self.preview_step = 0
        if text:
            self.text = text
        self._notify()

    def preview(self, image: Any) -> None:
        """Show ``image`` as the live preview."""
        self.latest_preview = image
        self.previews += 1
        self._notify()

    # -- live previews during sampling -----------------------------------------------------------------------------
    def previews_enabled(self) -> bool:
        """Whether live previews are shown at all."""
        return True

    def preview_interval(self) -> int:
        """Sampling steps between two live previews: −1 = only the finished batch, 0 = every step."""
        return self.preview_every

    def preview_grid(self) -> bool:
        """Preview the whole batch as a grid (else its first image)."""
        return True

    def preview_due(self) -> bool:
        """Whether the step just reported (:meth:`step`) gets a live preview (the WebUI's rule,
        ``engine.preview.due``)."""
        from ..engine.preview import due

        return due(self.step_no, self.preview_step, self.preview_interval(), self.previews_enabled())

    def previewed(self) -> None:
        """A live preview was made at the current step."""
        self.preview_step = self.step_no

    def latent_preview(self, family: str) -> Callable[[int, Any], None]:
        """The engines' ``preview(step, latents)`` callback for latents of ``family`` (``engine.preview.SD`` or
        ``SDXL``): when a preview is due, the latents are decoded with the cheap linear map and shown."""

        def preview(_step: int, latents: Any) -> None:
            if self.preview_due():
                from ..engine.preview import preview_image

                self.preview(preview_image(latents, family, self.preview_grid()))
                self.previewed()

        return preview

    @property
    def fraction(self) -> float:
        """Overall progress 0..1."""
        if self.jobs <= 0:
            return 0.0
        within = self.step_no / self.steps if self.steps else 0.0
        return min(1.0, (self.job_no + within) / self.jobs)

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self)

    # -- stopping ------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Clear every stop request (at the start of a run)."""
        self._interrupted = self._skipped = self._stopping = False

    def interrupt(self) -> None:
        """Stop after the current sampling step; what finished is kept."""
        self._interrupted = True

    def skip(self) -> None:
        """Abandon the current job (batch) and go on with the next."""
        self._skipped = True

    def stop_generating(self) -> None:
        """Stop after the current job (batch) finishes."""
        self._stopping = True

    @property
    def interrupted(self) -> bool:
        """Stop now."""
        return self._interrupted

    @property
    def skipped(self) -> bool:
        """Abandon the current job."""
        return self._skipped

    @property
    def stopping(self) -> bool:
        """Stop once the current job is done."""
        return self._stopping

    def clear_skip(self) -> None:
        """The skip request was honoured."""
        self._skipped = False

    def should_stop_step(self) -> bool:
        """The engine's per-step ``should_stop``: interrupt or skip."""
        return self.interrupted or self.skipped
