"""The standalone app's "Refine" tab: SDXL refiner post-pass over uploaded images (pixel mode).

Controls come from :data:`extension.params.REFINER`; blank prompt / negative / CFG / sampler / schedule inherit the
values in each uploaded PNG's infotext (WebUI and Reimagine outputs carry one), as the ``refine`` CLI does.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..images import normalized
from ..loading.discovery import REFINER_KINDS
from ..params import REFINER, REFINER_ENGINE_PARAMS, REIMAGINE
from ..runtime import jobs
from . import compat
from .surface import TabHost
from .tab import TEXT, model_dropdown
from .widgets import slider

TAB = "reimagine_refine"
INHERIT = "Inherit"
REFINE_TEXT = {"images": "Images to refine", "run": "Refine", "inherit": INHERIT}
CONTROL_NAMES = (*(name for name in REFINER_ENGINE_PARAMS if name != "mode"), "seed")  # pixel mode only


def _images(files: Any) -> list[tuple[Any, str]]:
    from PIL import Image

    images = []
    for path in compat.file_paths(files):
        with Image.open(path) as image:
            image.load()
            images.append((normalized(image), image.info.get("parameters", "")))
    return images


def build(host: TabHost, engine: jobs.Engine | None = None) -> tuple[gr.Blocks, dict[str, Any]]:
    """The Refine tab in a new ``gr.Blocks``."""
    c: dict[str, Any] = {}
    with gr.Blocks(analytics_enabled=False) as blocks:
        c["task_id"] = gr.Textbox(visible=False, elem_id=f"{TAB}_task_id")
        with gr.Row(equal_height=False):
            with gr.Column(variant="compact", elem_id=f"{TAB}_settings"):
                c["files"] = gr.File(
                    file_count="multiple", file_types=["image"], label=REFINE_TEXT["images"], elem_id=f"{TAB}_files"
                )
                with gr.Row():
                    c["model"], c["model_refresh"] = model_dropdown(
                        host, REFINER_KINDS, TEXT["refiner_model"], f"{TAB}_model"
                    )
                c["run"] = gr.Button(REFINE_TEXT["run"], variant="primary", elem_id=f"{TAB}_generate")
                c["strength"] = slider(REFINER["strength"], f"{TAB}_strength", info=REFINER["strength"].help)
                c["steps"] = slider(REFINER["steps"], f"{TAB}_steps", info=REFINER["steps"].help)
                c["prompt"] = gr.Textbox(
                    label=REFINER["prompt"].label, placeholder=REFINER["prompt"].help, lines=2, elem_id=f"{TAB}_prompt"
                )
                c["negative_prompt"] = gr.Textbox(
                    label=REFINER["negative_prompt"].label,
                    placeholder=REFINER["negative_prompt"].help,
                    lines=2,
                    elem_id=f"{TAB}_neg_prompt",
                )
                with gr.Row():
                    c["cfg_scale"] = gr.Textbox(
                        label=REFINER["cfg_scale"].label, placeholder=REFINER["cfg_scale"].help, elem_id=f"{TAB}_cfg"
                    )
                    for name, elem in (("sampler_name", "sampling"), ("scheduler", "scheduler")):
                        param = REFINER[name]  # blank = inherit: shown as the first choice, "Inherit"
                        c[name] = gr.Dropdown(
                            [INHERIT, *(param.choices or ())], value=INHERIT, label=param.label, elem_id=f"{TAB}_{elem}"
                        )
                with gr.Row():
                    c["aesthetic_score"] = slider(REFINER["aesthetic_score"], f"{TAB}_aesthetic")
                    c["negative_aesthetic_score"] = slider(
                        REFINER["negative_aesthetic_score"], f"{TAB}_negative_aesthetic"
                    )
                seed = REIMAGINE["seed"]
                c["seed"] = gr.Number(
                    label=seed.label, value=seed.default, precision=0, info=seed.help, elem_id=f"{TAB}_seed"
                )
            with gr.Column(elem_id=f"{TAB}_results_column"):
                panel = host.output_panel(TAB)

        def refine(task_id: str, files: Any, model: Any, *values: Any) -> tuple:
            controls = dict(zip(CONTROL_NAMES, values))
            for name in ("sampler_name", "scheduler"):
                if controls[name] == INHERIT:
                    controls[name] = ""
            return jobs.refine_uploaded(host, _images(files), model, controls, engine)

        c["run"].click(
            fn=host.run(refine, 3 + len(CONTROL_NAMES)),
            inputs=[c["task_id"], c["files"], c["model"], *(c[name] for name in CONTROL_NAMES)],
            outputs=[panel.gallery, panel.generation_info, panel.infotext, panel.html_log],
            show_progress=host.show_progress,
        )
    c["panel"] = panel
    return blocks, c
