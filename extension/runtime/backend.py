"""The REST API's backend (``extension.api.Backend``) on a :class:`~.host.Host`.

A request's job runs in the host's job slot (serialised with the tab's and the WebUI's jobs); the pipelines it loads
meanwhile get the host's memory handling (:meth:`Host.pipeline`) until the job ends. The open pipelines of the job
running on this thread are held in a thread-local :class:`contextlib.ExitStack`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from ..loading.discovery import OFFERED_KINDS, REFINER_KINDS, ModelChoice
from .control import Control
from .host import Host


class ApiBackend:
    """``extension.api.Backend`` for ``host``: ``models()``, ``load()``, ``run_job()`` and ``control()``."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._job = threading.local()  # ``stack``: the ExitStack of the job running on this thread

    def models(self) -> list[ModelChoice]:
        """Every model the host offers."""
        return self.host.models()

    def control(self) -> Control:
        """The host's job control (Interrupt / Skip, a disconnected client)."""
        return self.host.control()

    def load(self, entry: Any, job: dict[str, Any] | None = None) -> Any:
        """The pipeline for an API model entry; inside :meth:`run_job` with memory handling until the job ends,
        planned for ``job`` (see :meth:`Host.pipeline`)."""
        host = self.host
        choice = entry if isinstance(entry, ModelChoice) else host.find(entry.name, OFFERED_KINDS)
        role = "refiner" if choice.kind in REFINER_KINDS else "unclip"
        stack: contextlib.ExitStack | None = getattr(self._job, "stack", None)
        if stack is None:
            return host.cache.get(role, choice.location, **host.loader_kwargs(role))
        return stack.enter_context(host.pipeline(choice, role, job))

    def run_job(self, description: str, job: Callable[[Callable[[int, int], None], Callable[[], bool]], Any]) -> Any:
        """Run ``job(progress, should_stop)`` serialised with the tab's jobs (the API's entry point)."""
        with self.host.job_slot(description) as control, contextlib.ExitStack() as stack:
            self._job.stack = stack
            try:
                control.begin(1, 0, description)
                return job(control.step, control.should_stop_step)
            finally:
                self._job.stack = None
