"""Network guard for test subprocesses (``PYTHONPATH=tests/netguard_site:<repo>``): see tests/netguard.py."""

from __future__ import annotations

import os

try:
    from tests.netguard import NetworkGuard
except ImportError:  # the repository root is not on the path: nothing to guard with
    NetworkGuard = None  # type: ignore[assignment,misc]

if NetworkGuard is not None:

    class _LoggingGuard(NetworkGuard):
        def _block(self, what: str, target: object) -> None:
            log = os.environ.get("REIMAGINE_NETWORK_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as file:
                    file.write(f"{os.getpid()} {what} {target!r}\n")
            super()._block(what, target)

    _LoggingGuard().install()
