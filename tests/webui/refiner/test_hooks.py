"""The post-pass in the WebUI's hooks: pixel and latent mode, kept originals, Forge (extension/webui/refiner/hooks.py).

Generations run through the stand-in (tests/webui/refiner/stand_in.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.webui.refiner.stand_in import ON, PREFIX, Tab, core, differs, params
from tests.webui.refiner.stand_in import site as site  # noqa: F401 -- pytest fixture
from tests.webui_stub.fixture import StubWebUI
from tests.webui_stub.fixture import webui as webui  # noqa: F401 -- pytest fixture


def test_disabled_does_nothing(site: StubWebUI, tmp_path: Path) -> None:
    from modules import sd_models, shared

    tab = Tab(site)
    p, processed = tab.generate(tab.args(), tmp_path)
    assert PREFIX not in processed.infotexts[0]
    assert core("webui.host").shared_host()._cache is None  # no model was even looked at
    assert [c for c in shared.state.calls if c[0] == "nextjob"] == [("nextjob",)]
    assert not [c for c in sd_models.calls if c[0] != "list_models"]
    assert p.sd_model.decode_calls == 1


def test_pixel_mode_replaces_the_saved_and_shown_image(site: StubWebUI, tmp_path: Path) -> None:
    from modules import sd_models, shared

    tab = Tab(site)
    _, plain = tab.generate(tab.args(), tmp_path / "off")
    shared.state.calls.clear()
    p, processed = tab.generate(tab.args(ON), tmp_path / "on")  # SD 1.5 base: latents of another family
    assert len(processed.images) == 1 and differs(processed.images[0], plain.images[0])
    info = params(processed.infotexts[0])
    assert info[PREFIX] == "tiny-refiner" and info[f"{PREFIX} mode"] == "Pixel"
    assert info[f"{PREFIX} strength"] == "0.3" and info[f"{PREFIX} steps"] == "2"
    assert "Refiner" not in info  # the native refiner's key is never written
    assert f"{PREFIX} prompt" not in info  # inherited: the base prompt already says it
    (saved,) = sorted((tmp_path / "on" / "samples").rglob("*.png"))
    assert not differs(Image.open(saved), processed.images[0])  # the refined image is what was saved
    assert Image.open(saved).info["parameters"] == processed.infotexts[0]
    assert p.sd_model.decode_calls == 1
    # progress: one more job for the post-pass, ended; the WebUI's checkpoint never reloaded or moved on CPU
    calls = [c[0] for c in shared.state.calls]
    assert calls.count("nextjob") == 2 and tab.jobs == (2, 2)
    assert not [c for c in sd_models.calls if c[0] in ("reload_model_weights", "unload_model_weights")]


def test_latent_mode_refines_sdxl_latents_with_one_decode(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = core("engine.refiner")
    encodes: list[Any] = []
    real_encode = engine.encode_image
    monkeypatch.setattr(engine, "encode_image", lambda *a, **k: encodes.append(1) or real_encode(*a, **k))
    tab = Tab(site)
    _, plain = tab.generate(tab.args(), tmp_path / "off", sdxl=True, batch_size=2)
    p, processed = tab.generate(tab.args(ON), tmp_path / "on", sdxl=True, batch_size=2)
    assert p.sd_model.decode_calls == 2  # the WebUI decodes the refined latents, one image at a time; nothing more
    assert not encodes  # no VAE round trip
    images = processed.images[processed.index_of_first_image :]
    assert len(images) == 2 and all(differs(a, b) for a, b in zip(images, plain.images[plain.index_of_first_image :]))
    assert all(params(text)[f"{PREFIX} mode"] == "Latent" for text in processed.infotexts)


def test_nan_refined_latents_keep_the_base_image(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An all-NaN refined batch (fp16 overflow) must not reach the WebUI's ``devices.test_for_nans`` (which raises
    NansException after ``post_sample`` and loses the generation): the base latents stay, the error is reported."""
    import torch

    engine = core("engine.refiner")
    real = engine.refine

    def overflowing(pipe: Any, request: Any, **kwargs: Any) -> Any:
        result = real(pipe, request, **kwargs)
        result.latents = torch.full_like(result.latents, float("nan"))
        return result

    monkeypatch.setattr(engine, "refine", overflowing)
    tab = Tab(site)
    _, plain = tab.generate(tab.args(), tmp_path / "off", sdxl=True)
    _, processed = tab.generate(tab.args(ON), tmp_path / "on", sdxl=True)
    assert len(processed.images) == 1 and not differs(processed.images[0], plain.images[0])
    info = params(processed.infotexts[0])
    assert "NaN latents" in info[f"{PREFIX} error"] and f"{PREFIX} mode" not in info
    assert tab.jobs == (2, 2)


def test_latent_batch_with_different_prompts(site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = core("engine.refiner")
    real = engine.refine
    prompts: list[str] = []

    def watched(pipe: Any, request: Any, **kwargs: Any) -> Any:
        prompts.append(request.base.prompt)
        return real(pipe, request, **kwargs)

    monkeypatch.setattr(engine, "refine", watched)
    tab = Tab(site)
    tab.generate(tab.args(ON), tmp_path, sdxl=True, batch_size=3, prompt=["a cat", "a cat", "a dog <lora:x:1>"])
    assert prompts == ["a cat", "a dog"]  # one call per run of equal prompts; extra-network tags are not text


def test_hires_fix_and_pixel_choice_use_pixel_mode(site: StubWebUI, tmp_path: Path) -> None:
    tab = Tab(site)
    _, hires = tab.generate(tab.args(ON), tmp_path / "hires", sdxl=True, hires=True)
    assert params(hires.infotexts[0])[f"{PREFIX} mode"] == "Pixel"  # post_sample got decoded images
    _, chosen = tab.generate(tab.args(ON, mode="Pixel"), tmp_path / "pixel", sdxl=True)
    assert params(chosen.infotexts[0])[f"{PREFIX} mode"] == "Pixel"


def test_img2img_tab_too(site: StubWebUI, tmp_path: Path) -> None:
    tab = Tab(site, is_img2img=True)
    _, processed = tab.generate(tab.args(ON), tmp_path)
    assert params(processed.infotexts[0])[PREFIX] == "tiny-refiner"


@pytest.mark.parametrize("sdxl", [False, True], ids=["pixel", "latent"])
def test_keep_original_saves_and_shows_it(site: StubWebUI, tmp_path: Path, sdxl: bool) -> None:
    tab = Tab(site)
    _, plain = tab.generate(tab.args(), tmp_path / "off", sdxl=sdxl)
    p, processed = tab.generate(tab.args(ON, keep_original=True), tmp_path / "on", sdxl=sdxl)
    refined, original = processed.images
    assert not differs(original, plain.images[0]) and differs(refined, original)
    assert processed.infotexts[1] == plain.infotexts[0]  # the original's infotext has no refiner keys
    assert processed.infotexts[0] != processed.infotexts[1] and original.info["parameters"] == processed.infotexts[1]
    saved = sorted((tmp_path / "on" / "samples").rglob("*.png"))
    assert len(saved) == 2 and [s.stem.endswith("-before-refiner") for s in saved].count(True) == 1
    before = next(s for s in saved if s.stem.endswith("-before-refiner"))
    assert Image.open(before).info["parameters"] == plain.infotexts[0]
    assert json.loads(processed.js())["infotexts"] == processed.infotexts
    assert p.sd_model.decode_calls == (2 if sdxl else 1)  # latent mode decodes the original once more


@pytest.mark.parametrize("webui", ["forge"], indirect=True)
def test_forge_flavour(site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from backend import memory_management
    from modules import sd_models

    host = core("webui.host").shared_host()
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)
    tab = Tab(site)
    _, pixel = tab.generate(tab.args(ON), tmp_path / "pixel")
    p, latent = tab.generate(tab.args(ON), tmp_path / "latent", sdxl=True)
    assert params(pixel.infotexts[0])[f"{PREFIX} mode"] == "Pixel"
    assert params(latent.infotexts[0])[f"{PREFIX} mode"] == "Latent" and p.sd_model.decode_calls == 1
    assert ("unload_all_models",) in memory_management.calls  # Forge's way to make room; it reloads on demand
    assert not [c for c in sd_models.calls if c[0] != "list_models"]


def test_config_root_comes_from_the_environment(site: StubWebUI, tiny: Any) -> None:
    assert core("webui.host").shared_host().config_root == Path(tiny.config_root)
