"""Stand-in of modules/fifo_lock.py: a lock that hands itself out in request order."""

from __future__ import annotations

import collections
import threading


class FIFOLock:
    """First come, first served lock (``call_queue.queue_lock``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inner_lock = threading.Lock()
        self._pending_threads: collections.deque[threading.Event] = collections.deque()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock, after every thread that asked before."""
        with self._inner_lock:
            lock_acquired = self._lock.acquire(False)
            if lock_acquired:
                return True
            if not blocking:
                return False
            release_event = threading.Event()
            self._pending_threads.append(release_event)
        release_event.wait()
        return self._lock.acquire()

    def release(self) -> None:
        """Release and wake the next waiting thread."""
        with self._inner_lock:
            if self._pending_threads:
                release_event = self._pending_threads.popleft()
                release_event.set()
            self._lock.release()

    __enter__ = acquire

    def __exit__(self, t, v, tb) -> None:
        self.release()
