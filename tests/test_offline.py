"""Tests run offline: a hub download or a raw connection fails fast instead of hanging; loopback still works."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest


def test_offline_environment_is_set() -> None:
    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
    assert "reimagine-hf-home-" in os.environ["HF_HOME"]


@pytest.mark.timeout(30)
def test_raw_connection_is_refused_at_once(network_attempts: list[tuple[str, Any]]) -> None:
    with pytest.raises(OSError, match="network access blocked"):
        socket.create_connection(("huggingface.co", 443), timeout=20)
    with pytest.raises(OSError, match="network access blocked"):
        socket.getaddrinfo("huggingface.co", 443)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError, match="network access blocked"):
            sock.connect(("8.8.8.8", 53))
    finally:
        sock.close()
    assert [kind for kind, _ in network_attempts] == ["create_connection", "getaddrinfo", "connect"]


@pytest.mark.timeout(30)
def test_hub_download_fails_fast_even_with_offline_mode_unset(
    hub_online: None, network_attempts: list[tuple[str, Any]]
) -> None:
    import huggingface_hub
    import huggingface_hub.constants

    assert "HF_HUB_OFFLINE" not in os.environ and huggingface_hub.constants.HF_HUB_OFFLINE is False
    with pytest.raises(Exception) as err:  # LocalEntryNotFoundError / ConnectionError, depending on the hub version
        huggingface_hub.hf_hub_download("stabilityai/stable-diffusion-2-1-unclip", "model_index.json")
    assert not isinstance(err.value, huggingface_hub.errors.OfflineModeIsEnabled), "offline mode was still on"
    assert network_attempts, "the download should have tried (and been refused) a connection"


@pytest.mark.timeout(30)
def test_hub_download_in_offline_mode_makes_no_attempt(network_attempts: list[tuple[str, Any]]) -> None:
    import huggingface_hub

    with pytest.raises(Exception):  # noqa: B017 -- offline mode: LocalEntryNotFoundError
        huggingface_hub.hf_hub_download("stabilityai/stable-diffusion-2-1-unclip", "model_index.json")
    assert network_attempts == []


@pytest.mark.timeout(30)
def test_loopback_stays_allowed() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    received: list[bytes] = []

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(16))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("localhost", port), timeout=10) as client:
            client.sendall(b"ping")
        thread.join(10)
    finally:
        server.close()
    assert received == [b"ping"]
