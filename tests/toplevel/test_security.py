"""The standalone app under a hostile browser: real HTTP requests against a started server (gradio 3.41, 3.43, 4.40 and 6.x).

Oracle: the browser's rules (a cross-origin page can read an answer only with ``Access-Control-Allow-Origin``; a
DNS-rebinding page sends its own name as ``Host``) and what the server actually answers on the socket.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from extension import security

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outputs")
    if any(part.startswith(".") for part in folder.parts):
        # gradio 3.41 serves no file under a dot-folder, and nox puts TMPDIR in .nox/<session>/tmp
        folder = Path(tempfile.mkdtemp(prefix="reimagine-outputs-", dir="/tmp"))
    return folder


@pytest.fixture(scope="module")
def running(outdir: Path) -> Iterator[Any]:
    from extension.app import start

    app = start(0, [], models=[], outdir=outdir, quiet=True, allowed_hosts=["reimagine.test"])
    try:
        yield app
    finally:
        app.close()


def _request(running: Any, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None):
    port = int(running.url.rstrip("/").rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        # skip_host: the Host header is ours to set (a DNS-rebinding page sends its own name)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        for key, value in sent.items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_binds_loopback_by_default(running: Any) -> None:
    assert running.url.startswith("http://127.0.0.1:")
    assert running.demo.server_name == "127.0.0.1"


def test_same_origin_and_loopback_names_are_answered(running: Any) -> None:
    port = running.url.rstrip("/").rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "reimagine.test"):
        status, headers, _ = _request(running, "GET", "/reimagine/v1/models", {"Host": host})
        assert status == 200, host
    status, headers, body = _request(running, "GET", "/reimagine/v1/models", {"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and json.loads(body) == []
    assert headers.get("access-control-allow-origin") != "*"


def test_cross_origin_preflight_is_refused(running: Any) -> None:
    status, headers, _ = _request(
        running,
        "OPTIONS",
        "/reimagine/v1/variations",
        {"Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert status == 403
    assert "access-control-allow-origin" not in headers


@pytest.mark.parametrize("path", ["/reimagine/v1/models", "/", "/config"])
def test_cross_origin_requests_are_refused_not_just_unreadable(running: Any, path: str) -> None:
    status, headers, _ = _request(running, "GET", path, {"Origin": EVIL})
    assert status == 403
    assert "access-control-allow-origin" not in headers
    # a form POST (no preflight) must not start anything either
    status, _, _ = _request(
        running, "POST", "/reimagine/v1/variations", {"Origin": "null", "Content-Type": "text/plain"}, b"{}"
    )
    assert status == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7861", "127.0.0.1.evil.example", ""])
def test_foreign_host_is_refused(running: Any, host: str) -> None:
    """DNS rebinding: the page's own name arrives as Host, with no Origin on a same-origin request."""
    status, _, body = _request(running, "GET", "/reimagine/v1/models", {"Host": host})
    assert status == 400
    assert "not allowed" in json.loads(body)["detail"]


def test_cross_origin_websocket_is_refused(running: Any) -> None:
    status, _, _ = _request(
        running,
        "GET",
        "/queue/join",
        {
            "Origin": EVIL,
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert status == 403


# gradio's file routes: at the root in gradio 3 and 4, under /gradio_api/ in gradio 5 and 6; all are guarded
FILE_PREFIXES = ("/file", "/gradio_api/file")


@pytest.mark.parametrize("prefix", FILE_PREFIXES)
def test_file_route_serves_no_file_of_the_working_directory(running: Any, outdir: Path, prefix: str) -> None:
    secret = Path.cwd() / "README.md"
    assert secret.is_file()
    for path in (
        f"{prefix}=README.md",
        f"{prefix}={quote(str(secret))}",
        f"{prefix}/{quote(str(secret))}",
        f"{prefix}={quote(str(outdir))}/../../{quote(secret.name)}",
        f"{prefix}=/etc/passwd",
    ):
        status, _, body = _request(running, "GET", path)
        assert status == 403, (path, body[:80])


def test_an_output_is_served_by_this_gradios_file_route(running: Any, outdir: Path) -> None:
    (outdir / "00000-1.png").write_bytes(b"\x89PNG fake")
    answers = {
        prefix: _request(running, "GET", f"{prefix}={quote(str(outdir / '00000-1.png'))}") for prefix in FILE_PREFIXES
    }
    served = [prefix for prefix, (status, _, body) in answers.items() if status == 200 and body == b"\x89PNG fake"]
    assert len(served) == 1, {prefix: status for prefix, (status, _, _) in answers.items()}


@pytest.mark.parametrize("prefix", FILE_PREFIXES)
def test_symlink_out_of_the_outputs_is_refused(running: Any, outdir: Path, prefix: str) -> None:
    link = outdir / "link.md"
    if not link.exists():
        os.symlink(Path.cwd() / "README.md", link)
    status, _, _ = _request(running, "GET", f"{prefix}={quote(str(link))}")
    assert status == 403


def test_host_names() -> None:
    assert security.host_name("[::1]:7861") == "::1"
    assert security.host_name("LocalHost:80") == "localhost"
    assert security.origin_host("null") is None
    assert security.origin_host("http://[::1]:7861") == "::1"
    names = security.allowed_host_names("192.168.1.5", ["box.lan", "[fe80::1]", "::2"])
    assert {"127.0.0.1", "localhost", "::1", "192.168.1.5", "box.lan", "fe80::1", "::2"} == set(names)
    assert "0.0.0.0" not in security.allowed_host_names("0.0.0.0")


def test_cli_passes_listen_and_allowed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    from extension import app, cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(app, "serve", lambda **kwargs: seen.update(kwargs) or 0)
    assert cli.main(["serve", "--listen", "0.0.0.0", "--allowed-hosts", "box.lan, 10.0.0.2"]) == 0
    assert seen["listen"] == "0.0.0.0" and seen["allowed_hosts"] == ["box.lan", "10.0.0.2"]
