"""Stand-in of modules/progress.py: the task queue bookkeeping and the ``/internal/progress`` computation (docs/webui-contract.md §5)."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

current_task: str | None = None
pending_tasks: dict[str, float] = {}
finished_tasks: list[str] = []
recorded_results: list[tuple] = []
recorded_results_limit = 2


def start_task(id_task) -> None:
    """The task is now active (``progressapi`` reports it)."""
    global current_task
    current_task = id_task
    pending_tasks.pop(id_task, None)


def finish_task(id_task) -> None:
    global current_task
    if current_task == id_task:
        current_task = None
    finished_tasks.append(id_task)
    if len(finished_tasks) > 16:
        finished_tasks.pop(0)


def create_task_id(task_type: str) -> str:
    return f"task({task_type}-{random.randint(0, 100000)})"


def record_results(id_task, res) -> None:
    recorded_results.append((id_task, res))
    if len(recorded_results) > recorded_results_limit:
        recorded_results.pop(0)


def add_task_to_queue(id_job) -> None:
    pending_tasks[id_job] = time.time()


def progressapi(req) -> SimpleNamespace:
    """What ``POST /internal/progress`` answers for ``req.id_task`` (progress.py:76-141; no live preview image).

    progress = job_no/job_count + sampling_step/sampling_steps/job_count, and 0 while ``job_count <= 0``.
    """
    from modules import shared

    id_task = req["id_task"] if isinstance(req, dict) else req.id_task
    active = id_task == current_task
    queued = id_task in pending_tasks
    completed = id_task in finished_tasks
    if not active:
        textinfo = "In queue..." if queued else "Waiting..."
        return SimpleNamespace(
            active=False, queued=queued, completed=completed, progress=None, eta=None, textinfo=textinfo
        )
    state = shared.state
    progress = 0.0
    if state.job_count > 0:
        progress += state.job_no / state.job_count
    if state.sampling_steps > 0 and state.job_count > 0:
        progress += 1 / state.job_count * state.sampling_step / state.sampling_steps
    progress = min(progress, 1)
    elapsed = time.time() - (state.time_start or time.time())
    eta = (elapsed / progress - elapsed) if progress > 0 else None
    return SimpleNamespace(
        active=True, queued=queued, completed=completed, progress=progress, eta=eta, textinfo=state.textinfo
    )
