"""Stand-in of modules/shared_state.py: ``shared.state``, the job/progress/interrupt state (docs/webui-contract.md §5).

Stand-in only: ``State.calls`` records ``("begin", job)``, ``("end",)``, ``("nextjob",)``, ``("interrupt",)``,
``("skip",)``, ``("stop_generating",)`` and ``("assign_current_image",)`` in order.

Neo (modules/shared_state.py, commit 1e8cfbc1d5982edb8e593cfad948ab4ccae7bfbe): a ``preview_step`` counter (the
sampler sets it to step + 1, ``begin``/``nextjob`` reset it) decides when a poll of the progress endpoint makes a
new live preview, instead of ``sampling_step``; no preview once ``preview_step >= sampling_steps``.
"""

from __future__ import annotations

import datetime
import time


class State:
    """Fields and methods of the WebUI's State (shared_state.py:12-168)."""

    skipped = False
    interrupted = False
    stopping_generation = False
    job = ""
    job_no = 0
    job_count = 0
    processing_has_refined_job_count = False
    job_timestamp = "0"
    sampling_step = 0
    sampling_steps = 0
    preview_step = 0  # Neo only (read by set_current_image there)
    current_latent = None
    current_image = None
    current_image_sampling_step = 0
    id_live_preview = 0
    textinfo = None
    time_start = None
    server_start = None

    def __init__(self) -> None:
        self.server_start = time.time()
        self.calls: list[tuple] = []

    def skip(self) -> None:
        """Skip the current image of the batch."""
        self.calls.append(("skip",))
        self.skipped = True

    def interrupt(self) -> None:
        """Stop the job after the current step."""
        self.calls.append(("interrupt",))
        self.interrupted = True

    def stop_generating(self) -> None:
        """Stop the job after the current image."""
        self.calls.append(("stop_generating",))
        self.stopping_generation = True

    def nextjob(self) -> None:
        """One job (image/batch) finished: ``job_no += 1`` and the step counter is reset (:87-93)."""
        from modules import shared

        self.calls.append(("nextjob",))
        if shared.opts.live_previews_enable and shared.opts.show_progress_every_n_steps == -1:
            self.do_set_current_image()
        self.job_no += 1
        self.sampling_step = 0
        self.preview_step = 0
        self.current_image_sampling_step = 0

    def dict(self) -> dict:
        return {
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "stopping_generation": self.stopping_generation,
            "job": self.job,
            "job_count": self.job_count,
            "job_timestamp": self.job_timestamp,
            "job_no": self.job_no,
            "sampling_step": self.sampling_step,
            "sampling_steps": self.sampling_steps,
        }

    def begin(self, job: str = "(unknown)") -> None:
        """Reset everything for a new job; ``job_count = -1`` until processing sets it (:110-127)."""
        from modules import devices

        self.calls.append(("begin", job))
        self.sampling_step = 0
        self.preview_step = 0
        self.time_start = time.time()
        self.job_count = -1
        self.processing_has_refined_job_count = False
        self.job_no = 0
        self.job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
        self.current_latent = None
        self.current_image = None
        self.current_image_sampling_step = 0
        self.id_live_preview = 0
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.textinfo = None
        self.job = job
        devices.torch_gc()

    def end(self) -> None:
        """The job is over (:129-135)."""
        from modules import devices

        self.calls.append(("end",))
        self.job = ""
        self.job_count = 0
        devices.torch_gc()

    def set_current_image(self) -> None:
        """Decode ``current_latent`` with the WebUI's VAE every N steps (live preview)."""
        from modules import _stub, shared

        if _stub.is_neo():
            every = shared.opts.show_progress_every_n_steps
            if not shared.opts.live_previews_enable or every == -1 or self.preview_step >= self.sampling_steps:
                return
            if self.preview_step - self.current_image_sampling_step >= every:
                self.do_set_current_image()
            return
        if not shared.parallel_processing_allowed:
            return
        every = shared.opts.show_progress_every_n_steps
        if (
            self.sampling_step - self.current_image_sampling_step >= every
            and shared.opts.live_previews_enable
            and every != -1
        ):
            self.do_set_current_image()

    def do_set_current_image(self) -> None:
        """Fails silently when the WebUI's VAE cannot decode (:137-162)."""
        if self.current_latent is None:
            return
        from modules import errors, sd_samplers

        try:
            self.assign_current_image(sd_samplers.sample_to_image(self.current_latent))
            self.current_image_sampling_step = self.sampling_step
        except Exception:
            errors.record_exception()

    def assign_current_image(self, image) -> None:
        """Set the live preview directly and bump ``id_live_preview`` (:164-168)."""
        from modules import shared

        self.calls.append(("assign_current_image",))
        if shared.opts.live_previews_image_format == "jpeg" and image.mode == "RGBA":
            image = image.convert("RGB")
        self.current_image = image
        self.id_live_preview += 1
