"""What the refiner post-pass tests share: the WebUI stand-in (tests/webui_stub) with the tiny refiner, one tab's
script runner, image and infotext helpers.

Generations run through the stand-in's ``processing.process_images`` (the WebUI's hook order, a fake sampler and VAE:
``sd_model.decode_calls`` counts decodes) with the tiny SDXL refiner placed in ``models/Stable-diffusion`` and found
through ``$REIMAGINE_CONFIG_ROOT`` (the tiny configs), as in the acceptance harness.
"""

from __future__ import annotations

import importlib
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


EVERYTHING = {  # every control set to a non-default value
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
