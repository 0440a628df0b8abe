"""Keep the standalone app local: no cross-site requests, no DNS rebinding, no files outside our folders.

gradio answers every route with ``Access-Control-Allow-Origin: *`` (gradio 3.41 ``routes.py``: ``CORSMiddleware``
with ``allow_origins=["*"]``), checks no ``Host`` header, and its ``/file=`` route serves any file under the folder the
server was started in (3.41: ``in_app_dir``). :func:`install` replaces gradio's CORS middleware with
:class:`LocalOnly`, the way the WebUI drops gradio's own (A1111 ``webui.py`` filters ``CORSMiddleware`` out of
``app.user_middleware`` and rebuilds the stack, ``modules/initialize_util.py`` ``setup_middleware``).

Hand-written rather than starlette's ``TrustedHostMiddleware``: that one splits ``Host`` on ``:`` and so cannot accept
``[::1]:7861``, and neither it nor ``CORSMiddleware`` refuses a cross-site request outright (CORSMiddleware only leaves
out the response header; the job would still run) or covers websockets and ``/file=``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# gradio 3.41 and 4.40: ``/file={path}`` and the deprecated ``/file/{path}``; gradio 5 and 6 serve them under
# ``/gradio_api/`` (and not at the root any more)
FILE_ROUTES = ("file=", "file/", "gradio_api/file=", "gradio_api/file/")


def host_name(value: str) -> str:
    """The host name of a ``Host`` header value (``name``, ``name:port``, ``[v6]``, ``[v6]:port``), lower-case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def origin_host(origin: str) -> str | None:
    """The host name of an ``Origin`` header (``scheme://host[:port]``); ``None`` for ``null`` or anything else."""
    found = origin_parts(origin)
    return found[1] if found else None


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_parts(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an ``Origin`` header, the port filled in from the scheme; None if unreadable."""
    try:
        parts = urlsplit(origin.strip())
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            return None
        return parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:  # a port out of range or not a number
        return None


def host_port(value: str) -> int | None:
    """The port of a ``Host`` header value (``name:port``, ``[v6]:port``); None when it names none."""
    value = value.strip()
    tail = value[value.find("]") + 1 :] if value.startswith("[") else (value if value.count(":") == 1 else "")
    port = tail.rpartition(":")[2] if ":" in tail else ""
    return int(port) if port.isdigit() else None


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` (scheme + host + port) is the origin this ``Host`` was asked for: a page on another
    local port (another local app) is another origin, as browsers count origins."""
    found = origin_parts(origin)
    if found is None:
        return False
    scheme, name, port = found
    return name == host_name(host) and port == (host_port(host) or DEFAULT_PORTS[scheme])


def allowed_host_names(listen: str | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The loopback names plus the ``--listen`` address (unless a wildcard) and every ``--allowed-hosts`` name."""
    names = set(LOCAL_HOSTS)
    if listen and listen not in ("0.0.0.0", "::"):
        names.add(_bare(listen))
    names.update(_bare(name) for name in extra if name.strip())
    return frozenset(names)


def _bare(name: str) -> str:
    """``name`` as :func:`host_name` returns it; a bare IPv6 address (``::1``) has no port to split off."""
    name = name.strip()
    return name.lower() if name.count(":") > 1 and not name.startswith("[") else host_name(name)


def is_inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path`` (symlinks resolved) lies in one of ``roots``."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


class LocalOnly:
    """ASGI middleware: refuse a foreign ``Host`` (400), an ``Origin`` other than the page's own scheme + host + port
    (403, preflights too), and ``/file=`` outside ``file_roots`` (403); http and websocket alike. Adds no CORS
    header: same-origin pages need none."""

    def __init__(self, app: Any, hosts: Iterable[str], file_roots: Sequence[Path]) -> None:
        self.app = app
        self.hosts = frozenset(hosts)
        self.file_roots = [Path(root).resolve() for root in file_roots]

    def refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        """``(status, message)`` when the request must be refused, else ``None``."""
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
        host = headers.get("host")
        if host is None or host_name(host) not in self.hosts:
            return 400, f"Host {host!r} is not allowed; start the app with --allowed-hosts to add a name"
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host):
            return 403, f"cross-origin request from {origin!r} refused (only {host!r}'s own pages may call it)"
        path = scope.get("path", "")
        trimmed = path.lstrip("/")
        for prefix in FILE_ROUTES:
            if trimmed.startswith(prefix):
                requested = trimmed[len(prefix) :]
                if requested.startswith(("http://", "https://")) or not is_inside(Path(requested), self.file_roots):
                    return 403, "file not allowed: only outputs and gradio's temporary files are served"
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        status, message = refused
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def gradio_file_roots(app: Any) -> list[Path]:
    """gradio's own upload/temp folder (``GRADIO_TEMP_DIR`` or ``<tmp>/gradio``), where it keeps shown files."""
    folder = getattr(app, "uploaded_file_dir", None) or os.environ.get("GRADIO_TEMP_DIR")
    return [Path(folder)] if folder else []


def private_temp_dir() -> Path:
    """gradio's temp folder for this process only: a new ``GRADIO_TEMP_DIR`` (mode 0700, removed at exit) unless the
    user named one. The default ``<tmp>/gradio`` is shared by every gradio app and user of the machine, and ``/file=``
    serves it."""
    named = os.environ.get("GRADIO_TEMP_DIR")
    if named:
        return Path(named)
    folder = Path(tempfile.mkdtemp(prefix="reimagine-gradio-"))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def install(app: Any, hosts: Iterable[str], file_roots: Sequence[Path]) -> None:
    """Put :class:`LocalOnly` outermost on a started gradio app and drop gradio's CORS middleware (both gradio 3's
    ``CORSMiddleware`` and gradio 4's ``CustomCORSMiddleware``)."""
    from starlette.middleware import Middleware

    roots = [*file_roots, *gradio_file_roots(app)]
    kept = [
        entry
        for entry in app.user_middleware
        if "CORSMiddleware" not in getattr(entry.cls, "__name__", "") and entry.cls is not LocalOnly
    ]
    app.user_middleware[:] = [Middleware(LocalOnly, hosts=frozenset(hosts), file_roots=roots), *kept]
    app.middleware_stack = app.build_middleware_stack()
