"""The REST API inside the WebUI (stand-in): registered on app start, --api / --nowebui, --api-auth, queue and state."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from tests.webui_stub.fixture import StubWebUI


def _app_after_start(webui: StubWebUI, **flags) -> FastAPI:
    from modules import script_callbacks, shared

    for flag, value in flags.items():
        setattr(shared.cmd_opts, flag, value)
    webui.load_scripts()
    if not flags.get("nowebui"):
        script_callbacks.ui_tabs_callback()  # the WebUI builds the UI before it starts the app
    app = FastAPI()
    script_callbacks.app_started_callback(None if flags.get("nowebui") else object(), app)
    return app


def route_paths(app: FastAPI) -> set[str]:
    """Every route path of ``app``, also those of included routers: FastAPI 0.16x keeps an included router as ONE
    lazy ``app.routes`` entry (``original_router`` + ``include_context.prefix``) instead of copying its routes."""
    paths: set[str] = set()

    def walk(routes: list, prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
            else:
                paths.add(prefix + getattr(route, "path", ""))

    walk(app.routes, "")
    return paths


_routes = route_paths


def test_no_api_routes_without_api_flag(webui: StubWebUI) -> None:
    assert not any(path.startswith("/reimagine/") for path in _routes(_app_after_start(webui)))


@pytest.mark.parametrize("flag", ["api", "nowebui"])
def test_routes_with_api_or_nowebui(webui: StubWebUI, flag: str) -> None:
    paths = _routes(_app_after_start(webui, **{flag: True}))
    assert {
        "/reimagine/v1/models",
        "/reimagine/v1/variations",
        "/reimagine/v1/interpolate",
        "/reimagine/v1/refine",
    } <= paths


def test_api_auth_applies_to_our_routes(webui: StubWebUI) -> None:
    client = TestClient(_app_after_start(webui, api=True, api_auth="user:pw"))
    assert client.get("/reimagine/v1/models").status_code == 401
    answer = client.get("/reimagine/v1/models", auth=("user", "pw"))
    assert answer.status_code == 200 and answer.json() == []


def test_variation_runs_under_the_queue_and_reports_progress(webui: StubWebUI, tiny) -> None:
    import shutil

    from modules import shared

    shutil.copy(
        tiny.unclip_h.safetensors, webui.root / "models" / "Stable-diffusion" / "sd21-unclip-h-tiny.safetensors"
    )
    import os

    os.environ["REIMAGINE_CONFIG_ROOT"] = str(tiny.config_root)
    try:
        client = TestClient(_app_after_start(webui, api=True))
        models = client.get("/reimagine/v1/models").json()
        assert models == [
            {"name": "sd21-unclip-h-tiny.safetensors", "kind": "unclip-h", "path": "sd21-unclip-h-tiny.safetensors"}
        ]
        pixels = np.random.RandomState(0).randint(0, 256, (64, 64, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        body = {
            "images": [base64.b64encode(buffer.getvalue()).decode()],
            "steps": 2,
            "seed": 3,
            "model": "sd21-unclip-h-tiny.safetensors",
        }
        answer = client.post("/reimagine/v1/variations", json=body)
    finally:
        os.environ.pop("REIMAGINE_CONFIG_ROOT", None)
    assert answer.status_code == 200, answer.text
    assert json.loads(answer.json()["info"])["all_seeds"] == [3]
    calls = [call[0] for call in shared.state.calls]
    assert "begin" in calls and "end" in calls and calls.index("begin") < calls.index("end")
    assert (shared.state.sampling_step, shared.state.sampling_steps) == (2, 2)  # the progress endpoint saw the steps
