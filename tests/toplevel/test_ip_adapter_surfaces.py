"""The IP-Adapter backend through the CLI (``--backend ip-adapter``): outputs and infotext, file discovery in a
models folder, strips, and one-line errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extension import infotext
from extension.cli import main
from extension.outputs import read_infotext
from tests.tiny_ipadapter import build_tiny_ipadapter


@pytest.fixture(scope="module")
def tiny_ipa(tiny):
    return build_tiny_ipadapter(tiny)


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    path = tmp_path / "cat.png"
    Image.fromarray(np.random.RandomState(1).randint(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def _args(tiny_ipa, out: Path, *extra: str) -> list[str]:
    return [
        "--backend", "ip-adapter", "--model", str(tiny_ipa.sd1), "--config-root", str(tiny_ipa.config_root),
        "--out", str(out), "--steps", "2", "--seed", "7", "--width", "64", "--height", "64", *extra,
    ]  # fmt: skip


def test_vary_with_the_ip_adapter_backend(tiny_ipa, cat, tmp_path) -> None:
    out = tmp_path / "out"
    argv = ["vary", str(cat), *_args(tiny_ipa, out, "--n", "2", "--image-strength", "0.6")]
    argv += ["--ip-adapter", str(tiny_ipa.adapter("ip-adapter_sd15.safetensors")), "--image-encoder"]
    argv += [str(tiny_ipa.unclip_h), "--variation-strength", "0.3", "--keep-composition", "0.5"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["cat-0000.png", "cat-0001.png"]
    parsed = infotext.parse(read_infotext(out / "cat-0001.png"))
    assert parsed["Backend"] == "IP-Adapter" and parsed["IP-Adapter"] == "ip-adapter_sd15"
    assert parsed["Image strength"] == "0.6" and parsed["Variation strength"] == "0.3"
    assert parsed["Keep composition"] == "0.5" and parsed["Seed"] == "8"
    assert "Noise level" not in parsed


def test_files_are_found_in_the_models_folder(tiny_ipa, cat, tmp_path) -> None:
    models = tmp_path / "models"
    (models / "ipadapter").mkdir(parents=True)
    (models / "clip_vision").mkdir()
    for name in ("ip-adapter_sd15.safetensors", "ip-adapter_sdxl_vit-h.safetensors"):
        (models / "ipadapter" / name).symlink_to(tiny_ipa.adapter(name))
    (models / "clip_vision" / tiny_ipa.encoder_file.name).symlink_to(tiny_ipa.encoder_file)
    out = tmp_path / "out"
    assert main(["vary", str(cat), *_args(tiny_ipa, out, "--n", "1", "--models-dir", str(models))]) == 0
    assert infotext.parse(read_infotext(out / "cat-0000.png"))["IP-Adapter"] == "ip-adapter_sd15"


def test_interpolate_with_the_ip_adapter_backend(tiny_ipa, cat, tmp_path) -> None:
    dog = tmp_path / "dog.png"
    Image.fromarray(np.random.RandomState(2).randint(0, 256, (64, 64, 3), dtype=np.uint8)).save(dog)
    out = tmp_path / "strip"
    argv = ["interpolate", str(cat), str(dog), "--frames", "3", *_args(tiny_ipa, out)]
    argv += ["--ip-adapter", str(tiny_ipa.adapter("ip-adapter-plus_sd15.safetensors"))]
    argv += ["--image-encoder", str(tiny_ipa.encoder_folder)]
    assert main(argv) == 0
    frames = sorted(out.glob("*.png"))
    parsed = [infotext.parse(read_infotext(p)) for p in frames]
    assert [p["Interpolation"] for p in parsed] == ["1/3", "2/3", "3/3"]
    assert {p["IP-Adapter"] for p in parsed} == {"ip-adapter-plus_sd15"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--image-strength", "2"], "image_strength must be a number from 0 to 1"),
        (["--ip-adapter", "ip-adapter_nope"], "IP-Adapter ip-adapter_nope not found"),
        (["--models-dir", "{tmp}/empty"], "No IP-Adapter found: put ip-adapter_sd15.safetensors"),
        (["--to-text", "a dog", "--ip-adapter", "{plus}", "--image-encoder", "{enc}"], "plus"),
    ],
)
def test_user_errors_are_one_line(tiny_ipa, cat, tmp_path, capsys, extra, message) -> None:
    plus = tiny_ipa.adapter("ip-adapter-plus_sd15.safetensors")
    extra = [e.format(tmp=tmp_path, plus=plus, enc=tiny_ipa.encoder_file) for e in extra]
    (tmp_path / "empty").mkdir()
    status = main(["vary", str(cat), *_args(tiny_ipa, tmp_path / "o", "--n", "1", *extra)])
    error = capsys.readouterr().err
    assert status == 2, error
    assert error.startswith("error: ") and message in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1


def test_ip_adapter_needs_a_base_model(cat, tmp_path, capsys) -> None:
    status = main(["vary", str(cat), "--backend", "ip-adapter", "--out", str(tmp_path / "o")])
    assert status == 2
    assert "needs --model" in capsys.readouterr().err


# --- the hosts: "checkpoint + adapter" choices, the tab's job, REST --------------------------------------------------


def _models(tiny_ipa, root: Path, *, adapters=("ip-adapter_sd15.safetensors", "ip-adapter-plus_sd15.safetensors")):
    """A standalone-app models folder: the SD 1.5 checkpoint and sd21-unclip-h (its encoder is the one used)."""
    models = root / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "Stable-diffusion" / "my-finetune.safetensors").symlink_to(tiny_ipa.sd1)
    (models / "Stable-diffusion" / "sd21-unclip-h.safetensors").symlink_to(tiny_ipa.unclip_h)
    (models / "ipadapter").mkdir()
    for name in adapters:
        (models / "ipadapter" / name).symlink_to(tiny_ipa.adapter(name))
    return models


def _host(tiny_ipa, models: Path):
    from extension.ui.standalone import StandaloneHost

    return StandaloneHost([models], config_root=tiny_ipa.config_root, outdir=models.parent / "out", device="cpu")


def test_checkpoint_plus_adapter_is_offered_only_with_adapter_and_encoder(tiny_ipa, tmp_path) -> None:
    from extension.runtime import ip_adapter

    host = _host(tiny_ipa, _models(tiny_ipa, tmp_path))
    names = [choice.name for choice in host.models(ip_adapter.IP_ADAPTER_KINDS)]
    assert names == ["my-finetune.safetensors + ip-adapter-plus_sd15", "my-finetune.safetensors + ip-adapter_sd15"]
    assert next(c.name for c in host.models()) == "sd21-unclip-h.safetensors"  # unCLIP stays first (the default)
    bare = _host(tiny_ipa, _models(tiny_ipa, tmp_path / "bare", adapters=()))
    assert bare.models(ip_adapter.IP_ADAPTER_KINDS) == []
    message = ip_adapter.unavailable_message(bare.models_dir(), bare.model_folders(), bare.models())
    assert "ip-adapter_sd15.safetensors" in message and "ipadapter" in message


def test_the_tab_job_runs_the_ip_adapter_backend(tiny_ipa, tmp_path) -> None:
    import json

    from extension.runtime import jobs
    from tests.ui.fakes import make_args

    host = _host(tiny_ipa, _models(tiny_ipa, tmp_path))
    image = Image.fromarray(np.random.RandomState(3).randint(0, 256, (64, 64, 3), dtype=np.uint8))
    args = make_args(
        image, model="my-finetune.safetensors + ip-adapter_sd15", steps=2, seed=4, width=64, height=64,
        image_strength=0.7, variation_strength=0.2, n_iter=2,
    )  # fmt: skip
    gallery, info_json, _, log = jobs.generate(host, args)
    assert log == "" and len(gallery) == 2
    text = json.loads(info_json)["infotexts"][1]
    parsed = infotext.parse(text)
    assert parsed["IP-Adapter"] == "ip-adapter_sd15" and parsed["Image strength"] == "0.7"
    assert parsed["Variation strength"] == "0.2" and parsed["Model"] == "my-finetune" and parsed["Seed"] == "5"
    assert "Noise level" not in parsed
    plus = make_args(image, model="my-finetune.safetensors + ip-adapter-plus_sd15", steps=2, text_diff_to="a dog")
    _, _, _, log = jobs.generate(host, plus)
    assert "plus" in log  # the tab says why, no traceback


def test_rest_backend_field(tiny_ipa, tmp_path) -> None:
    import base64
    import io
    import json

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from extension import api
    from extension.runtime.backend import ApiBackend

    host = _host(tiny_ipa, _models(tiny_ipa, tmp_path))
    app = FastAPI()
    api.add_routes(app, ApiBackend(host))
    client = TestClient(app)
    buffer = io.BytesIO()
    Image.fromarray(np.random.RandomState(5).randint(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    body = {"images": [base64.b64encode(buffer.getvalue()).decode()], "steps": 2, "seed": 5, "width": 64, "height": 64}
    kinds = {entry["name"]: entry["kind"] for entry in client.get("/reimagine/v1/models").json()}
    assert kinds["my-finetune.safetensors + ip-adapter_sd15"] == "ip-adapter-sd1"

    ip = {"backend": "ip-adapter", "model": "my-finetune.safetensors", "ip_adapter": "ip-adapter_sd15"}
    answer = client.post("/reimagine/v1/variations", json={**body, **ip, "image_strength": 0.5})
    assert answer.status_code == 200, answer.text
    text = json.loads(answer.json()["info"])["infotexts"][0]
    assert "IP-Adapter: ip-adapter_sd15" in text and "Image strength: 0.5" in text
    assert answer.json()["parameters"]["backend"] == "ip-adapter"
    for changes, status, message in (
        ({"image_strength": 2}, 422, "image_strength"),
        ({"backend": "dall-e"}, 422, "backend must be one of"),
        ({"ip_adapter": "ip-adapter-plus_sd15", "text_diff": {"to": "a dog"}}, 422, "plus"),
        ({"model": "../x.safetensors"}, 422, "not a path"),
        ({"ip_adapter": "ip-adapter_sdxl_vit-h"}, 404, "no IP-Adapter model for"),
    ):
        answer = client.post("/reimagine/v1/variations", json={**body, **ip, **changes})
        assert answer.status_code == status and message in answer.json()["detail"], answer.text
    strip = client.post("/reimagine/v1/interpolate", json={**body, **ip, "images": body["images"] * 2, "frames": 2})
    assert strip.status_code == 200 and len(strip.json()["images"]) == 2
    unclip = client.post("/reimagine/v1/variations", json=body)  # no backend: unCLIP, unchanged
    assert unclip.status_code == 200 and "IP-Adapter" not in json.loads(unclip.json()["info"])["infotexts"][0]


def test_an_sd15_ckpt_is_a_base_too(tiny_ipa, tmp_path) -> None:
    """Pickled SD 1.5 checkpoints are found (their pickle names ``cond_stage_model.transformer.*``), weights-only."""
    import torch
    from safetensors.torch import load_file

    from extension.runtime import ip_adapter

    models = _models(tiny_ipa, tmp_path)
    torch.save({"state_dict": load_file(str(tiny_ipa.sd1))}, models / "Stable-diffusion" / "old-finetune.ckpt")
    names = [choice.name for choice in _host(tiny_ipa, models).models(ip_adapter.IP_ADAPTER_KINDS)]
    assert "old-finetune.ckpt + ip-adapter_sd15" in names


def test_paste_back_selects_the_checkpoint_and_adapter(tiny_ipa, tmp_path) -> None:
    from extension.ui import tab

    host = _host(tiny_ipa, _models(tiny_ipa, tmp_path))
    built = tab.build(host)
    c = built.components
    text = "a cat\nSteps: 2, Seed: 4, Model: my-finetune, Backend: IP-Adapter, IP-Adapter: ip-adapter-plus_sd15, "
    text += "Image strength: 0.7"
    params = infotext.parse(text)
    pasted = {}
    for component, key in built.paste_fields:
        for name in ("model", "image_strength", "variation_strength"):
            if component is c[name]:
                pasted[name] = key(params) if callable(key) else params.get(key)
    assert pasted["model"]["value"] == "my-finetune.safetensors + ip-adapter-plus_sd15"
    assert pasted["image_strength"] == "0.7" and pasted["variation_strength"] == 0.0  # absent: no variation noise
    unclip = infotext.parse("a cat\nSteps: 2, Seed: 4, Model: sd21-unclip-h, Noise level: 5")
    model_field = next(key for component, key in built.paste_fields if component is c["model"])
    assert model_field(unclip)["value"] == "sd21-unclip-h.safetensors"
