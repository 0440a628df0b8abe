"""The tests' network guard: only loopback (and AF_UNIX) connections work; every other attempt fails at once.

Used in-process by tests/conftest.py and, for commands the tests run as subprocesses (README commands, the app),
through ``tests/netguard_site/sitecustomize.py`` (put on ``PYTHONPATH``), which also appends each attempt to the file
named by ``$REIMAGINE_NETWORK_LOG`` so that the test can fail on it. Standard library only.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any


class NetworkBlockedError(ConnectionRefusedError):
    """Raised instead of any non-loopback network access during tests."""


def _is_ip_literal(host: Any) -> bool:
    try:
        ipaddress.ip_address(str(host.decode("ascii", "replace") if isinstance(host, bytes) else host).split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_local_host(host: Any) -> bool:
    if host is None or host in ("", "localhost", "localhost.localdomain"):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        addr = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    return addr.is_loopback or addr.is_unspecified


class NetworkGuard:
    """Patches ``socket`` so that only loopback (and AF_UNIX) connections work; every other attempt is recorded and
    fails at once with :class:`NetworkBlockedError` (an ``OSError``: requests/urllib3/httpx turn it into their
    connection errors instead of hanging on DNS or TCP timeouts)."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, Any]] = []
        self._saved: dict[str, Any] = {}

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    def _block(self, what: str, target: Any) -> None:
        self.attempts.append((what, target))
        raise NetworkBlockedError(f"network access blocked in tests: {what} {target!r}")

    def _check_address(self, sock: socket.socket, address: Any) -> None:
        inet = sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
        # connecting a UDP socket sends nothing (Ray finds its own address that way); a TCP connect is an access
        if inet and sock.type != socket.SOCK_DGRAM and not _is_local_host(address[0]):
            self._block("connect", address)

    def install(self) -> None:
        if self.installed:
            return
        guard = self
        orig = {
            "connect": socket.socket.connect,
            "connect_ex": socket.socket.connect_ex,
            "create_connection": socket.create_connection,
            "getaddrinfo": socket.getaddrinfo,
        }

        def connect(sock: socket.socket, address: Any) -> Any:
            guard._check_address(sock, address)
            return orig["connect"](sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            guard._check_address(sock, address)
            return orig["connect_ex"](sock, address)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
            if not _is_local_host(address[0]):
                guard._block("create_connection", address)
            return orig["create_connection"](address, *args, **kwargs)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not _is_local_host(host) and not _is_ip_literal(host):  # a literal needs no name lookup
                guard._block("getaddrinfo", host)
            return orig["getaddrinfo"](host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.create_connection = create_connection  # type: ignore[assignment]
        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        self._saved = orig

    def uninstall(self) -> None:
        if not self.installed:
            return
        socket.socket.connect = self._saved["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = self._saved["connect_ex"]  # type: ignore[method-assign]
        socket.create_connection = self._saved["create_connection"]  # type: ignore[assignment]
        socket.getaddrinfo = self._saved["getaddrinfo"]  # type: ignore[assignment]
        self._saved = {}
