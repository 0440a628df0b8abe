"""Infotext and paste-back: every control restored, the mode as chosen (extension/webui/refiner/paste.py, report.py).

Generations run through the stand-in (tests/webui/refiner/stand_in.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from extension.params import REFINER
from tests.webui.refiner.stand_in import EVERYTHING, ON, PREFIX, REFINER_FILE, Tab, core, differs, params
from tests.webui.refiner.stand_in import site as site  # noqa: F401 -- pytest fixture
from tests.webui_stub.fixture import StubWebUI
from tests.webui_stub.fixture import webui as webui  # noqa: F401 -- pytest fixture


def pasted_value(infotext_utils: Any, controls: dict[str, Any], text: str, name: str) -> Any:
    """What pasting ``text`` sets the control ``name`` to."""
    return infotext_utils.paste_infotext("txt2img", text)[controls[name]]


def test_infotext_pastes_back_every_control(site: StubWebUI, tmp_path: Path) -> None:
    from modules import infotext_utils

    tab = Tab(site)
    _, processed = tab.generate(tab.args(EVERYTHING), tmp_path)
    text = processed.infotexts[0]
    infotext_utils.add_paste_fields("txt2img", None, list(tab.runner.infotext_fields))
    pasted = infotext_utils.paste_infotext("txt2img", text)
    controls = dict(zip(REFINER.params, tab.script.controls))
    for name, value in EVERYTHING.items():
        assert pasted[controls[name]] == value, name
    assert pasted[controls["keep_original"]] is None  # written only when on: left as it is

    _, kept = tab.generate(tab.args({**EVERYTHING, "keep_original": True}), tmp_path / "kept")
    refined_text = next(text for text in kept.infotexts if "Refiner post-pass keep original" in text)
    assert pasted_value(infotext_utils, controls, refined_text, "keep_original") is True

    # inherited values are not written, and pasting sets the controls back to "inherit"
    _, plain = tab.generate(tab.args(ON), tmp_path / "inherit")
    pasted = infotext_utils.paste_infotext("txt2img", plain.infotexts[0])
    assert pasted[controls["enabled"]] is True
    assert pasted[controls["prompt"]] == "" and pasted[controls["negative_prompt"]] == ""
    assert pasted[controls["cfg_scale"]] == 0.0
    assert pasted[controls["sampler_name"]] == "Use same sampler"
    assert pasted[controls["scheduler"]] == "Use same scheduler"

    # an infotext without our keys switches the post-pass off and changes nothing else
    pasted = infotext_utils.paste_infotext("txt2img", "a dog\nSteps: 20, Sampler: Euler, Seed: 1, Refiner: x")
    assert pasted[controls["enabled"]] is False
    assert all(pasted[controls[name]] is None for name in REFINER.params if name != "enabled")

    # the same keys are what "Send to img2img" copies between the tabs
    assert set(tab.script.paste_field_names) == {str(key) for _, key in tab.script.infotext_fields}
    img2img = Tab(site, is_img2img=True)
    assert [str(k) for _, k in img2img.script.infotext_fields] == [str(k) for _, k in tab.script.infotext_fields]


def test_paste_sets_the_model_of_a_dropdown_built_empty(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WebUI converts a pasted value with ``type(dropdown.value)`` (the page's paste and the API's ``infotext``
    field alike): a dropdown built before any refiner was found must still hold a str."""
    from modules import infotext_utils

    host = core("webui.host").shared_host()
    real_models = host.models
    monkeypatch.setattr(host, "models", lambda *a, **k: [])
    empty = Tab(site)  # no refiner yet
    monkeypatch.setattr(host, "models", real_models)
    controls = dict(zip(REFINER.params, empty.script.controls))
    infotext_utils.add_paste_fields("txt2img", None, list(empty.runner.infotext_fields))
    _, processed = Tab(site).generate(Tab(site).args(ON), tmp_path)
    pasted = infotext_utils.paste_infotext("txt2img", processed.infotexts[0])
    assert pasted[controls["model"]] == REFINER_FILE


def test_pasted_infotext_reproduces_the_image(site: StubWebUI, tmp_path: Path) -> None:
    from modules import infotext_utils

    tab = Tab(site)
    _, first = tab.generate(tab.args(EVERYTHING), tmp_path / "a")
    infotext_utils.add_paste_fields("txt2img", None, list(tab.runner.infotext_fields))
    pasted = infotext_utils.paste_infotext("txt2img", first.infotexts[0])
    values = [pasted[control] for control in tab.script.controls]
    values[-1] = False  # keep_original: off, so not in the infotext and not pasted
    _, again = tab.generate(tab.args(values), tmp_path / "b")
    assert again.infotexts[0] == first.infotexts[0] and not differs(again.images[0], first.images[0])


def test_a_chosen_latent_that_cannot_run_says_why(site: StubWebUI, tmp_path: Path) -> None:
    """Auto's Pixel is plain; an explicit Latent that ran as Pixel says why (the WebUI decoded the Hires pass's
    latents itself, or the base is not SDXL), and pasting it back restores Latent."""
    from modules import infotext_utils

    tab = Tab(site)
    runs = {
        "auto-hires": (tab.args(ON), True, True),
        "latent-hires": (tab.args(ON, mode="Latent"), True, True),
        "latent-sd15": (tab.args(ON, mode="Latent"), False, False),
        "latent-sdxl": (tab.args(ON, mode="Latent"), True, False),
    }
    texts = {}
    for name, (args, sdxl, hires) in runs.items():
        _, processed = tab.generate(args, tmp_path / name, sdxl=sdxl, hires=hires)
        texts[name] = processed.infotexts[0]
    modes = {name: params(text)[f"{PREFIX} mode"] for name, text in texts.items()}
    assert modes == {
        "auto-hires": "Pixel",
        "latent-hires": "Pixel (Hires fix)",
        "latent-sd15": "Pixel (base not SDXL)",
        "latent-sdxl": "Latent",
    }
    infotext_utils.add_paste_fields("txt2img", None, list(tab.runner.infotext_fields))
    mode = dict(zip(REFINER.params, tab.script.controls))["mode"]
    pasted = {name: infotext_utils.paste_infotext("txt2img", text)[mode] for name, text in texts.items()}
    assert pasted == {"auto-hires": "Pixel", "latent-hires": "Latent", "latent-sd15": "Latent", "latent-sdxl": "Latent"}
    # the pasted controls make the same image, note included
    values = [infotext_utils.paste_infotext("txt2img", texts["latent-hires"])[c] for c in tab.script.controls]
    values[-1] = False
    _, again = tab.generate(tab.args(values), tmp_path / "again", sdxl=True, hires=True)
    assert again.infotexts[0] == texts["latent-hires"]
