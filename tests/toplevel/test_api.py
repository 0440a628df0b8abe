"""REST API: shapes like /sdapi/v1/txt2img, auth, every validation case, concurrency."""

from __future__ import annotations

import base64
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from extension import api, infotext, rest


@dataclass(frozen=True)
class ModelEntry:
    """A model entry as the hosts offer them (extension.api.ModelEntry is the Protocol it must satisfy)."""

    name: str
    kind: str
    path: str


def _b64(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def _image(seed: int, size=(48, 40)) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8))


class FakeBackend:
    """The host side: one tiny model, a job lock like the WebUI's queue_lock, and a record of jobs."""

    def __init__(self, pipe, refiner) -> None:
        self.pipes = {"unclip-h": pipe, "sdxl-refiner": refiner}
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.jobs: list[str] = []
        self.loads: list[str] = []
        self.planned: list[dict | None] = []  # the job sizes the host is asked to plan memory for

    def models(self):
        return [
            ModelEntry("sd21-unclip-h", "unclip-h", "sd21-unclip-h.safetensors"),
            ModelEntry("sd_xl_refiner_1.0", "sdxl-refiner", "sd_xl_refiner_1.0.safetensors"),
        ]

    def load(self, entry, job=None):
        self.loads.append(entry.name)
        self.planned.append(job)
        return self.pipes[entry.kind]

    def run_job(self, description, job):
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            try:
                self.jobs.append(description)
                return job(lambda step, total: None, lambda: False)
            finally:
                self.running -= 1


@pytest.fixture(scope="module")
def backend(tiny):
    from extension.loading import load_sdxl, load_unclip

    return FakeBackend(load_unclip(tiny.unclip_h.folder), load_sdxl(tiny.sdxl_refiner.folder, role="refiner"))


def _client(backend, api_auth=None) -> TestClient:
    app = FastAPI()
    api.add_routes(app, backend, api_auth=api_auth)
    return TestClient(app)


@pytest.fixture(scope="module")
def client(backend) -> TestClient:
    return _client(backend)


def _body(**changes):
    body = {"images": [_b64(_image(1))], "steps": 2, "seed": 5, "width": 64, "height": 64}
    body.update(changes)
    return body


def test_models_lists_name_kind_and_relative_path(client):
    answer = client.get("/reimagine/v1/models")
    assert answer.status_code == 200
    assert answer.json() == [
        {"name": "sd21-unclip-h", "kind": "unclip-h", "path": "sd21-unclip-h.safetensors"},
        {"name": "sd_xl_refiner_1.0", "kind": "sdxl-refiner", "path": "sd_xl_refiner_1.0.safetensors"},
    ]


def test_variations_answer_like_txt2img(client, backend):
    answer = client.post("/reimagine/v1/variations", json=_body(batch_size=2, noise_level=300, prompt="a boat"))
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert set(data) == {"images", "parameters", "info"}
    assert len(data["images"]) == 2
    info = json.loads(data["info"])
    assert info["all_seeds"] == [5, 6]
    png = Image.open(io.BytesIO(base64.b64decode(data["images"][1])))
    assert png.size == (64, 64)
    parsed = infotext.parse(png.info["parameters"])
    assert parsed["Seed"] == "6" and parsed["Noise level"] == "300" and parsed["Prompt"] == "a boat"
    assert info["infotexts"][1] == png.info["parameters"]
    assert data["parameters"]["noise_level"] == 300
    # the host plans memory for this request's size and batch, not the model's native size
    assert backend.planned[-1] == {"width": 64, "height": 64, "batch_size": 2}


def test_mix_of_two_images_with_weights_and_data_url(client):
    data_url = "data:image/jpeg;base64," + _b64(_image(2), "JPEG")
    answer = client.post("/reimagine/v1/variations", json=_body(images=[_b64(_image(1)), data_url], weights=[3, 1]))
    assert answer.status_code == 200, answer.text
    assert 'Mix weights: "3, 1"' in json.loads(answer.json()["info"])["infotexts"][0]


def test_interpolate_returns_the_frames_in_order(client):
    body = _body(images=[_b64(_image(1)), _b64(_image(2))], frames=3)
    answer = client.post("/reimagine/v1/interpolate", json=body)
    assert answer.status_code == 200, answer.text
    texts = json.loads(answer.json()["info"])["infotexts"]
    assert [infotext.parse(t)["Interpolation"] for t in texts] == ["1/3", "2/3", "3/3"]


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"images": ["not base64!!"]}, 422, "images[0] is not valid base64"),
        ({"images": [base64.b64encode(b"hello world").decode()]}, 422, "images[0] is not an image"),
        ({"images": []}, 422, "images must be a list of 1 to 16"),
        ({"noise_level": 1000}, 422, "noise_level must be an integer from 0 to 999"),
        ({"steps": 0}, 422, "steps must be an integer from 1 to 150"),
        ({"sampler_name": "Nope"}, 422, "sampler_name must be one of"),
        ({"fit": "stretch"}, 422, "fit must be one of"),
        ({"weights": [1, 1]}, 422, "got 2 weight(s) for 1 image(s)"),
        ({"model": "other"}, 404, "unknown model 'other'"),
        ({"model": "../../etc/passwd"}, 422, "not a path"),
        ({"model": "sub/sd21-unclip-h"}, 422, "not a path"),
    ],
)
def test_bad_input_is_a_4xx_with_a_message(client, backend, changes, status, message):
    loads_before = len(backend.loads)
    answer = client.post("/reimagine/v1/variations", json=_body(**changes))
    assert answer.status_code == status
    assert message in answer.json()["detail"]
    assert len(backend.loads) == loads_before  # nothing was loaded or run for bad input


def test_unknown_field_and_wrong_type_are_4xx(client):
    typo = client.post("/reimagine/v1/variations", json=_body(noise_levle=10))
    assert typo.status_code == 422
    wrong_type = client.post("/reimagine/v1/variations", json=_body(steps="many"))
    assert wrong_type.status_code == 422


def test_oversized_image_is_refused_with_the_limit(client, monkeypatch):
    monkeypatch.setattr(rest, "MAX_IMAGE_PIXELS", 32 * 32)
    answer = client.post("/reimagine/v1/variations", json=_body())
    assert answer.status_code == 413
    assert "48x40" in answer.json()["detail"] and "1,024 pixels" in answer.json()["detail"]


def test_api_auth_is_honoured(backend):
    secured = _client(backend, api_auth="alice:secret,bob:hunter2")
    assert secured.get("/reimagine/v1/models").status_code == 401
    assert secured.get("/reimagine/v1/models", auth=("alice", "wrong")).status_code == 401
    assert secured.get("/reimagine/v1/models", auth=("bob", "hunter2")).status_code == 200
    assert secured.post("/reimagine/v1/variations", json=_body()).status_code == 401
    assert secured.post("/reimagine/v1/variations", json=_body(), auth=("alice", "secret")).status_code == 200


def test_concurrent_requests_serialize_and_all_complete(client, backend):
    backend.max_running = 0

    def call(seed: int):
        return client.post("/reimagine/v1/variations", json=_body(seed=seed))

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(call, range(100, 104)))
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(json.loads(a.json()["info"])["all_seeds"][0] for a in answers) == [100, 101, 102, 103]
    assert backend.max_running == 1


def _png_with_infotext(image: Image.Image, text: str) -> str:
    from extension.outputs import png_info

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info(text))
    return base64.b64encode(buffer.getvalue()).decode()


def test_refine_uploaded_image_inherits_its_infotext(client, backend):
    base_text = infotext.build(
        "a lighthouse at dusk", "blurry", {"Steps": 20, "Sampler": "Euler", "Seed": 3, "CFG scale": 5}
    )
    body = {"images": [_png_with_infotext(_image(3, (64, 64)), base_text)], "strength": 0.3, "steps": 2, "seed": 11}
    answer = client.post("/reimagine/v1/refine", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    refined = Image.open(io.BytesIO(base64.b64decode(data["images"][0])))
    assert refined.size == (64, 64)
    parsed = infotext.parse(refined.info["parameters"])
    assert parsed["Prompt"] == "a lighthouse at dusk"  # the base generation's parameters are kept
    assert parsed["Refiner post-pass strength"] == "0.3"
    assert parsed["Refiner post-pass steps"] == "2"
    assert parsed["Refiner post-pass"] == backend.pipes["sdxl-refiner"].reimagine_info.name
    assert "Refiner" not in parsed  # the native refiner's key is never written


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"strength": 1.5}, 422, "strength must be a number from 0 to 1"),
        ({"steps": 0}, 422, "steps must be an integer from 1 to 150"),
        ({"model": "sd21-unclip-h"}, 404, "unknown model 'sd21-unclip-h'"),
        ({"aesthetic_score": "high"}, 422, ""),
    ],
)
def test_refine_rejects_bad_values(client, changes, status, message):
    body = {"images": [_b64(_image(3, (64, 64)))], "steps": 2, **changes}
    answer = client.post("/reimagine/v1/refine", json=body)
    assert answer.status_code == status
    assert message in json.dumps(answer.json()["detail"])


def test_refine_refuses_fields_of_the_txt2img_hook(client):
    answer = client.post("/reimagine/v1/refine", json={"images": [_b64(_image(3, (64, 64)))], "enabled": True})
    assert answer.status_code == 422
