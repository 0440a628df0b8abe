"""Text diffs (extension/engine/text_diff.py) on the tiny unCLIP single files. The text embedding is checked against
open_clip's own ``CLIP.encode_text`` built from the checkpoint's keys: unCLIP-H's ``cond_stage_model.model.*``
(OpenCLIP ViT-H's tower), unCLIP-L's ``embedder.model.*`` (OpenAI CLIP ViT-L/14's tower, quick_gelu)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from extension.engine.text_diff import TextDiff, TextIngredient, normalize, text_diff, text_diff_strip, text_embedding
from extension.engine.unclip import VariationRequest, generate
from extension.errors import ParamError
from tests.tiny_models import IMAGE_EMBED_DIM, VOCAB_SIZE

TEXTS = ["a photo of a cat", "an anime drawing of a cat", ""]


def _image(seed: int) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (64, 64, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def pipe(tiny):
    from extension.loading import load_unclip

    return load_unclip(tiny.unclip_h.safetensors, config_root=tiny.config_root)


@pytest.fixture(scope="module")
def request_(pipe) -> VariationRequest:
    return VariationRequest(images=[_image(3)], steps=2, seed=77, width=64, height=64)


def _open_clip_text_model(
    state_dict: dict[str, torch.Tensor], prefix: str = "cond_stage_model.model.", *, openai: bool = False
) -> torch.nn.Module:
    """open_clip's CLIP with the checkpoint's text tower under ``prefix`` (its vision tower is a dummy that is never
    run); ``openai``: OpenAI CLIP's sizing (quick_gelu, one head per 64 channels)."""
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    text = {k[len(prefix) :]: v.float() for k, v in state_dict.items() if k.startswith(prefix)}
    text = {k: v for k, v in text.items() if not k.startswith("visual.")}
    width = text["ln_final.weight"].shape[0]
    layers = 1 + max(int(k.split(".")[2]) for k in text if k.startswith("transformer.resblocks."))
    model = CLIP(
        embed_dim=text["text_projection"].shape[1],
        vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(
            context_length=77, vocab_size=VOCAB_SIZE, width=width, heads=width // 64 if openai else 2, layers=layers
        ),
        quick_gelu=openai,
    )
    missing, unexpected = model.load_state_dict(text, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("visual.") for k in missing), missing
    return model.eval()


@pytest.mark.parametrize("text", TEXTS)
def test_text_embedding_equals_open_clip_encode_text(tiny, pipe, text):
    import open_clip

    reference = _open_clip_text_model(tiny.unclip_h.state_dict)
    with torch.no_grad():
        expected = reference.encode_text(open_clip.tokenize([text]))
    got = text_embedding(pipe, text)
    assert got.shape == (1, IMAGE_EMBED_DIM["unclip-h"])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_text_embedding_unavailable_from_a_diffusers_folder(tiny):
    from extension.loading import load_unclip

    folder_pipe = load_unclip(tiny.unclip_h.folder)
    with pytest.raises(ParamError, match="single-file"):
        text_embedding(folder_pipe, "a cat")
    with pytest.raises(ParamError, match="single-file"):
        generate(
            folder_pipe,
            VariationRequest(images=[_image(3)], steps=1, width=64, height=64, edit=TextDiff("a cat", amount=0.3)),
        )


@pytest.fixture(scope="module")
def pipe_l(tiny):
    from extension.loading import load_unclip

    return load_unclip(tiny.unclip_l.safetensors, config_root=tiny.config_root, karlo_stats=tiny.karlo_stats)


@pytest.mark.parametrize("text", TEXTS)
def test_unclip_l_text_embedding_equals_openai_clip_encode_text(tiny, pipe_l, text):
    import open_clip

    reference = _open_clip_text_model(tiny.unclip_l.state_dict, "embedder.model.", openai=True)
    with torch.no_grad():
        expected = reference.encode_text(open_clip.tokenize([text]))
    got = text_embedding(pipe_l, text)
    assert got.shape == (1, IMAGE_EMBED_DIM["unclip-l"])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_unclip_l_text_diff_moves_the_image_embedding(pipe_l):
    request = VariationRequest(images=[_image(3)], steps=2, seed=77, width=64, height=64)
    plain, (labels0, context0) = _unet_inputs(pipe_l, request)
    zero = generate(pipe_l, replace(request, edit=TextDiff("an anime drawing", amount=0.0)))
    assert np.array_equal(np.asarray(plain.images[0]), np.asarray(zero.images[0]))
    edited, (labels1, context1) = _unet_inputs(pipe_l, replace(request, edit=TextDiff("an anime drawing", amount=0.5)))
    assert torch.equal(context1, context0) and not torch.equal(labels1, labels0)
    assert "Text diff to: an anime drawing" in edited.infotexts[0]


def _slerp_numpy(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Textbook slerp of unit vectors (Shoemake 1985)."""
    omega = np.arccos(np.clip(a @ b, -1, 1))
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def test_text_diff_formula_and_monotonic_strip():
    gen = torch.Generator().manual_seed(0)
    z_image, z_from, z_to = (torch.randn(1, 16, generator=gen, dtype=torch.float64) for _ in range(3))
    d = (z_to - z_from)[0].numpy()
    d /= np.linalg.norm(d)
    zi = z_image[0].numpy()
    cosines = []
    for theta in np.linspace(0, 0.8, 6):
        z = text_diff(z_image, z_from, z_to, float(theta))
        assert float(z.norm()) == pytest.approx(float(z_image.norm()), rel=1e-12)
        expected = _slerp_numpy(zi / np.linalg.norm(zi), d, theta) * np.linalg.norm(zi) if theta else zi
        np.testing.assert_allclose(z[0].numpy(), expected, rtol=1e-9, atol=1e-12)
        cosines.append(float(normalize(z)[0].numpy() @ d))
    assert all(b > a for a, b in itertools.pairwise(cosines)), cosines
    assert text_diff(z_image, z_from, z_to, 0.0) is z_image
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ParamError, match="from 0 to 1"):
            text_diff(z_image, z_from, z_to, bad)


def _unet_inputs(pipe, request):
    """Run ``generate`` and record the UNet's class_labels and encoder_hidden_states of the first step."""
    seen = []
    original = pipe.unet.forward

    def spy(*args, **kwargs):
        seen.append((kwargs["class_labels"].clone(), kwargs["encoder_hidden_states"].clone()))
        return original(*args, **kwargs)

    pipe.unet.forward = spy
    try:
        result = generate(pipe, request)
    finally:
        del pipe.unet.forward
    return result, seen[0]


def test_amount_zero_is_the_plain_variation_bit_for_bit(pipe, request_):
    plain = generate(pipe, request_)
    zero = generate(pipe, replace(request_, edit=TextDiff("an anime drawing", amount=0.0)))
    assert np.array_equal(np.asarray(plain.images[0]), np.asarray(zero.images[0]))


def test_to_text_acts_through_class_labels_and_a_prompt_through_cross_attention(pipe, request_):
    caption = "an anime drawing of a cat"
    plain, (labels0, context0) = _unet_inputs(pipe, request_)
    edited, (labels1, context1) = _unet_inputs(pipe, replace(request_, edit=TextDiff(caption, amount=0.5)))
    prompted, (labels2, context2) = _unet_inputs(pipe, replace(request_, prompt=caption))
    assert torch.equal(context1, context0) and not torch.equal(labels1, labels0)
    assert torch.equal(labels2, labels0) and not torch.equal(context2, context0)
    images = [np.asarray(r.images[0], dtype=np.float32) for r in (plain, edited, prompted)]
    assert np.abs(images[1] - images[0]).mean() > 0 and np.abs(images[2] - images[0]).mean() > 0
    assert np.abs(images[1] - images[2]).mean() > 0
    assert "Text diff to: an anime drawing of a cat" in edited.infotexts[0]
    assert "Text diff amount: 0.5" in edited.infotexts[0]


def test_strip_starts_at_the_plain_variation_and_keeps_the_noise(pipe, request_):
    strip = text_diff_strip(pipe, request_, TextDiff("an anime drawing", amount=0.6), frames=3)
    assert len(strip.images) == 3 and strip.seeds == [77, 77, 77]
    plain = generate(pipe, request_)
    assert np.array_equal(np.asarray(strip.images[0]), np.asarray(plain.images[0]))
    assert "Text diff amount: 0.3" in strip.infotexts[1]
    with pytest.raises(ParamError, match="at least 2 frames"):
        text_diff_strip(pipe, request_, TextDiff("x", amount=0.5), frames=1)


def test_text_as_an_ingredient_of_the_mix(tiny, pipe, request_):
    import open_clip

    with torch.no_grad():
        t = _open_clip_text_model(tiny.unclip_h.state_dict).encode_text(open_clip.tokenize(["a red car"]))[0].numpy()
    z = torch.randn(1, IMAGE_EMBED_DIM["unclip-h"], generator=torch.Generator().manual_seed(5))
    got = TextIngredient("a red car", weight=0.5).apply(pipe, z)[0].numpy()
    zn = z[0].numpy()
    expected = (zn + 0.5 * t / np.linalg.norm(t) * np.linalg.norm(zn)) / 1.5
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    _, (labels0, _) = _unet_inputs(pipe, request_)
    _, (labels1, _) = _unet_inputs(pipe, replace(request_, edit=TextIngredient("a red car", weight=1.0)))
    assert not torch.equal(labels0, labels1)


@pytest.mark.parametrize(
    "diff, message",
    [(TextDiff("  "), "empty"), (TextDiff("x" * 1001), "at most 1000"), (TextDiff("a", amount=2), "from 0 to 1")],
)
def test_validation(diff, message):
    with pytest.raises(ParamError, match=message):
        diff.validated()


# --- CLI -------------------------------------------------------------------------------------------------------------


def _cli_args(tiny, out, *extra: str, model=None) -> list[str]:
    model = model or tiny.unclip_h.safetensors
    base = ["--model", str(model), "--config-root", str(tiny.config_root), "--out", str(out)]
    return [*base, "--steps", "2", "--seed", "7", "--width", "64", "--height", "64", *extra]


def test_cli_vary_to_text_writes_the_edit_into_the_infotext(tiny, tmp_path):
    from extension import infotext
    from extension.cli import main
    from extension.outputs import read_infotext

    source = tmp_path / "cat.png"
    _image(4).save(source)
    out = tmp_path / "out"
    argv = [
        "vary",
        str(source),
        "--n",
        "1",
        "--to-text",
        "an anime drawing",
        "--from-text",
        "a photo",
        "--amount",
        "0.3",
    ]
    assert main([*argv[:2], *_cli_args(tiny, out), *argv[2:]]) == 0
    parsed = infotext.parse(read_infotext(out / "cat-0000.png"))
    assert parsed["Text diff to"] == "an anime drawing" and parsed["Text diff from"] == "a photo"
    assert parsed["Text diff amount"] == "0.3"


def test_cli_interpolate_by_text_writes_a_strip(tiny, tmp_path):
    from extension import infotext
    from extension.cli import main
    from extension.outputs import read_infotext

    source = tmp_path / "cat.png"
    _image(4).save(source)
    out = tmp_path / "strip"
    argv = ["interpolate", str(source), "--to-text", "a red car", "--frames", "3", "--amount-max", "0.4"]
    assert main([*argv, *_cli_args(tiny, out)]) == 0
    frames = sorted(out.glob("*.png"))
    assert len(frames) == 3
    amounts = [infotext.parse(read_infotext(path))["Text diff amount"] for path in frames]
    assert amounts == ["0", "0.2", "0.4"]


def test_cli_text_as_an_ingredient_joins_the_mix(tiny, tmp_path):
    from extension import infotext
    from extension.cli import main
    from extension.outputs import read_infotext

    source = tmp_path / "cat.png"
    _image(4).save(source)
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    assert main(["vary", str(source), *_cli_args(tiny, plain), "--n", "1"]) == 0
    assert main(["vary", str(source), *_cli_args(tiny, mixed), "--n", "1", "--with-text", "a red car"]) == 0
    parsed = infotext.parse(read_infotext(mixed / "cat-0000.png"))
    assert parsed["Text ingredient"] == "a red car" and parsed["Text ingredient weight"] == "1"
    a, b = (np.asarray(Image.open(folder / "cat-0000.png"), dtype=np.float32) for folder in (plain, mixed))
    assert np.abs(a - b).mean() > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--to-text", "   "], "empty"),
        (["--to-text", "x" * 1001], "at most 1000"),
        (["--to-text", "a cat", "--amount", "1.5"], "from 0 to 1"),
        (["--to-text", "a cat", "--with-text", "a dog"], "not both"),
        (["--with-text", "a dog", "--with-text-weight", "-1"], "non-negative"),
        (["--with-text", "  "], "empty"),
    ],
)
def test_cli_bad_text_diff_exits_2(tiny, tmp_path, capsys, extra, message):
    from extension.cli import main

    source = tmp_path / "cat.png"
    _image(4).save(source)
    assert main(["vary", str(source), *_cli_args(tiny, tmp_path / "o"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.png"))


def test_cli_text_diff_on_a_diffusers_folder_says_why(tiny, tmp_path, capsys):
    from extension.cli import main

    source = tmp_path / "cat.png"
    _image(4).save(source)
    argv = ["vary", str(source), *_cli_args(tiny, tmp_path / "o", model=tiny.unclip_h.folder), "--to-text", "a cat"]
    assert main([*argv, "--n", "1"]) == 2
    assert "single-file" in capsys.readouterr().err


# --- REST ------------------------------------------------------------------------------------------------------------


class _Entry:
    def __init__(self, name: str, kind: str, path: str) -> None:
        self.name, self.kind, self.path = name, kind, path


class _Backend:
    """One tiny unCLIP-H pipe behind the REST routes (the host side of extension/api.py)."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    def models(self):
        return [_Entry("sd21-unclip-h", "unclip-h", "sd21-unclip-h.safetensors")]

    def load(self, entry, job=None):
        return self.pipe

    def run_job(self, description, job):
        return job(lambda step, total: None, lambda: False)


@pytest.fixture(scope="module")
def client(pipe):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from extension import api

    app = FastAPI()
    api.add_routes(app, _Backend(pipe))
    return TestClient(app)


def _body(**changes):
    import base64
    import io

    buffer = io.BytesIO()
    _image(4).save(buffer, format="PNG")
    body = {"images": [base64.b64encode(buffer.getvalue()).decode()], "steps": 2, "seed": 5, "width": 64, "height": 64}
    body.update(changes)
    return body


def test_api_text_diff_and_strip(client):
    import json

    from extension import infotext

    answer = client.post("/reimagine/v1/variations", json=_body(text_diff={"to": "a red car", "amount": 0.4}))
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["parameters"]["text_diff"] == {"from": "", "to": "a red car", "amount": 0.4}
    parsed = infotext.parse(json.loads(data["info"])["infotexts"][0])
    assert parsed["Text diff to"] == "a red car" and parsed["Text diff amount"] == "0.4"
    strip = client.post("/reimagine/v1/variations", json=_body(text_diff={"to": "a red car", "amount": 0.4}, frames=3))
    assert strip.status_code == 200, strip.text
    assert len(strip.json()["images"]) == 3


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"text_diff": {"to": ""}}, "empty"),
        ({"text_diff": {"to": "x" * 1001}}, "at most 1000"),
        ({"text_diff": {"to": "a cat", "amount": 1.2}}, "from 0 to 1"),
        ({"text_diff": {"to": "a cat", "amount": "lots"}}, "amount"),
        ({"text_diff": {"from": "a dog"}}, "to"),
        ({"text_diff": {"to": "a cat", "bogus": 1}}, "bogus"),
        ({"frames": 3}, "frames needs text_diff"),
        ({"text_diff": {"to": "a cat"}, "frames": 1}, "frames"),
    ],
)
def test_api_bad_text_diff_is_422(client, changes, message):
    answer = client.post("/reimagine/v1/variations", json=_body(**changes))
    assert answer.status_code == 422, answer.text
    assert message in answer.text


# --- the Reimagine tab -----------------------------------------------------------------------------------------------


def test_tab_edit_by_text_pastes_back_and_is_off_without_to_text(pipe, request_, tmp_path):
    from extension import infotext
    from extension.params import TEXT_DIFF
    from extension.runtime import jobs
    from extension.ui import tab
    from tests.ui.fakes import FakeHost, make_args

    diff = TextDiff("an anime drawing", "a photo", 0.35)
    text = generate(pipe, replace(request_, edit=diff)).infotexts[0]
    built = tab.build(FakeHost(tmp_path))
    c = built.components
    params = infotext.parse(text)
    pasted = {}
    for component, key in built.paste_fields:
        for name in TEXT_DIFF.params:
            if name in c and component is c[name]:
                pasted[name] = key(params) if callable(key) else params.get(key)
    assert TextDiff.from_controls(pasted) == diff
    # an infotext without the keys clears the texts: no stale edit
    cleared = {
        n: k(infotext.parse("a cat\nSteps: 2, Seed: 1"))
        for comp, k in built.paste_fields
        if callable(k)
        for n in ("text_diff_from", "text_diff_to")
        if comp is c[n]
    }
    assert cleared == {"text_diff_from": "", "text_diff_to": ""}
    # Generate's inputs: off unless To text is filled; a bad amount is a message, not a crash
    image = _image(4)
    assert jobs.TabValues.from_args(make_args(image)).edit is None
    on = jobs.TabValues.from_args(make_args(image, text_diff_to="a red car", text_diff_amount=0.5))
    assert on.edit == TextDiff("a red car", "", 0.5)
    with pytest.raises(ParamError, match="text_diff_amount"):
        jobs.TabValues.from_args(make_args(image, text_diff_to="a red car", text_diff_amount=3))
