"""The Reimagine tab (extension/ui/tab.py), built under this environment's gradio on a fake host: controls from the
parameter table, events and small buttons, gradio-4 pitfalls, and the zh_CN localization of every string."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from extension.params import NOISE_PRESETS, REIMAGINE
from extension.runtime import jobs
from extension.runtime.host import MEMORY_MODES
from tests.ui import fakes
from tests.ui.fakes import FakeHost, handlers

image = fakes.image  # the input-image fixture

REPO = Path(__file__).resolve().parents[2]


def _events(blocks: gr.Blocks) -> list[tuple[Any, list[Any], str | None]]:
    """``(handler, input components, js)`` of every event of ``blocks``, in gradio 3.41 and 4.40."""
    fns = blocks.fns.values() if isinstance(blocks.fns, dict) else blocks.fns
    if isinstance(blocks.fns, dict):  # gradio 4: each BlockFunction knows its inputs and js
        return [(f.fn, list(f.inputs), f.js) for f in fns]
    by_id = blocks.blocks  # gradio 3: the dependency dicts hold input ids and the js
    return [(f.fn, [by_id[i] for i in dep["inputs"]], dep.get("js")) for f, dep in zip(fns, blocks.dependencies)]


def test_no_event_takes_select_data_or_sends_a_state_through_javascript(tmp_path: Path) -> None:
    """What breaks under Forge's gradio 4.40 (its documented behaviour, see docs/webui-contract.md): a handler that
    declares ``gr.SelectData`` is refused before it runs for a gallery of saved outputs served from ``outputs/``,
    and an event with a ``js`` function and a ``gr.State`` input gets every later argument shifted by one."""
    import inspect

    from extension.ui import tab

    built = tab.build(FakeHost(tmp_path))
    events = _events(built.blocks)
    assert events
    for fn, inputs, js in events:
        if fn is not None:
            for parameter in inspect.signature(fn).parameters.values():
                assert not (isinstance(parameter.annotation, type) and issubclass(parameter.annotation, gr.EventData))
                assert "SelectData" not in str(parameter.annotation), fn
        if js:
            assert not any(isinstance(component, gr.State) for component in inputs), (fn, js)


def test_tab_controls_come_from_the_parameter_table(tmp_path: Path) -> None:
    from extension.ui import tab

    built = tab.build(FakeHost(tmp_path))
    c = built.components
    for param in REIMAGINE:
        component = c[param.name]
        assert component.label == param.label, param.name
        if isinstance(component, gr.Slider):
            assert (component.minimum, component.maximum, component.step) == (param.minimum, param.maximum, param.step)
            if param.name != "noise_level":
                assert component.value == param.default
        if isinstance(component, (gr.Dropdown, gr.Radio)):
            choices = [choice[0] if isinstance(choice, (list, tuple)) else choice for choice in component.choices]
            assert choices == list(param.choices or ()), param.name
            assert component.value == param.default
    assert c["noise_level"].value == REIMAGINE["noise_level"].default
    assert c["seed"].value == REIMAGINE["seed"].default
    # txt2img-like element ids
    for name, elem_id in {
        "generate": "reimagine_generate",
        "interrupt": "reimagine_interrupt",
        "skip": "reimagine_skip",
        "gallery": "reimagine_gallery",
        "generation_info": "generation_info_reimagine",
        "image_1": "reimagine_image_1",
    }.items():
        assert c[name].elem_id == elem_id
    # paste-back: every infotext key of the table, the prompts, weights and the model
    keys = [key for _, key in built.paste_fields if isinstance(key, str)]
    keys_wanted = ["Prompt", "Negative prompt", *(p.infotext for p in REIMAGINE if p.infotext), "Text diff amount"]
    assert keys == keys_wanted
    assert sum(callable(key) for _, key in built.paste_fields) == jobs.MAX_INPUTS + 1 + 2  # + from/to texts
    assert built.init_image is c["image_1"]


def test_prompt_boxes_have_token_counters(tmp_path: Path) -> None:
    from extension.ui import tab

    built = tab.build(FakeHost(tmp_path))
    c, blocks = built.components, built.blocks
    for box, counter in (("prompt", "prompt_tokens"), ("negative_prompt", "negative_prompt_tokens")):
        (count,) = handlers(blocks, c[box], "change")
        assert count("") == "<span>0/75</span>"  # txt2img's counter for an empty prompt
        assert count("a photo of a (cat:1.3) BREAK a dog") == "<span>77/150</span>"
        assert c[counter].elem_id == f"reimagine_{'negative_' if box != 'prompt' else ''}token_counter"


def test_tab_events_and_small_buttons(tmp_path: Path, image: Image.Image) -> None:
    from extension.ui import tab

    host = FakeHost(tmp_path)
    built = tab.build(host)
    c, blocks = built.components, built.blocks
    assert handlers(blocks, c["generate"], "click")
    assert handlers(blocks, c["interrupt"], "click") and handlers(blocks, c["skip"], "click")
    for name, value in NOISE_PRESETS.items():
        (preset,) = handlers(blocks, c[f"preset_{name.lower()}"], "click")
        assert preset() == value
    (random_seed,) = handlers(blocks, c["random_seed"], "click")
    assert random_seed() == -1
    (reuse,) = handlers(blocks, c["reuse_seed"], "click")
    info = json.dumps({"all_seeds": [11, 12, 13]})
    assert reuse(info, 2, -1) == 13
    assert reuse("", 0, 5) == 5
    (match,) = handlers(blocks, c["match_aspect"], "click")
    assert match(image, 768, 0) == (768, 512)
    assert match(image, 0, 512) == (768, 512)
    (mode_change,) = handlers(blocks, c["mode"], "change")
    frames, mix_group = mode_change(jobs.MODE_INTERPOLATION)
    assert frames["visible"] is True and mix_group["open"] is True  # interpolation needs image 2
    frames, mix_group = mode_change(jobs.MODE_VARIATIONS)
    assert frames["visible"] is False and "open" not in mix_group
    # "Mix more images" is folded at first and unfolds when a slot is filled (a drop, Send to, a pasted weight)
    assert c["mix_accordion"].open is False
    for i in (2, 3, 4):
        (on_image,) = handlers(blocks, c[f"image_{i}"], "change")
        assert on_image(image)["open"] is True and "open" not in on_image(None)
        (on_weight,) = handlers(blocks, c[f"weight_{i}"], "change")
        assert on_weight(0.3)["open"] is True and "open" not in on_weight(c[f"weight_{i}"].value)
    # one control named "Refine with SDXL": the accordion; its button says what it does
    assert [b.label for b in blocks.blocks.values() if getattr(b, "label", None) == "Refine with SDXL"] == [
        "Refine with SDXL"
    ]
    assert c["refine"].value == "Refine the selected image"
    (refresh,) = handlers(blocks, c["model_refresh"], "click")
    assert refresh("gone")["value"] == "m"
    # selecting an output (reimagine.js clicks the hidden button with the selected index) shows its infotext
    (show,) = handlers(blocks, c["show_selected"], "click")
    assert "Steps: 1" in show(json.dumps({"infotexts": ["a", "b\nSteps: 1"]}), 1)
    # Vary again: selected output -> image 1, other slots cleared, then Generate is clicked in the browser
    (vary,) = handlers(blocks, c["vary_again"], "click")
    out = vary([image], 0)
    assert out[0] == jobs.MODE_VARIATIONS and out[1] is image and out[3] is None
    assert any(js and "reimagine_click_generate" in js for js in _all_js(blocks))


def _all_js(blocks: gr.Blocks) -> list[str]:
    if isinstance(blocks.fns, list):
        return [dep["js"] for dep in blocks.dependencies if dep["js"]]
    return [f.js for f in blocks.fns.values() if f.js]


def test_default_noise_preset_setting(tmp_path: Path) -> None:
    from extension.ui import tab

    class Strong(FakeHost):
        def default_noise_preset(self) -> str:
            return "Strong"

    assert tab.build(Strong(tmp_path)).components["noise_level"].value == NOISE_PRESETS["Strong"]


def _tab_strings(blocks_list: list[gr.Blocks]) -> set[str]:
    texts: set[str] = set()
    for blocks in blocks_list:
        for block in blocks.blocks.values():
            for attr in ("label", "info", "placeholder", "webui_tooltip"):
                value = getattr(block, attr, None)
                if isinstance(value, str):
                    texts.add(value)
            if isinstance(block, gr.Button) and isinstance(block.value, str):
                texts.add(block.value)
            if isinstance(block, gr.HTML) and isinstance(block.value, str):
                texts.update(part.strip() for part in re.split(r"<[^>]+>", block.value))
            if isinstance(block, (gr.Radio, gr.Dropdown)) and getattr(block, "elem_id", "") not in _ENGINE_NAMES:
                for choice in block.choices:
                    texts.add(choice[0] if isinstance(choice, (list, tuple)) else choice)
    return texts


# Dropdowns listing the WebUI's own sampler/schedule names and model files (not translated, like the WebUI's own)
_ENGINE_NAMES = {
    "reimagine_sampling",
    "reimagine_scheduler",
    "reimagine_model",
    "reimagine_refiner_model",
    "reimagine_refine_model",
    "reimagine_refine_sampling",
    "reimagine_refine_scheduler",
}


_NOT_TRANSLATED = re.compile(r"^$|^[\d\s./]+$|^Reimagine$|[\U0001f300-\U0001faff\u2600-\u27bf]")


def test_zh_cn_translates_every_string(tmp_path: Path) -> None:
    from extension.app import build_app
    from extension.runtime import jobs as ui_jobs
    from extension.ui import refine_tab, tab
    from extension.webui import tab as webui_tab

    class TooltipHost(FakeHost):
        tooltips = True

    demo, _ = build_app(FakeHost(tmp_path))
    texts = _tab_strings([demo])
    texts |= set(tab.TOOLTIPS.values()) | {refine_tab.INHERIT, ui_jobs.INTERRUPTED_NOTE}
    texts |= {webui_tab.SEND_TOOLTIP, webui_tab.SEND_LABEL, *webui_tab.SETTING_LABELS.values(), *MEMORY_MODES}
    texts |= {f"({info})" for info in webui_tab.SETTING_INFOS.values()} | set(NOISE_PRESETS)
    # the refiner post-pass accordion in txt2img / img2img (built only inside the WebUI)
    from extension.params import REFINER, REFINER_SAME_SAMPLER, REFINER_SAME_SCHEDULER
    from extension.webui.refiner import controls as hook

    texts |= {
        hook.LABEL,
        hook.INFO,
        REFINER_SAME_SAMPLER,
        REFINER_SAME_SCHEDULER,
        hook.CFG_LABEL,
        *hook.PLACEHOLDERS.values(),
    }
    texts |= {param.label for param in REFINER} | set(REFINER["mode"].choices)
    zh = json.loads((REPO / "localizations" / "zh_CN.json").read_text(encoding="utf-8"))
    missing = sorted(text for text in texts if not _NOT_TRANSLATED.search(text) and text not in zh)
    assert missing == []
    unused = sorted(set(zh) - texts)
    assert unused == [], "zh_CN.json has keys no UI string uses"
    assert all(value.strip() and value != key for key, value in zh.items())
    assert "Sampling method" in texts and "Noise level" in texts
