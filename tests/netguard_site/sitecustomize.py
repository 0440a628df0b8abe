"""Network guard for test subprocesses (``PYTHONPATH=tests/netguard_site``): see tests/netguard.py."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_reimagine_netguard", Path(__file__).resolve().parents[1] / "netguard.py"
)
if _spec is not None and _spec.loader is not None:
    _netguard = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_netguard)
    NetworkGuard = _netguard.NetworkGuard

    class _LoggingGuard(NetworkGuard):
        def _block(self, what: str, target: object) -> None:
            log = os.environ.get("REIMAGINE_NETWORK_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as file:
                    file.write(f"{os.getpid()} {what} {target!r}\n")
            super()._block(what, target)

    _LoggingGuard().install()
