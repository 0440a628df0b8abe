"""Stand-in of modules/call_queue.py: ``queue_lock`` and the gradio call wrappers (docs/webui-contract.md §5)."""

from __future__ import annotations

import html
import time
from functools import wraps

from modules import devices, errors, progress, shared
from modules.fifo_lock import FIFOLock

queue_lock = FIFOLock()


def wrap_queued_call(func):
    """Only takes ``queue_lock`` around the call."""

    @wraps(func)
    def f(*args, **kwargs):
        with queue_lock:
            res = func(*args, **kwargs)
        return res

    return f


def wrap_gradio_gpu_call(func, extra_outputs=None):
    """A job: a first argument ``"task(...)"`` is the task id; runs under ``queue_lock`` between
    ``state.begin(job=id_task)`` and ``state.end()``; see ``wrap_gradio_call`` for the rest."""

    @wraps(func)
    def f(*args, **kwargs):
        if args and type(args[0]) is str and args[0].startswith("task(") and args[0].endswith(")"):
            id_task = args[0]
            progress.add_task_to_queue(id_task)
        else:
            id_task = None

        with queue_lock:
            shared.state.begin(job=id_task)
            progress.start_task(id_task)
            try:
                res = func(*args, **kwargs)
                progress.record_results(id_task, res)
            finally:
                progress.finish_task(id_task)
            shared.state.end()
        return res

    return wrap_gradio_call(f, extra_outputs=extra_outputs, add_stats=True)


def wrap_gradio_call(func, extra_outputs=None, add_stats=False):
    """Resets skipped/interrupted/stopping_generation/job_count/job after the call."""

    @wraps(func)
    def f(*args, **kwargs):
        try:
            res = func(*args, **kwargs)
        finally:
            shared.state.skipped = False
            shared.state.interrupted = False
            shared.state.stopping_generation = False
            shared.state.job_count = 0
            shared.state.job = ""
        return res

    return wrap_gradio_call_no_job(f, extra_outputs, add_stats)


def wrap_gradio_call_no_job(func, extra_outputs=None, add_stats=False):
    """An exception becomes ``extra_outputs + ["<div class='error'>..."]``; with ``add_stats`` the time taken is
    appended to the last output, which therefore must be an HTML string."""

    @wraps(func)
    def f(*args, extra_outputs_array=extra_outputs, **kwargs):
        t = time.perf_counter()
        try:
            res = list(func(*args, **kwargs))
        except Exception as e:
            errors.report(f"Error completing request\nArguments: {args} {kwargs}"[:131072], exc_info=True)
            if extra_outputs_array is None:
                extra_outputs_array = [None, ""]
            error_message = f"{type(e).__name__}: {e}"
            res = [*extra_outputs_array, f"<div class='error'>{html.escape(error_message)}</div>"]

        devices.torch_gc()

        if not add_stats:
            return tuple(res)

        elapsed = time.perf_counter() - t
        elapsed_m = int(elapsed // 60)
        elapsed_s = elapsed % 60
        elapsed_text = f"{elapsed_s:.1f} sec."
        if elapsed_m > 0:
            elapsed_text = f"{elapsed_m} min. " + elapsed_text
        res[-1] += (
            f"<div class='performance'><p class='time'>Time taken: <wbr><span class='measurement'>"
            f"{elapsed_text}</span></p></div>"
        )
        return tuple(res)

    return f
