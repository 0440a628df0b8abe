"""``python -m extension serve``: the REST routes and the host guard are in place before the port opens.

gradio's ``launch()`` starts answering requests at once; routes added after it returned left a moment in which the
page was served and ``/reimagine/v1/*`` answered 404. Here the very first request after the port opens (no waiting
for the printed "open" line) must already reach the REST API. Oracle: the HTTP status of a real server process.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _first_response(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 180) -> tuple[int, bytes]:
    """Send ``GET path`` as soon as a connection is accepted (retrying only refused connections, which carried no
    request); the status and body of that first request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode} before opening port {port}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.connect()
        except OSError:
            time.sleep(0.005)
            continue
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()
    raise AssertionError(f"port {port} did not open within {timeout} s")


@pytest.mark.slow
def test_rest_routes_answer_the_first_request_after_the_port_opens(tmp_path: Path) -> None:
    port = _free_port()
    models = tmp_path / "models"
    models.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "extension", "serve", "--port", str(port), "--models-dir", str(models)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        status, body = _first_response(port, "/reimagine/v1/models", process)
        assert status == 200, body[:300]
        assert isinstance(json.loads(body), (list, dict))
        # the host guard is in place from the first request too
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", "/reimagine/v1/models", headers={"Host": "evil.example"})
        assert connection.getresponse().status == 400
        connection.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
