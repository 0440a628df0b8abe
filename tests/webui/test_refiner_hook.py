"""The refiner post-pass inside txt2img / img2img against the WebUI stand-in (tests/webui_stub).

Generations run through the stand-in's ``processing.process_images`` (the WebUI's hook order, a fake sampler and VAE:
``sd_model.decode_calls`` counts decodes) with the tiny SDXL refiner placed in ``models/Stable-diffusion`` and found
through ``$REIMAGINE_CONFIG_ROOT`` (the tiny configs), as in the acceptance harness.
"""

from __future__ import annotations

import importlib
import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from extension.params import REFINER
from tests.webui_stub.fixture import StubWebUI
from tests.webui_stub.fixture import webui as webui  # noqa: F401 -- pytest fixture

REFINER_FILE = "tiny-refiner.safetensors"
BASE_FILE = "tiny-base.safetensors"
PREFIX = "Refiner post-pass"

# A stand-in of the WebUI's scripts/xyz_grid.py: just what extensions use to add axes.
XYZ_GRID = textwrap.dedent(
    """
    from modules import scripts

    class AxisOption:
        def __init__(self, label, type, apply, format_value=None, confirm=None, cost=0.0, choices=None, prepare=None):
            self.label, self.type, self.apply, self.confirm, self.choices = label, type, apply, confirm, choices

    axis_options = [AxisOption("Nothing", str, lambda p, x, xs: None), AxisOption("Seed", int, lambda p, x, xs: None)]

    class Script(scripts.Script):
        def title(self):
            return "X/Y/Z plot"
    """
)


# ---------------------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def site(webui: StubWebUI, tiny: Any, monkeypatch: pytest.MonkeyPatch) -> StubWebUI:
    """The stand-in with the tiny refiner (and a tiny SDXL base, a wrong model) in models/Stable-diffusion."""
    monkeypatch.setenv("REIMAGINE_CONFIG_ROOT", str(tiny.config_root))
    shutil.copy(tiny.sdxl_refiner.safetensors, webui.checkpoints_dir / REFINER_FILE)
    shutil.copy(tiny.sdxl_base.safetensors, webui.checkpoints_dir / BASE_FILE)
    (webui.root / "scripts").mkdir(exist_ok=True)
    (webui.root / "scripts" / "xyz_grid.py").write_text(XYZ_GRID, encoding="utf-8")
    webui.load_scripts()
    importlib.import_module("modules.ui_components")  # the WebUI patches gradio before any script UI is built
    return webui


def core(name: str) -> Any:
    """A core module as the WebUI loaded it (``sd_webui_reimagine.*``)."""
    return importlib.import_module(f"sd_webui_reimagine.{name}")


class Tab:
    """One tab's script runner with its UI built, and our script in it."""

    def __init__(self, site: StubWebUI, is_img2img: bool = False) -> None:
        self.runner = site.script_runner(is_img2img)
        with gr.Blocks():
            importlib.import_module("modules.ui").create_script_sections(self.runner)
        self.script = next(s for s in self.runner.alwayson_scripts if s.title() == "Refiner post-pass")

    def args(self, values: dict[str, Any] | list[Any] | None = None, **named: Any) -> list[Any]:
        """``p.script_args`` as the UI (controls by name) or the API (``values``: one raw args list) sends them."""
        args = self.runner.default_script_args()
        if isinstance(values, list):
            args[self.script.args_from : self.script.args_from + len(values)] = values
        for name, value in {**(values if isinstance(values, dict) else {}), **named}.items():
            args[self.script.args_from + list(REFINER.params).index(name)] = value
        return args

    def generate(
        self,
        args: list[Any],
        tmp: Path,
        *,
        sdxl: bool = False,
        hires: bool = False,
        n_iter: int = 1,
        batch_size: int = 1,
        seed: int = 3,
        **extra: Any,
    ) -> tuple[Any, Any]:
        """One txt2img generation through the hooks (64x64, base "a cat" / "blurry", CFG 6, Euler)."""
        from modules import processing, sd_models, shared

        shared.sd_model = sd_models.StubSdModel(is_sdxl=sdxl)
        cls = processing.StableDiffusionProcessingImg2Img if self.runner.is_img2img else None
        kwargs = dict(
            prompt=extra.pop("prompt", "a cat <lora:style:0.5>"),
            negative_prompt="blurry",
            seed=seed,
            steps=3,
            cfg_scale=6.0,
            sampler_name="Euler",
            scheduler="Automatic",
            width=64,
            height=64,
            batch_size=batch_size,
            n_iter=n_iter,
            outpath_samples=str(tmp / "samples"),
            outpath_grids=str(tmp / "grids"),
            **extra,
        )
        if cls is None:
            p = processing.StableDiffusionProcessingTxt2Img(enable_hr=hires, hr_scale=1.0, **kwargs)
        else:
            p = cls(init_images=[Image.new("RGB", (64, 64))], **kwargs)
        p.scripts = self.runner
        p.script_args = args
        shared.state.begin(job="test")
        try:
            processed = processing.process_images(p)
            self.jobs = (shared.state.job_no, shared.state.job_count)  # before end() resets the count
        finally:
            shared.state.end()
        return p, processed


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def differs(a: Image.Image, b: Image.Image) -> bool:
    return bool(np.abs(pixels(a) - pixels(b)).max() > 0)


def params(text: str) -> dict[str, str]:
    from modules import infotext_utils

    return infotext_utils.parse_generation_parameters(text)


ON = {"enabled": True, "model": REFINER_FILE, "steps": 2, "strength": 0.3}


# ---------------------------------------------------------------------------------------------------------------------
# UI


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
    refiner = core("webui.refiner")
    assert "Will run 10 refiner steps" in refiner.steps_note(10, 0.25)  # steps run, whatever the strength
    assert "Will run 10 refiner steps" in refiner.steps_note(10, 0.9)
    assert "Strength 0" in refiner.steps_note(10, 0)
    assert "after sampling" in refiner.INFO and "both can be on" in refiner.INFO  # next to the native Refiner


def test_refresh_button_finds_new_models(site: StubWebUI, tiny: Any) -> None:
    tab = Tab(site)
    shutil.copy(tiny.sdxl_refiner.safetensors, site.checkpoints_dir / "second-refiner.safetensors")
    model = tab.script.controls[1]
    assert "second-refiner.safetensors" not in model.choices
    update = tab.script.refresh_button.refresh()  # the WebUI's own 🔄 (ui_common.create_refresh_button)
    assert "second-refiner.safetensors" in update["choices"]


# ---------------------------------------------------------------------------------------------------------------------
# Running


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


def test_progress_covers_the_refiner_steps(site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modules import shared

    engine = core("engine.refiner")
    real = engine.refine
    seen: list[tuple[int, int, int, int]] = []

    def watched(pipe: Any, request: Any, *, progress: Any = None, should_stop: Any = None, **kwargs: Any) -> Any:
        def report(step: int, total: int) -> None:
            progress(step, total)
            state = shared.state
            seen.append((state.job_no, state.job_count, state.sampling_step, state.sampling_steps))

        return real(pipe, request, progress=report, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(engine, "refine", watched)
    tab = Tab(site)
    tab.generate(tab.args(ON, steps=3), tmp_path, n_iter=2, batch_size=2)
    # 2 batches x (sampling + post-pass) = 4 jobs; batch n's post-pass is job 2n+1, over both images of the batch
    assert {s[1] for s in seen} == {4}
    assert [s[0] for s in seen] == [1] * 6 + [3] * 6
    assert [s[2] for s in seen[:6]] == [1, 2, 3, 4, 5, 6] and {s[3] for s in seen} == {6}
    assert tab.jobs == (4, 4)  # every job ended
    fractions = [(job + step / steps) / count for job, count, step, steps in seen]
    assert fractions == sorted(fractions)


# ---------------------------------------------------------------------------------------------------------------------
# Infotext and paste-back


EVERYTHING = {
    "enabled": True,
    "model": REFINER_FILE,
    "strength": 0.35,
    "steps": 3,
    "mode": "Pixel",
    "prompt": "sharp photo",
    "negative_prompt": "jpeg artifacts",
    "cfg_scale": 4.5,
    "sampler_name": "DPM++ 2M",
    "scheduler": "Karras",
    "aesthetic_score": 7.0,
    "negative_aesthetic_score": 2.0,
}


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


# ---------------------------------------------------------------------------------------------------------------------
# API arguments


def test_api_args_positional_or_by_name(site: StubWebUI, tmp_path: Path) -> None:
    tab = Tab(site)
    positional = [EVERYTHING[name] if name in EVERYTHING else REFINER[name].default for name in REFINER.params]
    _, by_position = tab.generate(tab.args(positional), tmp_path / "pos")
    named = {k: v for k, v in EVERYTHING.items() if k != "enabled"}  # a dict switches the post-pass on
    _, by_name = tab.generate(tab.args([named]), tmp_path / "named")
    _, pair = tab.generate(tab.args([True, named]), tmp_path / "pair")
    assert params(by_position.infotexts[0])[f"{PREFIX} sampler"] == "DPM++ 2M"
    assert by_name.infotexts[0] == by_position.infotexts[0] == pair.infotexts[0]
    assert not differs(by_name.images[0], by_position.images[0])
    _, off = tab.generate(tab.args([{**named, "enabled": False}]), tmp_path / "off")
    assert PREFIX not in off.infotexts[0]
    # strings, as JSON clients send them, are accepted; "0" CFG and "Use same sampler" mean inherit
    _, loose = tab.generate(
        tab.args([{"model": REFINER_FILE, "strength": "0.3", "steps": "2", "cfg_scale": 0}]), tmp_path
    )
    assert params(loose.infotexts[0])[f"{PREFIX} strength"] == "0.3"


def test_unknown_or_bad_api_args_are_reported_not_ignored(site: StubWebUI, tmp_path: Path) -> None:
    from modules import errors

    tab = Tab(site)
    _, plain = tab.generate(tab.args(), tmp_path / "off")
    p, processed = tab.generate(tab.args([{"model": REFINER_FILE, "strenght": 0.3}]), tmp_path / "typo")
    assert len(processed.images) == 1 and not differs(processed.images[0], plain.images[0])  # generation succeeded
    message = params(processed.infotexts[0])[f"{PREFIX} error"]
    assert "strenght" in message and "strength" in message and "unknown parameter" in message
    assert any("strenght" in comment for comment in p.comments)  # shown under the image in the page
    assert any("strenght" in line for line in errors.reported)  # and in the WebUI log
    _, out_of_range = tab.generate(tab.args([{"model": REFINER_FILE, "steps": 1000}]), tmp_path / "range")
    assert "steps must be" in params(out_of_range.infotexts[0])[f"{PREFIX} error"]
    reported = len(errors.reported)
    _, disabled = tab.generate(tab.args([False, "nonsense", "x"]), tmp_path / "disabled")  # off: nothing to say
    assert PREFIX not in disabled.infotexts[0] and len(errors.reported) == reported


# ---------------------------------------------------------------------------------------------------------------------
# Missing or wrong model


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("nope.safetensors", "is not among the SDXL refiner models"),
        ("", "No SDXL refiner model selected"),
        (BASE_FILE, "SDXL base"),
        ("tiny-base", "SDXL base"),
    ],
)
def test_missing_or_wrong_model_warns_and_generation_succeeds(
    site: StubWebUI, tmp_path: Path, model: str, expected: str
) -> None:
    from modules import errors

    tab = Tab(site)
    p, processed = tab.generate(tab.args(ON, model=model), tmp_path)
    assert len(processed.images) == 1
    info = params(processed.infotexts[0])
    assert expected in info[f"{PREFIX} error"] and PREFIX not in info
    assert any(expected in comment for comment in p.comments)
    assert any(expected in line for line in errors.reported)


def test_model_by_stem_or_webui_title(site: StubWebUI, tmp_path: Path) -> None:
    tab = Tab(site)
    for name in ("tiny-refiner", "tiny-refiner [0123456789]"):
        _, processed = tab.generate(tab.args([{"model": name, "steps": 1}]), tmp_path / name)
        assert params(processed.infotexts[0])[PREFIX] == "tiny-refiner"


def test_a_failing_pass_keeps_the_image_and_says_why(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modules import sd_models, shared

    engine = core("engine.refiner")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(engine, "refine", broken)
    host = core("webui.host").shared_host()
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)
    tab = Tab(site)
    _, processed = tab.generate(tab.args(ON), tmp_path, batch_size=2)
    assert len(processed.images) == 3  # grid + 2, unrefined
    assert all("RuntimeError: CUDA out of memory" in params(t)[f"{PREFIX} error"] for t in processed.infotexts)
    if not site.is_forge:
        assert sd_models.calls[-1] == ("send_model_to_device", shared.sd_model)  # put back after the failure
    assert tab.jobs == (2, 2)  # the post-pass job was counted and ended although it failed


# ---------------------------------------------------------------------------------------------------------------------
# Interrupt / skip, memory


@pytest.mark.parametrize("sdxl", [False, True], ids=["pixel", "latent"])
def test_interrupt_mid_pass_leaves_a_valid_image_and_restored_state(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sdxl: bool
) -> None:
    from modules import devices, sd_models, shared

    engine = core("engine.refiner")
    real = engine.refine
    steps_done: list[int] = []

    def interrupted(pipe: Any, request: Any, *, progress: Any = None, should_stop: Any = None, **kwargs: Any) -> Any:
        def report(step: int, total: int) -> None:
            progress(step, total)
            steps_done.append(step)
            if step == 1:
                shared.state.interrupt()  # the Interrupt button, during the refiner's second step

        return real(pipe, request, progress=report, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(engine, "refine", interrupted)
    host = core("webui.host").shared_host()
    monkeypatch.setattr(host, "free_device_memory", lambda: 0)  # a full GPU: the WebUI's model has to make room
    tab = Tab(site)
    _, plain = tab.generate(tab.args(), tmp_path / "off", sdxl=sdxl)
    sd_models.calls.clear()
    p, processed = tab.generate(tab.args(ON, steps=4), tmp_path / "on", sdxl=sdxl)
    assert steps_done == [1]  # stopped after the step that saw the interrupt
    assert len(processed.images) == 1 and not differs(processed.images[0], plain.images[0])  # the unrefined image
    info = params(processed.infotexts[0])
    assert PREFIX not in info and f"{PREFIX} error" not in info  # nothing claims it was refined
    assert p.sd_model.decode_calls == 1
    model = shared.sd_model
    if site.is_forge:
        from backend import memory_management

        assert ("unload_all_models",) in memory_management.calls
    else:
        moves = [c for c in sd_models.calls if c[0].startswith("send_model")]
        assert moves == [("send_model_to_cpu", model), ("send_model_to_device", model)]
        assert model.device == devices.device  # back on its device
    assert tab.jobs == (2, 2)
    # the next generation runs normally
    monkeypatch.setattr(engine, "refine", real)
    _, again = tab.generate(tab.args(ON), tmp_path / "again", sdxl=sdxl)
    assert params(again.infotexts[0])[PREFIX] == "tiny-refiner"


def test_skip_leaves_the_batch_unrefined(site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modules import shared

    engine = core("engine.refiner")
    real = engine.refine

    def skipped(pipe: Any, request: Any, *, progress: Any = None, should_stop: Any = None, **kwargs: Any) -> Any:
        def report(step: int, total: int) -> None:
            progress(step, total)
            shared.state.skip()

        return real(pipe, request, progress=report, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(engine, "refine", skipped)
    tab = Tab(site)
    _, processed = tab.generate(tab.args(ON, steps=3), tmp_path, batch_size=2)
    assert all(PREFIX not in t for t in processed.infotexts)


def test_refiner_stays_resident_or_is_offloaded(
    site: StubWebUI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modules import shared

    host = core("webui.host").shared_host()
    tab = Tab(site)
    tab.generate(tab.args(ON), tmp_path / "a", batch_size=2)
    tab.generate(tab.args(ON), tmp_path / "b")
    assert host.cache.loads == 1  # loaded once, reused by every image and the next generation
    offloads: list[Any] = []
    monkeypatch.setattr(host, "_offload", lambda pipe: offloads.append(pipe))
    shared.opts.data["reimagine_memory"] = "Offload after each run"
    tab.generate(tab.args(ON), tmp_path / "c")
    assert len(offloads) == 1 and host.cache.loads == 1


# ---------------------------------------------------------------------------------------------------------------------
# Keep the pre-refiner image


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


# ---------------------------------------------------------------------------------------------------------------------
# X/Y/Z plot


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
        cells.append(getattr(template, core("webui.refiner").XYZ_ATTR))
    assert cells == [{"strength": 0.2, "steps": 1}, {"strength": 0.4, "steps": 1}]
    p = tab.args(model=REFINER_FILE)  # accordion off: the axis switches the post-pass on for its cells
    _, processed = tab.generate(p, tmp_path, reimagine_refiner_xyz=cells[1])
    info = params(processed.infotexts[0])
    assert info[f"{PREFIX} strength"] == "0.4" and info[f"{PREFIX} steps"] == "1"


# ---------------------------------------------------------------------------------------------------------------------
# Forge


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
