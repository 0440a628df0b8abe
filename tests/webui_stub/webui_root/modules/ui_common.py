"""Stand-in of modules/ui_common.py: ``create_output_panel`` (txt2img-like gallery + buttons) and
``create_refresh_button``. The 📂/💾/🗃️ click handlers are not wired in the stand-in; the send-to bindings are
registered like the real ones (``infotext_utils.registered_param_bindings``)."""

from __future__ import annotations

import dataclasses

import gradio as gr

from modules import infotext_utils, shared
from modules.ui_components import ToolButton

folder_symbol = "\U0001f4c2"  # 📂
refresh_symbol = "\U0001f504"  # 🔄


@dataclasses.dataclass
class OutputPanel:
    gallery = None
    generation_info = None
    infotext = None
    html_log = None
    button_upscale = None


def create_output_panel(tabname, outdir, toprow=None):
    """Gallery ``#<tab>_gallery`` in ``#<tab>_gallery_container``, the buttons row, generation info and logs."""
    res = OutputPanel()

    with gr.Column(elem_id=f"{tabname}_results"), gr.Column(variant="panel", elem_id=f"{tabname}_results_panel"):
        with gr.Group(elem_id=f"{tabname}_gallery_container"):
            res.gallery = gr.Gallery(
                label="Output",
                show_label=False,
                elem_id=f"{tabname}_gallery",
                columns=4,
                preview=True,
                height=shared.opts.gallery_height or None,
            )

        with gr.Row(elem_id=f"image_buttons_{tabname}", elem_classes="image-buttons"):
            ToolButton(
                folder_symbol,
                elem_id=f"{tabname}_open_folder",
                visible=not shared.cmd_opts.hide_ui_dir_config,
                tooltip="Open images output directory.",
            )
            if tabname != "extras":
                ToolButton("💾", elem_id=f"save_{tabname}", tooltip="Save the image to a dedicated directory.")
                ToolButton("🗃️", elem_id=f"save_zip_{tabname}", tooltip="Save zip archive with images.")
            buttons = {
                "img2img": ToolButton(
                    "🖼️",
                    elem_id=f"{tabname}_send_to_img2img",
                    tooltip="Send image and generation parameters to img2img tab.",
                ),
                "inpaint": ToolButton(
                    "🎨️",
                    elem_id=f"{tabname}_send_to_inpaint",
                    tooltip="Send image and generation parameters to img2img inpaint tab.",
                ),
                "extras": ToolButton(
                    "📐",
                    elem_id=f"{tabname}_send_to_extras",
                    tooltip="Send image and generation parameters to extras tab.",
                ),
            }
            if tabname == "txt2img":
                res.button_upscale = ToolButton(
                    "✨",
                    elem_id=f"{tabname}_upscale",
                    tooltip="Create an upscaled version of the current image using hires fix settings.",
                )

        with gr.Group():
            res.infotext = gr.HTML(elem_id=f"html_info_{tabname}", elem_classes="infotext")
            res.html_log = gr.HTML(elem_id=f"html_log_{tabname}", elem_classes="html-log")
            res.generation_info = gr.Textbox(visible=False, elem_id=f"generation_info_{tabname}")

        from modules import scripts

        paste_field_names = []
        if tabname == "txt2img":
            paste_field_names = scripts.scripts_txt2img.paste_field_names
        elif tabname == "img2img":
            paste_field_names = scripts.scripts_img2img.paste_field_names

        for paste_tabname, paste_button in buttons.items():
            infotext_utils.register_paste_params_button(
                infotext_utils.ParamBinding(
                    paste_button=paste_button,
                    tabname=paste_tabname,
                    source_tabname="txt2img" if tabname == "txt2img" else None,
                    source_image_component=res.gallery,
                    paste_field_names=paste_field_names,
                )
            )

    return res


def create_refresh_button(refresh_component, refresh_method, refreshed_args, elem_id):
    """A 🔄 ToolButton: calls ``refresh_method()`` then updates the component(s) with ``refreshed_args``."""
    refresh_components = refresh_component if isinstance(refresh_component, list) else [refresh_component]

    label = None
    for comp in refresh_components:
        label = getattr(comp, "label", None)
        if label is not None:
            break

    def refresh():
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        for k, v in args.items():
            for comp in refresh_components:
                setattr(comp, k, v)
        return (
            [gr.update(**(args or {})) for _ in refresh_components]
            if len(refresh_components) > 1
            else gr.update(**(args or {}))
        )

    refresh_button = ToolButton(
        value=refresh_symbol, elem_id=elem_id, tooltip=f"{label}: refresh" if label else "Refresh"
    )
    refresh_button.click(fn=refresh, inputs=[], outputs=refresh_components)
    refresh_button.refresh = refresh  # stand-in only: lets a test press it
    return refresh_button
