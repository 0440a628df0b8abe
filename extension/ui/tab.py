"""The Reimagine tab, built from the parameter table, for any :class:`~extension.ui.surface.TabHost`.

Every control of a generation parameter takes its label, range, step, default, choices and infotext key from
:data:`extension.params.REIMAGINE`; the paste-back fields (PNG Info → Send to Reimagine) are derived from the same
table. Elements carry txt2img-style ids (``reimagine_generate``, ``reimagine_gallery`` ...) and the WebUI's classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..loading.discovery import REFINER_KINDS, UNCLIP_KINDS, closest
from ..params import FRAMES, NOISE_PRESETS, REFINER, REIMAGINE, TEXT_DIFF
from ..runtime import jobs
from . import compat
from .surface import OutputPanel, TabHost
from .widgets import dropdown, radio, slider, token_counter

TAB = "reimagine"
REFRESH = "\U0001f504"  # 🔄
RANDOM_SEED = "\U0001f3b2\ufe0f"  # 🎲️
REUSE_SEED = "\u267b\ufe0f"  # ♻️
MATCH_ASPECT = "\U0001f4d0"  # 📐
WEIGHT_RANGE = (0.0, 2.0, 0.05)
WEIGHT_DEFAULT = 1.0  # the engine's weight for an image given without one (VariationRequest.validated)

# Texts shown by the tab that are not parameter labels/helps (those come from the tables). Each is a stable, distinct
# English string translated in localizations/zh_CN.json.
TEXT = {
    "prompt_placeholder": "Prompt (optional: steers the variations; empty = pure variation)",
    "negative_prompt_placeholder": "Negative prompt (optional)",
    "generate": "Generate",
    "interrupt": "Interrupt",
    "skip": "Skip",
    "interrupting": "Interrupting...",
    "model": "unCLIP model",
    "mode": "Mode",
    "image": "Image {}",
    "weight": "Weight {}",
    "frames_info": "images from image 1 to image 2; the start noise is the same in every frame",
    "refine_accordion": "Refine with SDXL",
    "text_accordion": "Edit by text",
    "text_note": "Moves the image embedding from the From text towards the To text (DALL·E 2 text diffs). Off while "
    "To text is empty. Needs an unCLIP single file (-h or -l).",
    "refiner_model": "SDXL refiner model",
    "vary_again": "Vary again",
    "refine": "Refine the selected image",
    "mix_accordion": "Mix more images",
}
TOOLTIPS = {
    "refresh": "Refresh the list of models",
    "random_seed": "Set seed to -1, which will cause a new random number to be used every time",
    "reuse_seed": "Reuse seed from the selected image",
    "match_aspect": "Match input aspect: keep the width and set the height from image 1 (0 = automatic)",
    "interrupt": "End generation immediately or after completing current batch",
    "skip": "Stop generation of current batch and continues onto next batch",
    "vary_again": "Use the selected image as the new input and generate variations of it",
    "refine": "Run the SDXL refiner post-pass over the selected image (pixel mode, 1024² class size)",
}


@dataclass
class Tab:
    """The built tab: its Blocks, named components (for wiring and tests) and paste-back fields."""

    blocks: gr.Blocks
    components: dict[str, Any]
    panel: OutputPanel
    paste_fields: list[tuple[Any, str | Callable[[dict[str, str]], Any]]] = field(default_factory=list)

    @property
    def init_image(self) -> Any:
        """The component a "Send to Reimagine" image lands in (input slot 1)."""
        return self.components["image_1"]


def _kw(host: TabHost, tooltip: str | None) -> dict[str, Any]:
    return {"tooltip": tooltip} if host.tooltips and tooltip else {}


def tool_button(host: TabHost, symbol: str, elem_id: str, tooltip: str) -> gr.Button:
    """A WebUI ToolButton (class ``tool``), made by the host."""
    return host.tool_button(symbol, elem_id, tooltip)


def refresh_models(host: TabHost, kinds: tuple[str, ...]) -> Callable[[str | None], Any]:
    """Handler of a 🔄 button next to a model dropdown: rescan, keep the selection when it still exists."""

    def refresh(current: str | None) -> Any:
        names = [choice.name for choice in host.models(kinds, refresh=True)]
        value = current if current in names else host.choose_default(kinds)
        return compat.update(choices=names, value=value)

    return refresh


def model_dropdown(host: TabHost, kinds: tuple[str, ...], label: str, elem_id: str) -> tuple[gr.Dropdown, gr.Button]:
    """A model dropdown with its 🔄 button (in the current row)."""
    names = [choice.name for choice in host.models(kinds)]
    model = gr.Dropdown(names, value=host.choose_default(kinds), label=label, elem_id=elem_id)
    refresh = tool_button(host, REFRESH, f"{elem_id}_refresh", TOOLTIPS["refresh"])
    refresh.click(fn=refresh_models(host, kinds), inputs=[model], outputs=[model], show_progress=False)
    return model, refresh


def _image_slot(c: dict[str, Any], i: int) -> None:
    """Input image ``i`` and its mix weight."""
    c[f"image_{i}"] = compat.image_input(label=TEXT["image"].format(i), elem_id=f"{TAB}_image_{i}", height=220)
    c[f"weight_{i}"] = gr.Slider(
        *WEIGHT_RANGE[:2], step=WEIGHT_RANGE[2], value=WEIGHT_DEFAULT, label=TEXT["weight"].format(i),
        elem_id=f"{TAB}_weight_{i}",
    )  # fmt: skip


def build(host: TabHost, engine: jobs.Engine | None = None) -> Tab:
    """Build the Reimagine tab in a new ``gr.Blocks`` (render it with ``on_ui_tabs`` or inside a ``gr.Tab``)."""
    table = REIMAGINE
    c: dict[str, Any] = {}
    preset = host.default_noise_preset()
    noise_default = NOISE_PRESETS.get(preset or "", table["noise_level"].default)

    with gr.Blocks(analytics_enabled=False) as blocks:
        c["task_id"] = gr.Textbox(visible=False, elem_id=f"{TAB}_task_id")
        # The selected output's index, read in the browser at click time (reimagine_selected_index() in
        # javascript/reimagine.js) as the WebUI's own galleries do: no gr.SelectData (gradio 4.40 refuses the event
        # for files outside its cache, and Forge serves saved outputs from outputs/) and no gr.State in events that
        # run JavaScript (gradio 4.40 shifts every later argument by one around a State input).
        c["selected"] = gr.Number(value=0, precision=0, visible=False, elem_id=f"{TAB}_selected_index")
        c["show_selected"] = gr.Button("", elem_id=f"{TAB}_generation_info_button", elem_classes=["reimagine-hidden"])

        with gr.Row(elem_id=f"{TAB}_toprow", elem_classes=["reimagine-toprow"]):
            with gr.Column(scale=6, elem_id=f"{TAB}_prompt_container"):
                # each box with its token counter laid over its top right corner, as txt2img's
                boxes = (
                    ("prompt", "prompt", "token_counter"),
                    ("negative_prompt", "neg_prompt", "negative_token_counter"),
                )
                for name, box_id, counter_id in boxes:
                    with gr.Column(elem_classes=["reimagine-prompt-box"]):
                        c[name] = gr.Textbox(
                            value=table[name].default,  # a str value: the WebUI's paste converts to type(value)
                            label=table[name].label,
                            show_label=False,
                            lines=3,
                            placeholder=TEXT[f"{name}_placeholder"],
                            elem_id=f"{TAB}_{box_id}",
                            elem_classes=["prompt"],
                        )
                        c[f"{name}_tokens"] = token_counter(c[name], f"{TAB}_{counter_id}")
            with gr.Column(scale=1, elem_id=f"{TAB}_actions_column"):  # min_width 320 like txt2img (its overlay)
                with gr.Row(elem_id=f"{TAB}_generate_box", elem_classes=["generate-box"]):
                    c["interrupt"] = gr.Button(
                        TEXT["interrupt"],
                        elem_id=f"{TAB}_interrupt",
                        elem_classes=["generate-box-interrupt"],
                        **_kw(host, TOOLTIPS["interrupt"]),
                    )
                    c["skip"] = gr.Button(
                        TEXT["skip"],
                        elem_id=f"{TAB}_skip",
                        elem_classes=["generate-box-skip"],
                        **_kw(host, TOOLTIPS["skip"]),
                    )
                    c["interrupting"] = gr.Button(
                        TEXT["interrupting"], elem_id=f"{TAB}_interrupting", elem_classes=["generate-box-interrupting"]
                    )
                    c["generate"] = gr.Button(TEXT["generate"], elem_id=f"{TAB}_generate", variant="primary")

        with gr.Row(equal_height=False, elem_id=f"{TAB}_main"):
            with gr.Column(variant="compact", elem_id=f"{TAB}_settings"):
                with gr.Row(elem_id=f"{TAB}_model_row"):
                    with gr.Column(scale=3, min_width=240):
                        with gr.Row():
                            c["model"], c["model_refresh"] = model_dropdown(
                                host, UNCLIP_KINDS, TEXT["model"], f"{TAB}_model"
                            )
                    with gr.Column(scale=2, min_width=200):
                        c["mode"] = gr.Radio(
                            list(jobs.MODES), value=jobs.MODE_VARIATIONS, label=TEXT["mode"], elem_id=f"{TAB}_mode"
                        )
                # image 1 and the settings used most side by side, so both fit a laptop screen
                with gr.Row(equal_height=False, elem_id=f"{TAB}_first_row"):
                    with gr.Column(min_width=240, elem_classes=["reimagine-input"]):
                        _image_slot(c, 1)
                    with gr.Column(min_width=260, elem_id=f"{TAB}_main_settings"):
                        c["noise_level"] = slider(
                            table["noise_level"],
                            f"{TAB}_noise_level",
                            value=noise_default,
                            info=table["noise_level"].help,
                        )
                        with gr.Row(elem_id=f"{TAB}_noise_presets", elem_classes=["reimagine-presets"]):
                            for name in NOISE_PRESETS:
                                c[f"preset_{name.lower()}"] = gr.Button(
                                    name, size="sm", min_width=60, elem_id=f"{TAB}_preset_{name.lower()}"
                                )  # one row of three, not three rows
                        c["keep_composition"] = slider(
                            table["keep_composition"],
                            f"{TAB}_keep_composition",
                            info=table["keep_composition"].help,
                        )
                        with gr.Row():
                            c["sampler_name"] = dropdown(table["sampler_name"], f"{TAB}_sampling", min_width=120)
                            c["scheduler"] = dropdown(table["scheduler"], f"{TAB}_scheduler", min_width=120)
                        c["steps"] = slider(table["steps"], f"{TAB}_steps")
                        with gr.Row(elem_id=f"{TAB}_seed_row"):
                            seed = table["seed"]
                            c["seed"] = gr.Number(
                                label=seed.label, value=seed.default, precision=0, elem_id=f"{TAB}_seed", min_width=100
                            )
                            c["random_seed"] = tool_button(
                                host, RANDOM_SEED, f"{TAB}_random_seed", TOOLTIPS["random_seed"]
                            )
                            c["reuse_seed"] = tool_button(host, REUSE_SEED, f"{TAB}_reuse_seed", TOOLTIPS["reuse_seed"])
                # images 2-4 stay folded away until wanted; filling one (paste, Send to, drop) unfolds the group
                with gr.Accordion(TEXT["mix_accordion"], open=False, elem_id=f"{TAB}_mix_accordion") as mix_group:
                    with gr.Row(elem_classes=["reimagine-inputs"]):
                        for i in range(2, jobs.MAX_INPUTS + 1):
                            with gr.Column(min_width=160, elem_classes=["reimagine-input"]):
                                _image_slot(c, i)
                c["mix_accordion"] = mix_group

                with gr.Row():
                    with gr.Column(elem_id=f"{TAB}_column_size", scale=4):
                        c["width"] = slider(table["width"], f"{TAB}_width")
                        c["height"] = slider(table["height"], f"{TAB}_height")
                    with gr.Column(elem_classes=["dimensions-tools"], min_width=40, scale=0):
                        c["match_aspect"] = tool_button(
                            host, MATCH_ASPECT, f"{TAB}_match_aspect", TOOLTIPS["match_aspect"]
                        )
                    with gr.Column(elem_id=f"{TAB}_column_batch", scale=2):
                        c["n_iter"] = slider(table["n_iter"], f"{TAB}_batch_count")
                        c["batch_size"] = slider(table["batch_size"], f"{TAB}_batch_size")
                gr.HTML(f"<p class='reimagine-note'>{table['width'].help}</p>", elem_id=f"{TAB}_size_note")

                c["cfg_scale"] = slider(table["cfg_scale"], f"{TAB}_cfg_scale")
                with gr.Row():
                    c["fit"] = radio(table["fit"], f"{TAB}_fit", info=table["fit"].help)
                    c["mix"] = radio(table["mix"], f"{TAB}_mix")

                c["frames"] = slider(FRAMES, f"{TAB}_frames", info=TEXT["frames_info"], visible=False)

                with gr.Accordion(TEXT["text_accordion"], open=False, elem_id=f"{TAB}_text_diff_accordion"):
                    gr.HTML(f"<p class='reimagine-note'>{TEXT['text_note']}</p>", elem_id=f"{TAB}_text_diff_note")
                    for name in ("text_diff_from", "text_diff_to"):
                        param = TEXT_DIFF[name]
                        c[name] = gr.Textbox(
                            value=param.default,
                            label=param.label,
                            placeholder=param.help,
                            lines=1,
                            elem_id=f"{TAB}_{name}",
                        )
                    with gr.Row():
                        c["text_diff_amount"] = slider(TEXT_DIFF["text_diff_amount"], f"{TAB}_text_diff_amount")
                        c["text_diff_frames"] = slider(TEXT_DIFF["text_diff_frames"], f"{TAB}_text_diff_frames")

            with gr.Column(elem_id=f"{TAB}_results_column"):
                panel = host.output_panel()
                with gr.Row(elem_id=f"{TAB}_output_actions"):
                    c["vary_again"] = gr.Button(
                        TEXT["vary_again"], elem_id=f"{TAB}_vary_again", **_kw(host, TOOLTIPS["vary_again"])
                    )
                # one control for the refiner: its settings and the button that runs it, under one name
                with gr.Accordion(TEXT["refine_accordion"], open=False, elem_id=f"{TAB}_refine_accordion"):
                    with gr.Row():
                        c["refiner_model"], c["refiner_refresh"] = model_dropdown(
                            host, REFINER_KINDS, TEXT["refiner_model"], f"{TAB}_refiner_model"
                        )
                    with gr.Row():
                        c["refiner_strength"] = slider(REFINER["strength"], f"{TAB}_refiner_strength")
                        c["refiner_steps"] = slider(REFINER["steps"], f"{TAB}_refiner_steps")
                    c["refine"] = gr.Button(TEXT["refine"], elem_id=f"{TAB}_refine", **_kw(host, TOOLTIPS["refine"]))

        c.update({"gallery": panel.gallery, "generation_info": panel.generation_info, "infotext": panel.infotext})
        c["html_log"] = panel.html_log
        _wire(host, c, panel, engine)

    return Tab(blocks=blocks, components=c, panel=panel, paste_fields=paste_fields(c, host))


def _is_image(value: Any) -> bool:
    return value is not None


def _is_pasted_weight(value: Any) -> bool:
    """A weight other than the default: set by a pasted infotext ("Mix weights") or by hand."""
    return value is not None and float(value) != WEIGHT_DEFAULT


def _outputs(panel: OutputPanel) -> list[Any]:
    return [panel.gallery, panel.generation_info, panel.infotext, panel.html_log]


SELECTED_JS = "({before}, index{after}) => [{before}, reimagine_selected_index(){after}]"
"""JavaScript of an event whose inputs are ``[<before>, selected index, <after>]``: the index as the gallery shows
it now; exactly one value per input."""


def _wire(host: TabHost, c: dict[str, Any], panel: OutputPanel, engine: jobs.Engine | None) -> None:
    """Connect the tab's events."""
    inputs = [c[name] for name in jobs.input_names()]

    def generate(task_id: str, *args: Any) -> tuple:
        return jobs.generate(host, args, engine)

    c["generate"].click(
        fn=host.run(generate, 1 + len(inputs)),
        inputs=[c["task_id"], *inputs],
        outputs=_outputs(panel),
        show_progress=host.show_progress,
        **compat.js(host.submit_js),
    )
    c["interrupt"].click(
        fn=host.interrupt, inputs=[], outputs=[], **compat.js(host.interrupt_js), **compat.queue_kwargs()
    )
    c["interrupting"].click(fn=host.interrupt, inputs=[], outputs=[], **compat.queue_kwargs())
    c["skip"].click(fn=host.skip, inputs=[], outputs=[], **compat.queue_kwargs())

    for name, value in NOISE_PRESETS.items():
        c[f"preset_{name.lower()}"].click(
            fn=lambda v=value: v, inputs=[], outputs=[c["noise_level"]], show_progress=False, queue=False
        )
    c["random_seed"].click(fn=lambda: -1, inputs=[], outputs=[c["seed"]], show_progress=False, queue=False)

    def reuse_seed(info: str, index: Any, current: Any) -> Any:
        seed = jobs.selected_seed(info, int(index or 0))
        return current if seed is None else seed

    c["reuse_seed"].click(
        fn=reuse_seed,
        inputs=[panel.generation_info, c["selected"], c["seed"]],
        outputs=[c["seed"]],
        queue=False,
        **compat.js(SELECTED_JS.format(before="info", after=", seed")),
    )

    def match(image: Any, width: Any, height: Any) -> tuple[Any, Any]:
        size = jobs.match_aspect(image, width, height, int(REIMAGINE["width"].maximum or 2048))
        return (compat.update(), compat.update()) if size is None else size

    c["match_aspect"].click(
        fn=match, inputs=[c["image_1"], c["width"], c["height"]], outputs=[c["width"], c["height"]], queue=False
    )

    def mode_change(mode: str) -> tuple[Any, Any]:
        """Frames shown for interpolation, which also unfolds "Mix more images" (it needs image 2)."""
        interpolation = mode == jobs.MODE_INTERPOLATION
        return compat.update(visible=interpolation), compat.update(open=True) if interpolation else compat.update()

    c["mode"].change(
        fn=mode_change,
        inputs=[c["mode"]],
        outputs=[c["frames"], c["mix_accordion"]],
        show_progress=False,
        queue=False,
    )
    # "Mix more images" unfolds itself when one of its slots is filled (a drop, Send to, a pasted weight)
    for i in range(2, jobs.MAX_INPUTS + 1):
        for component, filled in ((c[f"image_{i}"], _is_image), (c[f"weight_{i}"], _is_pasted_weight)):
            component.change(
                fn=lambda value, filled=filled: compat.update(open=True) if filled(value) else compat.update(),
                inputs=[component],
                outputs=[c["mix_accordion"]],
                show_progress=False,
                queue=False,
            )

    def show_selected(info: str, index: Any) -> Any:
        text = jobs.selected_infotext(info, int(index or 0))
        return jobs.plaintext_to_html(text) if text else compat.update()

    # clicked by reimagine.js when a thumbnail of the gallery is clicked (as txt2img's generation info button)
    c["show_selected"].click(
        fn=show_selected,
        inputs=[panel.generation_info, c["selected"]],
        outputs=[panel.infotext],
        show_progress=False,
        queue=False,
        **compat.js(SELECTED_JS.format(before="info", after="")),
    )

    def vary_again(gallery: Any, index: Any) -> list[Any]:
        image = host.gallery_image(gallery, int(index or 0))
        if image is None:
            return [compat.update()] * (2 * jobs.MAX_INPUTS + 1)
        rest = [None, WEIGHT_DEFAULT] * (jobs.MAX_INPUTS - 1)
        return [jobs.MODE_VARIATIONS, image, WEIGHT_DEFAULT, *rest]

    slots = [c[f"{kind}_{i}"] for i in range(1, jobs.MAX_INPUTS + 1) for kind in ("image", "weight")]
    c["vary_again"].click(
        fn=vary_again,
        inputs=[panel.gallery, c["selected"]],
        outputs=[c["mode"], *slots],
        show_progress=False,
        **compat.js(SELECTED_JS.format(before="gallery", after="")),
    ).then(fn=None, inputs=None, outputs=None, **compat.js("() => { reimagine_click_generate(); return []; }"))

    def refine(task_id: str, gallery: Any, index: Any, info: str, model: Any, strength: Any, steps: Any) -> tuple:
        return jobs.refine_selected(host, gallery, index, info, model, strength, steps, engine)

    refine_inputs = [
        c["task_id"],
        panel.gallery,
        c["selected"],
        panel.generation_info,
        c["refiner_model"],
        c["refiner_strength"],
        c["refiner_steps"],
    ]
    c["refine"].click(
        fn=host.run(refine, len(refine_inputs)),
        inputs=refine_inputs,
        outputs=_outputs(panel),
        show_progress=host.show_progress,
        **compat.js(f"(...args) => submit_reimagine_refine(...args.slice(0, {len(refine_inputs)}))"),
    ).then(  # the refined image was added after the batch: select it
        fn=None,
        inputs=[panel.gallery],
        outputs=None,
        **compat.js("(gallery) => { reimagine_select_newest((gallery || []).length); return []; }"),
    )


def paste_fields(c: dict[str, Any], host: TabHost) -> list[tuple[Any, Any]]:
    """(component, infotext key or function of the parsed infotext) for every restorable control."""
    fields: list[tuple[Any, Any]] = [(c["prompt"], "Prompt"), (c["negative_prompt"], "Negative prompt")]
    fields += [(c[param.name], param.infotext) for param in REIMAGINE if param.infotext and param.name in c]

    def weight(i: int) -> Callable[[dict[str, str]], Any]:
        def read(params: dict[str, str]) -> Any:
            text = params.get("Mix weights")
            if not text:
                return None
            parts = [part.strip() for part in str(text).split(",")]
            try:
                return float(parts[i]) if i < len(parts) else None
            except ValueError:
                return None

        return read

    fields += [(c[f"weight_{i + 1}"], weight(i)) for i in range(jobs.MAX_INPUTS)]

    def model(params: dict[str, str]) -> Any:
        found = closest(host.models(UNCLIP_KINDS), params.get("Model"))
        return compat.update(value=found.name) if found else None  # an update: the dropdown's value may be None

    fields.append((c["model"], model))

    def text(key: str) -> Callable[[dict[str, str]], Any]:
        return lambda params: params.get(key, "")  # an image without the key clears the box: no stale edit

    fields += [(c[name], text(TEXT_DIFF[name].infotext)) for name in ("text_diff_from", "text_diff_to")]
    fields.append((c["text_diff_amount"], TEXT_DIFF["text_diff_amount"].infotext))
    return fields
