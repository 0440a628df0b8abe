"""The WebUI adapter's tab (extension/webui/tab.py) against the stand-in (tests/webui_stub): callbacks, settings,
paste-back, Send to Reimagine, the WebUI's queue and progress on Generate, and a tiny-model run end to end."""

from __future__ import annotations

import json
import shutil
from typing import Any

import gradio as gr
import pytest
from PIL import Image

from extension.runtime import jobs
from extension.runtime.host import MEMORY_MODES
from extension.ui import compat
from tests.ui import fakes
from tests.ui.fakes import handlers, js_of
from tests.webui.adapter import core, record_tabs
from tests.webui_stub.fixture import StubWebUI

image = fakes.image  # the input-image fixture


def test_callbacks_registered_at_top_level_and_after_reload(webui: StubWebUI) -> None:
    webui.load_scripts()
    for category in ("ui_tabs", "ui_settings", "after_component", "before_ui"):
        assert [c for c in webui.callbacks(category) if "reimagine" in c.name], category
    webui.reload_ui()
    assert [c for c in webui.callbacks("ui_tabs") if "reimagine" in c.name]


def test_settings_section(webui: StubWebUI) -> None:
    webui.load_scripts()
    from modules import script_callbacks, shared

    script_callbacks.ui_settings_callback()
    ours = {key: info for key, info in shared.opts.data_labels.items() if key.startswith("reimagine_")}
    assert set(ours) == {
        "reimagine_models_dirs",
        "reimagine_default_model",
        "reimagine_karlo_stats",
        "reimagine_memory",
        "reimagine_noise_preset",
        "reimagine_precision",
        "reimagine_compile",
    }
    assert ours["reimagine_precision"].default == "fp16" and ours["reimagine_compile"].default is False
    assert all(info.section == ("reimagine", "Reimagine") and info.category_id == "sd" for info in ours.values())
    assert ours["reimagine_noise_preset"].default == "Balanced"  # the preset of the table's default noise level
    assert ours["reimagine_memory"].component_args == {"choices": list(MEMORY_MODES)}
    assert callable(ours["reimagine_default_model"].component_args)


def test_tab_registered_as_paste_destination(webui: StubWebUI, monkeypatch: pytest.MonkeyPatch) -> None:
    webui.load_scripts()
    from modules import infotext_utils, script_callbacks

    tabs = record_tabs(monkeypatch)
    ((blocks, title, elem_id),) = [t for t in script_callbacks.ui_tabs_callback() if t[2] == "reimagine"]
    assert (title, elem_id) == ("Reimagine", "reimagine") and isinstance(blocks, gr.Blocks)
    (tab,) = tabs
    assert infotext_utils.paste_fields["reimagine"]["init_img"] is tab.components["image_1"]
    text = (
        "a castle\nNegative prompt: blurry\nSteps: 33, Sampler: Euler a, Schedule type: Karras, CFG scale: 6.5, "
        'Seed: 1234, Size: 768x768, Model: sd21-unclip-h, Noise level: 350, CLIP fit: crop, Mix weights: "0.7, 0.3", '
        "Mix mode: slerp"
    )
    pasted = {name: value for component, value in infotext_utils.paste_infotext("reimagine", text).items()
              for name, c in tab.components.items() if c is component and value is not None}  # fmt: skip
    assert pasted["prompt"] == "a castle" and pasted["negative_prompt"] == "blurry"
    assert (pasted["steps"], pasted["sampler_name"], pasted["scheduler"]) == (33, "Euler a", "Karras")
    assert (pasted["cfg_scale"], pasted["seed"], pasted["noise_level"]) == (6.5, 1234, 350)
    assert (pasted["fit"], pasted["mix"], pasted["weight_1"], pasted["weight_2"]) == ("crop", "slerp", 0.7, 0.3)
    assert "weight_3" not in pasted and "model" not in pasted  # no such model here


def test_send_to_reimagine_buttons(webui: StubWebUI) -> None:
    webui.load_scripts()
    from modules import infotext_utils, script_callbacks, ui_common

    with gr.Blocks():
        txt2img = ui_common.create_output_panel("txt2img", "outputs")
        if compat.GRADIO_4:  # the stand-in runs the component callbacks for gradio 3 only; Forge does it for 4 too
            script_callbacks.after_component_callback(txt2img.gallery, elem_id="txt2img_gallery")
            script_callbacks.after_component_callback(None, elem_id="txt2img_send_to_extras")
        info = gr.Textbox(visible=False, elem_id="pnginfo_generation_info")
        image = gr.Image(elem_id="pnginfo_image")
        buttons = infotext_utils.create_buttons(["txt2img", "img2img", "inpaint", "extras"])
        if compat.GRADIO_4:
            for elem_id, component in (("pnginfo_generation_info", info), ("pnginfo_image", image)):
                script_callbacks.after_component_callback(component, elem_id=elem_id)
            script_callbacks.after_component_callback(buttons["extras"], elem_id="extras_tab")
    before = [b for b in infotext_utils.registered_param_bindings if b.tabname == "reimagine"]
    assert before == []  # bound only once the tab exists (a failed tab must not break the WebUI's paste wiring)
    script_callbacks.ui_tabs_callback()
    ours = [b for b in infotext_utils.registered_param_bindings if b.tabname == "reimagine"]
    assert len(ours) == 2
    gallery_binding = next(b for b in ours if b.source_text_component is None)
    assert gallery_binding.source_image_component is txt2img.gallery
    assert gallery_binding.paste_button.elem_id == "txt2img_send_to_reimagine"
    pnginfo_binding = next(b for b in ours if b.source_text_component is not None)
    assert pnginfo_binding.source_text_component is info and pnginfo_binding.source_image_component is image
    assert pnginfo_binding.paste_button.value == "Send to Reimagine"


def test_generate_button_uses_the_webui_queue_and_progress(webui: StubWebUI, monkeypatch: pytest.MonkeyPatch) -> None:
    webui.load_scripts()
    from modules import script_callbacks

    tabs = record_tabs(monkeypatch)
    script_callbacks.ui_tabs_callback()
    (tab,) = tabs
    c, blocks = tab.components, tab.blocks
    assert js_of(blocks, c["generate"], "click")[0] == "submit_reimagine"
    assert "reimagine_interrupting" in js_of(blocks, c["interrupt"], "click")
    (generate,) = handlers(blocks, c["generate"], "click")[:1]
    assert getattr(generate, "__wrapped__", None) is not None  # call_queue.wrap_gradio_gpu_call
    assert tab.panel.gallery.elem_id == "reimagine_gallery"


@pytest.mark.slow
def test_webui_generate_with_tiny_model(
    webui: StubWebUI, tiny: Any, image: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(tiny.unclip_h.safetensors, webui.checkpoints_dir / "sd21-unclip-h.safetensors")
    webui.load_scripts()
    from modules import script_callbacks, shared

    host = core("webui.host").shared_host()
    host.config_root = tiny.config_root
    tabs = record_tabs(monkeypatch)
    script_callbacks.ui_tabs_callback()
    (tab,) = tabs
    c = tab.components
    assert c["model"].value == "sd21-unclip-h.safetensors"
    from modules import infotext_utils

    pasted = infotext_utils.paste_infotext("reimagine", "x\nSteps: 2, Seed: 1, Model: sd21-unclip-h, Noise level: 5")
    assert pasted[c["model"]] == "sd21-unclip-h.safetensors"  # the infotext's Model finds the file
    (generate,) = handlers(tab.blocks, c["generate"], "click")[:1]
    values = {**{n: c[n].value for n in jobs.input_names()}, "image_1": image, "steps": 2, "seed": 3}
    gallery, info_json, shown, log = generate("task(e2e)", *(values[n] for n in jobs.input_names()))
    assert len(gallery) == 1 and "Seed: 3" in shown and "error" not in log
    assert "Model: sd21-unclip-h" in json.loads(info_json)["infotexts"][0]
    assert len(list((webui.outputs_dir / "reimagine-images").rglob("*.png"))) == 1
    assert shared.state.calls[0] == ("begin", "task(e2e)")
