"""Stand-in of modules/errors.py: reports are printed to stderr and recorded in ``reported`` (stand-in only)."""

from __future__ import annotations

import sys
import traceback

exception_records: list[dict] = []
reported: list[str] = []
"""Stand-in only: every message passed to ``report``/``display``, in order."""


def record_exception() -> None:
    """Remember the exception being handled."""
    _, error, tb = sys.exc_info()
    if error is None:
        return
    exception_records.append({"exception": repr(error), "traceback": traceback.format_tb(tb)})
    del exception_records[:-5]


def report(message: str, *, exc_info: bool = False) -> None:
    """Print a message (and the current traceback with ``exc_info``) to stderr; never raises."""
    record_exception()
    reported.append(message)
    text = message
    if exc_info:
        text += "\n" + traceback.format_exc()
    print(text, file=sys.stderr)


def print_error_explanation(message: str) -> None:
    """Print a boxed explanation."""
    record_exception()
    reported.append(message)
    print(message, file=sys.stderr)


def display(e: Exception, task: str, *, full_traceback: bool = False) -> None:
    """Print an exception raised while doing ``task``."""
    record_exception()
    reported.append(f"{task or 'error'}: {type(e).__name__}: {e}")
    print(f"{task or 'error'}: {type(e).__name__}", file=sys.stderr)
    print("".join(traceback.format_exception(type(e), e, e.__traceback__)), file=sys.stderr)


already_displayed: dict[str, int] = {}


def display_once(e: Exception, task: str) -> None:
    """``display`` once per task."""
    if task in already_displayed:
        return
    display(e, task)
    already_displayed[task] = 1


def run(code, task: str) -> None:
    """Run ``code()``; display an exception instead of raising it."""
    try:
        code()
    except Exception as e:
        display(e, task)
