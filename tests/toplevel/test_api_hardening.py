"""REST API under bad requests: strict types, documented ranges, odd images, work bounds, stopping a job.

Oracles: the README's documented ranges and error shape (``{"detail": "<message>"}``), the EXIF specification
(orientation 6 = the stored picture is shown turned 90° clockwise), 16-bit → 8-bit scaling by 1/257 (what the WebUI
does), RFC 2045 line-wrapped base64 (``base64.encodebytes``), and counts of real engine calls.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from extension import api, infotext, rest
from extension.engine.refiner import planned_steps, schedule_length


@dataclass(frozen=True)
class ModelEntry:
    """A model entry as the hosts offer them (extension.api.ModelEntry is the Protocol it must satisfy)."""

    name: str
    kind: str
    path: str


def _png(image: Image.Image, **save: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _image(size=(64, 64), seed=1) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8))


class Flags:
    """The host's Interrupt / Skip flags (what the WebUI keeps in ``shared.state``)."""

    def __init__(self) -> None:
        self.interrupted = False
        self.skipped = False

    def interrupt(self) -> None:
        self.interrupted = True

    def skip(self) -> None:
        self.skipped = True

    def clear_skip(self) -> None:
        self.skipped = False


class Backend:
    """One tiny model, a job lock, the host's stop flags; ``on_step`` runs at every sampling step."""

    def __init__(self, pipe, refiner) -> None:
        self.pipes = {"unclip-h": pipe, "sdxl-refiner": refiner}
        self.flags = Flags()
        self.lock = threading.Lock()
        self.steps_run = 0
        self.jobs = 0
        self.finished = threading.Event()
        self.on_step = lambda step, total: None

    def models(self):
        return [ModelEntry("unclip", "unclip-h", "unclip.safetensors"), ModelEntry("ref", "sdxl-refiner", "r.st")]

    def load(self, entry, job=None):
        return self.pipes[entry.kind]

    def control(self):
        return self.flags

    def run_job(self, description, job):
        with self.lock:
            self.flags.__init__()
            self.jobs += 1

            def progress(step, total):
                self.steps_run += 1
                self.on_step(step, total)

            try:
                return job(progress, lambda: self.flags.interrupted or self.flags.skipped)
            finally:
                self.finished.set()


@pytest.fixture(scope="module")
def backend(tiny):
    from extension.loading import load_sdxl, load_unclip

    return Backend(load_unclip(tiny.unclip_h.folder), load_sdxl(tiny.sdxl_refiner.folder, role="refiner"))


@pytest.fixture
def client(backend) -> TestClient:
    backend.on_step = lambda step, total: None
    app = FastAPI()
    api.add_routes(app, backend)
    return TestClient(app)


def _body(**changes):
    body = {"images": [_b64(_png(_image()))], "steps": 2, "seed": 5, "width": 64, "height": 64}
    body.update(changes)
    return body


def _refused(answer, status=422) -> str:
    assert answer.status_code == status, answer.text[:300]
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and detail  # the documented shape, also for pydantic's own errors
    return detail


@pytest.mark.parametrize("weights", [["1", "1"], [None, 1], [[1], 1], [{"a": 1}, 1], [True, 1], "1,1"])
def test_weights_of_the_wrong_type_are_422(client, backend, weights) -> None:
    jobs = backend.jobs
    body = _body(images=[_b64(_png(_image())), _b64(_png(_image(seed=2)))], weights=weights)
    assert "weights" in _refused(client.post("/reimagine/v1/variations", json=body))
    assert backend.jobs == jobs


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"steps": 2.7}, "steps must be an integer"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"steps": True}, "steps"),
        ({"steps": "20"}, "steps"),
        ({"noise_level": "1"}, "noise_level"),
        ({"cfg_scale": False}, "cfg_scale"),
        ({"prompt": 5}, "prompt"),
        ({"model": False}, "model"),
        ({"images": [5]}, "images"),
        ({"width": 56, "height": 56}, "width must be 0 (auto) or a multiple of 8 from 64 to 2048"),
        ({"width": 8, "height": 64}, "width must be"),
        ({"width": 2056, "height": 64}, "width"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_lenient_coercion_is_gone(client, changes, needle) -> None:
    assert needle in _refused(client.post("/reimagine/v1/variations", json=_body(**changes)))


def test_integral_float_is_an_integer(client) -> None:
    answer = client.post("/reimagine/v1/variations", json=_body(steps=2.0, seed=5.0))
    assert answer.status_code == 200, answer.text
    assert json.loads(answer.json()["info"])["all_seeds"] == [5]


def test_lone_surrogate_in_a_utf16_body_is_a_422(client) -> None:
    raw = '{"images": ["x"], "prompt": "\\ud800", "\\udfff": 1}'.encode("utf-16")
    answer = client.post("/reimagine/v1/variations", content=raw, headers={"content-type": "application/json"})
    _refused(answer)
    raw = '{"images": ["x"], "prompt": "\\ud800"}'.encode("utf-16")
    answer = client.post("/reimagine/v1/variations", content=raw, headers={"content-type": "application/json"})
    _refused(answer)
    garbage = client.post(
        "/reimagine/v1/variations", content=b"{not json", headers={"content-type": "application/json"}
    )
    _refused(garbage)


@pytest.mark.parametrize("cfg", ["1e30", "-7", "31"])
def test_refine_checks_the_cfg_scale_inherited_from_the_upload(client, backend, cfg) -> None:
    from extension.outputs import png_info

    text = infotext.build("a boat", "", {"Steps": 20, "Sampler": "Euler", "CFG scale": cfg})
    upload = _png(_image(), pnginfo=png_info(text))
    jobs = backend.jobs
    detail = _refused(client.post("/reimagine/v1/refine", json={"images": [_b64(upload)], "steps": 2}))
    assert "cfg_scale" in detail and "infotext" in detail
    assert backend.jobs == jobs
    given = client.post("/reimagine/v1/refine", json={"images": [_b64(upload)], "steps": 1, "cfg_scale": 5})
    assert given.status_code == 200, given.text


def test_denormal_strength_does_not_overflow() -> None:
    assert schedule_length(10, 5e-324) == 1000
    assert planned_steps(10, 5e-324) == 0  # int(1000 * 5e-324): nothing to run, as diffusers counts it


def decode_image(data: str, index: int = 0) -> Image.Image:
    """An upload as the routes read it: probed (size, format), then decoded upright to 8-bit RGB."""
    return rest.decode_images([rest.probe_image(data, index)])[0]


def test_exif_orientation_is_applied(client) -> None:
    picture = Image.new("RGB", (80, 48), "blue")
    picture.paste((255, 0, 0), (0, 0, 8, 8))  # a red corner at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    upload = _png(picture, format="JPEG", exif=exif.tobytes(), quality=95)
    image = decode_image(_b64(upload))
    assert image.size == (48, 80)
    red = np.asarray(image)[:8, -8:]  # shown turned clockwise: the stored top-left is now top-right
    assert red[..., 0].mean() > 200 and red[..., 2].mean() < 60


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257 * 64, 32768, 65535]] * 4, dtype=np.uint16)
    upload = _png(Image.fromarray(values))
    assert Image.open(io.BytesIO(upload)).mode in ("I", "I;16")
    image = np.asarray(decode_image(_b64(upload)))
    assert image.shape == (4, 4, 3)
    assert list(image[0, :, 0]) == [0, 64, round(32768 / 257 - 0.5), 255]


def test_line_wrapped_base64_and_data_url(client) -> None:
    wrapped = base64.encodebytes(_png(_image())).decode()
    assert "\n" in wrapped
    for data in (wrapped, "data:image/png;base64," + wrapped, wrapped.replace("\n", "\r\n")):
        answer = client.post("/reimagine/v1/variations", json=_body(images=[data]))
        assert answer.status_code == 200, answer.text


def test_pixels_per_request_are_bounded_before_decoding(client, monkeypatch) -> None:
    monkeypatch.setattr(rest, "MAX_REQUEST_PIXELS", 2 * 64 * 64)
    decoded = []
    monkeypatch.setattr(rest, "normalized", lambda image: decoded.append(image) or image.convert("RGB"))
    images = [_b64(_png(_image(seed=s))) for s in range(3)]
    assert "limit per request" in _refused(client.post("/reimagine/v1/variations", json=_body(images=images)), 413)
    assert decoded == []


def test_work_per_request_is_bounded(client, backend) -> None:
    jobs = backend.jobs
    body = _body(n_iter=100, batch_size=8, steps=150, width=2048, height=2048)
    detail = _refused(client.post("/reimagine/v1/variations", json=body), 413)
    assert "lower n_iter, batch_size, steps or the size" in detail
    strip = _body(images=[_b64(_png(_image())), _b64(_png(_image(seed=2)))], frames=64, batch_size=8, steps=150)
    strip.update(width=2048, height=2048)
    _refused(client.post("/reimagine/v1/interpolate", json=strip), 413)
    assert backend.jobs == jobs


def test_interrupt_and_skip_routes(client, backend) -> None:
    assert client.post("/reimagine/v1/interrupt", json={}).json() == {}
    assert backend.flags.interrupted
    assert client.post("/reimagine/v1/skip", headers={"X-Requested-With": "curl"}).json() == {}
    assert backend.flags.skipped
    plain = FastAPI()
    api.add_routes(plain, type("NoControl", (), {"models": lambda self: []})())
    assert _refused(TestClient(plain).post("/reimagine/v1/skip", json={}), 409)


@pytest.mark.parametrize(
    "send",
    [{}, {"data": "x=1"}, {"content": b"{}", "headers": {"Content-Type": "text/plain"}}],
    ids=["no body", "form", "text/plain"],
)
def test_a_simple_cross_site_post_cannot_stop_jobs(client, backend, send) -> None:
    """What any web page can send without a CORS preflight (an HTML form, ``fetch`` in no-cors mode) is refused."""
    backend.flags.__init__()
    for action in ("interrupt", "skip"):
        assert "Content-Type: application/json" in _refused(client.post(f"/reimagine/v1/{action}", **send), 415)
    assert not backend.flags.interrupted and not backend.flags.skipped


HOSTILE_PROMPTS = {
    "infinite weight": "(cat:" + "9" * 400 + ")",
    "2000 nested": "(" * 2000 + "cat",
    "over the length": "a" * 40_000,
    "over the chunks": "cat, " * 1300,
}


@pytest.mark.parametrize("prompt", HOSTILE_PROMPTS.values(), ids=list(HOSTILE_PROMPTS))
def test_hostile_prompts_are_422_before_any_job(client, backend, prompt) -> None:
    jobs = backend.jobs
    for route, body in (("variations", _body(prompt=prompt)), ("refine", {"images": _body()["images"]})):
        if route == "refine":
            body["negative_prompt"] = prompt
        detail = _refused(client.post(f"/reimagine/v1/{route}", json=body))
        assert "prompt" in detail
    assert backend.jobs == jobs


def test_a_refine_upload_whose_infotext_carries_a_hostile_prompt_is_422(client, backend) -> None:
    text = "(cat:" + "9" * 400 + ")\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 1, Size: 64x64"
    upload = _b64(_png(_image(), pnginfo=_info(text)))
    detail = _refused(client.post("/reimagine/v1/refine", json={"images": [upload], "steps": 2}))
    assert "inherited from the base image's infotext" in detail


def _info(text: str) -> Any:
    from extension.outputs import png_info

    return png_info(text)


def test_skip_during_a_rest_job_skips_one_batch(client, backend) -> None:
    seen: list[int] = []

    def on_step(step, total):
        seen.append(step)
        if len(seen) == 1:
            backend.flags.skip()  # during the first batch

    backend.on_step = on_step
    answer = client.post("/reimagine/v1/variations", json=_body(n_iter=3, seed=40))
    assert answer.status_code == 200, answer.text
    info = json.loads(answer.json()["info"])
    assert info["all_seeds"] == [41, 42] and not info["interrupted"]
    assert len(answer.json()["images"]) == 2


def test_interrupt_during_a_rest_job_ends_it(client, backend) -> None:
    backend.on_step = lambda step, total: backend.flags.interrupt()
    answer = client.post("/reimagine/v1/variations", json=_body(n_iter=3))
    assert answer.status_code == 200
    assert json.loads(answer.json()["info"])["interrupted"] and answer.json()["images"] == []


def test_a_disconnected_client_stops_its_job(backend) -> None:
    import uvicorn

    app = FastAPI()
    api.add_routes(app, backend)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        started = threading.Event()

        def slow_step(step, total):
            started.set()
            time.sleep(0.05)

        backend.on_step = slow_step
        backend.finished.clear()
        before = backend.steps_run
        payload = json.dumps(_body(steps=150)).encode()
        with socket.create_connection(("127.0.0.1", port)) as conn:
            head = "POST /reimagine/v1/variations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            conn.sendall(head.encode() + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
            assert started.wait(60)
        # the client is gone: the job stops at its next steps instead of running all 150
        assert backend.finished.wait(60)
        assert backend.steps_run - before < 150
    finally:
        server.should_exit = True
        thread.join(10)
