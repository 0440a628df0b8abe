"""The refiner post-pass through the WebUI's own REST API (``/sdapi/v1/txt2img``, ``/sdapi/v1/script-info``), as the
stand-in of modules/api/api.py imitates it from the real A1111 v1.10.1 / Forge source: ``alwayson_scripts`` keys
matched case-insensitively, args copied over the UI defaults, the request's ``infotext`` filling script args."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.webui.refiner.stand_in import ON, PREFIX, Tab, params
from tests.webui.refiner.stand_in import site as site  # noqa: F401 -- pytest fixture
from tests.webui_stub.fixture import StubWebUI
from tests.webui_stub.fixture import webui as webui  # noqa: F401 -- pytest fixture


@pytest.fixture
def client(site: StubWebUI) -> Any:
    """A FastAPI app with the stand-in's ``Api`` routes over a txt2img tab whose UI was built."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from modules import infotext_utils, scripts, sd_models, shared

    tab = Tab(site)
    infotext_utils.add_paste_fields("txt2img", None, list(tab.runner.infotext_fields))
    scripts.scripts_txt2img = tab.runner
    shared.sd_model = sd_models.StubSdModel(is_sdxl=False)
    app = FastAPI()
    importlib.import_module("modules.api.api").Api(app, threading.Lock())
    return TestClient(app)


REQUEST = {"prompt": "a cat", "seed": 3, "steps": 3, "width": 64, "height": 64, "sampler_name": "Euler"}


def infotext(response: Any) -> str:
    import json

    assert response.status_code == 200, response.text
    return json.loads(response.json()["info"])["infotexts"][0]


def test_script_info_lists_the_accordion(client: Any) -> None:
    info = client.get("/sdapi/v1/script-info").json()
    ours = [s for s in info if s["name"] == "refiner post-pass"]
    assert ours and ours[0]["is_alwayson"] and not ours[0]["is_img2img"]
    assert len(ours[0]["args"]) >= 4


def test_alwayson_scripts_key_is_case_insensitive(client: Any) -> None:
    text = infotext(
        client.post("/sdapi/v1/txt2img", json={**REQUEST, "alwayson_scripts": {"Refiner Post-Pass": {"args": [ON]}}})
    )
    assert params(text)[f"{PREFIX} strength"] == "0.3"
    off = infotext(client.post("/sdapi/v1/txt2img", json=REQUEST))
    assert PREFIX not in off
    bad = client.post("/sdapi/v1/txt2img", json={**REQUEST, "alwayson_scripts": {"no such script": {"args": []}}})
    assert bad.status_code == 422


def test_infotext_field_sets_the_post_pass_arguments(client: Any, tmp_path: Path) -> None:
    """The WebUI's ``infotext`` request field fills script args through the paste fields (api.py:363-430)."""
    first = infotext(
        client.post("/sdapi/v1/txt2img", json={**REQUEST, "alwayson_scripts": {"refiner post-pass": {"args": [ON]}}})
    )
    again = infotext(client.post("/sdapi/v1/txt2img", json={**REQUEST, "infotext": first}))
    keys = {k: v for k, v in params(first).items() if k.startswith(PREFIX)}
    assert keys and {k: v for k, v in params(again).items() if k.startswith(PREFIX)} == keys
