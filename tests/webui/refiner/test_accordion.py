"""The accordion, its controls and the X/Y/Z plot axes (extension/webui/refiner/accordion.py, xyz.py).

Generations run through the stand-in (tests/webui/refiner/stand_in.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from extension.params import REFINER
from tests.webui.refiner.stand_in import BASE_FILE, PREFIX, REFINER_FILE, Tab, core, params
from tests.webui.refiner.stand_in import site as site  # noqa: F401 -- pytest fixture
from tests.webui_stub.fixture import StubWebUI
from tests.webui_stub.fixture import webui as webui  # noqa: F401 -- pytest fixture


def test_accordion_controls_and_honest_steps(site: StubWebUI) -> None:
    for is_img2img in (False, True):
        tab = Tab(site, is_img2img)
        script = tab.script
        assert script.section == "accordions" and script.alwayson
        controls = script.controls
        assert len(controls) == len(REFINER.params)  # positional API order = the table's order
        enabled = controls[0]
        # A1111: the class InputAccordion; Forge: its factory returns an InputAccordionImpl
        assert type(enabled).__name__ in ("InputAccordion", "InputAccordionImpl") and enabled.value is False
        assert enabled.accordion.label == "Refiner post-pass (SDXL)"
        model = controls[1]
        assert model.value == REFINER_FILE and BASE_FILE not in model.choices  # only SDXL refiners are offered
        labels = {getattr(c, "label", None): c.value for c in controls}
        assert (
            labels["Refiner sampler"] == "Use same sampler" and labels["Refiner schedule type"] == "Use same scheduler"
        )
        assert labels["Aesthetic score"] == 6.0 and labels["Negative aesthetic score"] == 2.5
        assert labels["Refiner CFG scale (0 = same as the base)"] == 0.0
        assert controls[2].elem_id.startswith("script_img2img_" if is_img2img else "script_txt2img_")
    steps_note = core("webui.refiner.accordion").steps_note
    assert "Will run 10 refiner steps" in steps_note(10, 0.25)  # steps run, whatever the strength
    assert "Will run 10 refiner steps" in steps_note(10, 0.9)
    assert "Strength 0" in steps_note(10, 0)
    info = core("webui.refiner.controls").INFO
    assert "after sampling" in info and "both can be on" in info  # next to the native Refiner


def test_refresh_button_finds_new_models(site: StubWebUI, tiny: Any) -> None:
    tab = Tab(site)
    shutil.copy(tiny.sdxl_refiner.safetensors, site.checkpoints_dir / "second-refiner.safetensors")
    model = tab.script.controls[1]
    assert "second-refiner.safetensors" not in model.choices
    update = tab.script.refresh_button.refresh()  # the WebUI's own 🔄 (ui_common.create_refresh_button)
    assert "second-refiner.safetensors" in update["choices"]


def test_xyz_plot_gets_strength_steps_and_model_axes(site: StubWebUI, tmp_path: Path) -> None:
    from modules import scripts

    tab = Tab(site)  # instantiating the scripts registers the axes
    Tab(site, is_img2img=True)
    xyz = next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    ours = {o.label: o for o in xyz.axis_options if o.label.startswith(PREFIX)}
    assert sorted(ours) == [f"{PREFIX} model", f"{PREFIX} steps", f"{PREFIX} strength"]  # once, not per tab
    assert ours[f"{PREFIX} model"].choices() == [REFINER_FILE]
    with pytest.raises(RuntimeError, match="Unknown SDXL refiner model"):
        ours[f"{PREFIX} model"].confirm(None, ["nope"])
    with pytest.raises(ValueError, match="strength"):
        ours[f"{PREFIX} strength"].confirm(None, [0.2, 3.0])

    from modules import processing

    cells = []
    for strength in (0.2, 0.4):  # what the plot does per cell: copy(p), axis.apply, process_images
        template = processing.StableDiffusionProcessingTxt2Img(prompt="x")
        ours[f"{PREFIX} strength"].apply(template, strength, [0.2, 0.4])
        ours[f"{PREFIX} steps"].apply(template, 1, [1])
        cells.append(getattr(template, core("webui.refiner.controls").XYZ_ATTR))
    assert cells == [{"strength": 0.2, "steps": 1}, {"strength": 0.4, "steps": 1}]
    p = tab.args(model=REFINER_FILE)  # accordion off: the axis switches the post-pass on for its cells
    _, processed = tab.generate(p, tmp_path, reimagine_refiner_xyz=cells[1])
    info = params(processed.infotexts[0])
    assert info[f"{PREFIX} strength"] == "0.4" and info[f"{PREFIX} steps"] == "1"
