"""The post-pass's jobs on the WebUI's progress bar: one more job per batch, each ended by exactly one
``state.nextjob()``, whichever hook sees the batch last."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def webui_state() -> Any:
    from modules import shared

    return shared.state


@dataclass
class BatchJobs:
    """The job accounting of one ``process_images`` call.

    The WebUI counts one job per batch (two with Hires fix) and calls ``nextjob()`` after each. :meth:`add` adds one
    job per batch for the post-pass, once, after the WebUI has set its count; :meth:`end` ends a batch's post-pass
    job once, whichever hook gets there first: the latent pass before the WebUI decodes, the batch's last image in
    pixel mode, the next batch's ``process_batch`` or ``postprocess`` (a batch whose last image never reached us).
    """

    added: bool = False
    ended: set[int] = field(default_factory=set)
    sizes: dict[int, int] = field(default_factory=dict)  # images per batch, from postprocess_batch_list

    def add(self, p: Any) -> None:
        """One more job per batch (``p.n_iter``), the first time only; nothing when the WebUI counts no jobs."""
        if self.added:
            return
        self.added = True
        state = webui_state()
        if int(getattr(state, "job_count", 0) or 0) > 0:
            state.job_count += int(getattr(p, "n_iter", 1) or 1)

    def end(self, batch: int) -> None:
        """The post-pass job of ``batch`` is over (whatever happened): one ``state.nextjob()``."""
        if self.added and batch not in self.ended:
            self.ended.add(batch)
            webui_state().nextjob()

    def end_before(self, batch: int) -> None:
        """A new batch starts: every earlier one is over."""
        for earlier in range(batch):
            self.end(earlier)

    def end_seen(self, batches: int) -> None:
        """The generation is over: end the jobs of the batches that reached ``postprocess_batch_list``."""
        for batch in range(batches):
            if batch in self.sizes:
                self.end(batch)

    def size(self, batch: int, default: int) -> int:
        """How many images ``batch`` has (``default`` before the WebUI said)."""
        return self.sizes.get(batch, default)

    def image_done(self, batch: int, index: int, default: int) -> None:
        """Image ``index`` of ``batch`` is final; the last one ends the batch's job."""
        if index >= self.size(batch, default) - 1:
            self.end(batch)
