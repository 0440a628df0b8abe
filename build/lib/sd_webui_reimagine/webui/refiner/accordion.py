"""The "Refiner post-pass (SDXL)" accordion in txt2img and img2img."""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator
from typing import Any

from ...loading.discovery import REFINER_KINDS
from ...params import REFINER, REFINER_MODES, REFINER_SAME_CFG, REFINER_SAME_SAMPLER, REFINER_SAME_SCHEDULER
from ..host import shared_host
from .controls import CFG_LABEL, INFO, LABEL, PLACEHOLDERS, model_names
from .paste import paste_key


def steps_note(steps: Any, strength: Any) -> str:
    """The honest step count shown under the sliders (HTML)."""
    from ...engine.refiner import planned_steps

    try:
        steps_i, strength_f = int(float(steps)), float(strength)
    except (TypeError, ValueError):
        return ""
    runs = planned_steps(steps_i, strength_f)
    if runs == 0:
        text = "Strength 0: the image is left unchanged (no refiner step runs)."
    else:
        text = f"Will run {runs} refiner step{'s' if runs != 1 else ''} on each image"
        if runs < steps_i:
            text += f" (strength {strength_f:g} leaves room for no more)"
        text += "; strength sets how much is repainted, not how many steps run."
    return f"<p class='reimagine-refiner-steps'>{html.escape(text)}</p>"


@contextlib.contextmanager
def _accordion(label: str, elem_id: str) -> Iterator[Any]:
    """The WebUI's InputAccordion (header checkbox = enabled); a gr.Accordion with a checkbox where it is missing."""
    import gradio as gr

    try:
        from modules.ui_components import InputAccordion
    except ImportError:
        InputAccordion = None  # noqa: N806
    if InputAccordion is not None:
        with InputAccordion(False, label=label, elem_id=elem_id) as enabled:
            yield enabled
        return
    with gr.Accordion(label, open=False, elem_id=elem_id):
        yield gr.Checkbox(label="Enable", value=False, elem_id=f"{elem_id}-checkbox")


def _row() -> Any:
    import gradio as gr

    try:
        from modules.ui_components import FormRow

        return FormRow()
    except ImportError:
        return gr.Row()


def ui(script: Any, is_img2img: bool) -> list[Any]:
    """Build the accordion; return the controls in :data:`REFINER` order (the positional API arguments)."""
    import gradio as gr

    from ...ui.widgets import slider, token_counter

    def eid(name: str) -> str:
        return script.elem_id(name)

    names = model_names()
    components: dict[str, Any] = {}
    with _accordion(LABEL, eid("enabled")) as enabled:
        components["enabled"] = enabled
        gr.HTML(f"<p class='reimagine-refiner-info'>{html.escape(INFO)}</p>", elem_id=eid("info"))
        with _row():
            components["model"] = gr.Dropdown(
                label=REFINER["model"].label,
                choices=names,
                value=names[0] if names else "",  # a str even when empty: the WebUI's paste converts with type(value)
                allow_custom_value=True,  # "" (none yet) or a pasted name the list lacks: our check names the problem
                elem_id=eid("model"),
            )
            script.refresh_button = _refresh_button(components["model"], eid("model_refresh"))
            components["mode"] = gr.Radio(
                label=REFINER["mode"].label,
                choices=list(REFINER_MODES),
                value=REFINER["mode"].default,
                elem_id=eid("mode"),
            )
        with _row():
            components["strength"] = slider(REFINER["strength"], eid("strength"))
            components["steps"] = slider(REFINER["steps"], eid("steps"))
        note = gr.HTML(steps_note(REFINER["steps"].default, REFINER["strength"].default), elem_id=eid("steps_note"))
        with _row():
            cfg = REFINER["cfg_scale"]
            components["cfg_scale"] = gr.Slider(
                minimum=0.0,
                maximum=cfg.maximum,
                step=cfg.step,
                value=REFINER_SAME_CFG,
                label=CFG_LABEL,
                elem_id=eid("cfg_scale"),
            )
            components["sampler_name"] = gr.Dropdown(
                label=REFINER["sampler_name"].label,
                choices=[REFINER_SAME_SAMPLER, *REFINER["sampler_name"].choices],
                value=REFINER_SAME_SAMPLER,
                elem_id=eid("sampler_name"),
            )
            components["scheduler"] = gr.Dropdown(
                label=REFINER["scheduler"].label,
                choices=[REFINER_SAME_SCHEDULER, *REFINER["scheduler"].choices],
                value=REFINER_SAME_SCHEDULER,
                elem_id=eid("scheduler"),
            )
        for name, placeholder in PLACEHOLDERS.items():
            components[name] = gr.Textbox(
                label=REFINER[name].label, lines=2, placeholder=placeholder, value="", elem_id=eid(name)
            )
            token_counter(components[name], eid(f"{name}_token_counter"))
        with _row():
            components["aesthetic_score"] = slider(REFINER["aesthetic_score"], eid("aesthetic_score"))
            components["negative_aesthetic_score"] = slider(
                REFINER["negative_aesthetic_score"], eid("negative_aesthetic_score")
            )
            components["keep_original"] = gr.Checkbox(
                label=REFINER["keep_original"].label,
                value=REFINER["keep_original"].default,
                elem_id=eid("keep_original"),
            )

    for trigger in (components["steps"], components["strength"]):
        trigger.change(
            fn=steps_note,
            inputs=[components["steps"], components["strength"]],
            outputs=[note],
            show_progress="hidden",
            queue=False,
        )
    controls = [components[name] for name in REFINER.params]
    keys = [paste_key(name) for name in REFINER.params]
    try:
        from modules.infotext_utils import PasteField
    except ImportError:  # before v1.8.0: plain pairs

        def PasteField(component: Any, target: Any) -> tuple:  # noqa: N802
            return (component, target)

    script.infotext_fields = [PasteField(control, key) for control, key in zip(controls, keys)]
    script.paste_field_names = [str(key) for key in dict.fromkeys(keys)]
    return controls


def _refresh_button(dropdown: Any, elem_id: str) -> Any:
    """🔄 next to the model dropdown: rescan the model folders."""

    def refresh() -> None:
        shared_host().models(REFINER_KINDS, refresh=True)

    def choices() -> dict[str, Any]:
        return {"choices": model_names()}

    try:
        from modules.ui_common import create_refresh_button
    except ImportError:
        return None
    return create_refresh_button(dropdown, refresh, choices, elem_id)
